"""The Space's two streaming protocols, decoded: SSE events in, typed events out.

No I/O here. A decoder is fed one server-sent event at a time (``feed(name, data)``, as
every decoder the read loop drives) and returns the
:mod:`qvq_sdk._events` it means, raises the :mod:`qvq_sdk.errors` the Space reported,
and knows whether the answer completed. See PROTOCOL.md for the wire facts.

- :class:`QueueDecoder`: ``GET {prefix}/queue/data`` (what ``gradio_client`` speaks):
  JSON messages; the first ``process_generating`` holds the whole output, later ones
  hold diffs (``[op, path, value]`` edits). The app's ``log`` messages (``gr.Warning``,
  ``gr.Info``, ...) and ``progress`` reports become :class:`SpaceLog` and :class:`Progress`
  events, in stream order. A message kind it does not know is ignored (logged at DEBUG,
  redacted).
- :class:`CallDecoder`: ``GET {prefix}/call/generate/{event_id}``: named events, each
  holding the whole output so far. The call protocol carries no log messages and no
  progress: Gradio sends them on the queue protocol only.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any, Callable, List, Optional, Set, Tuple

from ._events import (
    Done,
    Event,
    ProcessingStarted,
    Progress,
    QueuePosition,
    SpaceLog,
    TextBuffer,
    TextUpdate,
    new_text_update,
)
from ._text import excerpt
from .errors import AppError, QuotaExceededError, StreamError

logger = logging.getLogger("qvq_sdk")

HIDDEN_BY_SPACE = (
    "the Space hides its error messages (its app does not set show_error=True). Retry, or ask the Space's authors."
)
HIDDEN_BY_CALL_PROTOCOL = (
    'on Gradio 5 the call protocol drops every error message. Use protocol="queue" '
    "(the default) to see what the Space said."
)

_APP_MESSAGE_CHARS = 2000  # an app's message is quoted whole in str(error) up to this length
_QUOTA_MARKERS = ("gpu quota", "requested gpu duration")
_RETRY_IN = re.compile(r"retry in (?:(\d+):)?(\d{1,2}):(\d{2})", re.IGNORECASE)


def clean_app_message(message: str) -> str:
    """Drop the HTML decoration the Hugging Face runtime appends (from ``" <a "`` on)."""
    cut = message.find(" <a ")
    if cut >= 0:
        message = message[:cut]
    return message.strip()


def parse_retry_in(message: str) -> Optional[float]:
    """Seconds from a ZeroGPU "Please retry in 0:03:12" (H:MM:SS or M:SS)."""
    match = _RETRY_IN.search(message)
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return float(int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds))


def app_error(message: Any, *, hidden_because: str) -> AppError:
    """The exception for the app's failure message (``None`` when the Space hid it)."""
    if not isinstance(message, str) or not message.strip():
        return AppError(f"The Space's app failed without saying why: {hidden_because}")
    text = clean_app_message(message)
    said = text if len(text) <= _APP_MESSAGE_CHARS else excerpt(text, _APP_MESSAGE_CHARS)  # .message keeps it all
    if any(marker in text.lower() for marker in _QUOTA_MARKERS):
        retry_after = parse_retry_in(text)
        when = f"retry in {retry_after:.0f} s" if retry_after is not None else "retry later"
        return QuotaExceededError(
            f"The Space is out of GPU quota: {said} ({when}, or use the token of an account with more quota).",
            message=text,
            retry_after=retry_after,
        )
    return AppError(f"The Space's app failed: {said}", message=text)


class _TextTracker:
    """Turns successive outputs of the Space (whole values or diffs) into TextUpdates."""

    def __init__(self) -> None:
        self._buffer = TextBuffer()
        # The whole text when we hold it as one string already (saves a join).
        self._whole: Optional[str] = ""

    def current(self) -> str:
        if self._whole is None:
            self._whole = self._buffer.text()
        return self._whole

    def set_whole(self, value: Any) -> Optional[TextUpdate]:
        text = _as_text(value)
        current = self.current()
        if text == current:
            return None
        if text.startswith(current):
            delta = text[len(current) :]
            self._buffer.append(delta)
            self._whole = text
            return new_text_update(delta, False, self._buffer)
        self._buffer = TextBuffer(text)
        self._whole = text
        return new_text_update(text, True, self._buffer)

    def append(self, delta: Any) -> Optional[TextUpdate]:
        if not isinstance(delta, str):
            raise StreamError(f"The Space sent a malformed diff: appended a {type(delta).__name__}, not text.")
        if not delta:
            return None
        self._buffer.append(delta)
        self._whole = None
        return new_text_update(delta, False, self._buffer)

    def apply_edits(self, edits: Any) -> List[TextUpdate]:
        """Applies a Gradio diff: a list of ``[op, path, value]`` edits."""
        updates = []
        for edit in edits:
            if not isinstance(edit, list) or len(edit) != 3 or not isinstance(edit[1], list):
                raise StreamError(f"The Space sent a malformed diff edit: {excerpt(json.dumps(edit))}")
            op, path, value = edit
            if path:
                raise StreamError(
                    "The Space's output is not text: it sent a diff inside a structured value "
                    f"({excerpt(json.dumps(edit))})."
                )
            if op == "append":
                update = self.append(value)
            elif op == "replace":
                update = self.set_whole(value)
            else:
                raise StreamError(f"The Space sent a diff operation this output cannot take: {op!r}.")
            if update is not None:
                updates.append(update)
        return updates

    def apply_output(self, value: Any) -> List[TextUpdate]:
        """A first output (a whole value) or a later one (a diff, which is a list)."""
        if isinstance(value, list):
            return self.apply_edits(value)
        update = self.set_whole(value)
        return [] if update is None else [update]


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise StreamError(f"The Space's output is not text: got a {type(value).__name__}.")


def _load_json(data: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise StreamError(f"The Space sent an event that is not valid JSON: {excerpt(data)!r}") from None


# The C scanner behind json.loads: scan(text, index) -> (value, end), StopIteration if no value.
_scan_json: Callable[[str, int], Tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _parse_json(data: str) -> Any:
    """``json.loads(data)``, or None when ``data`` is not JSON; once per event, so it calls
    the scanner directly (``json.loads`` adds three Python calls and two regex matches)."""
    try:
        value, end = _scan_json(data, 0)
    except StopIteration:  # no JSON value at the very start: leading whitespace, or not JSON
        value, end = None, -1
    except (ValueError, RecursionError):  # not JSON
        return None
    if end == len(data):
        return value
    try:
        return json.loads(data)  # leading or trailing whitespace, or trailing garbage
    except (ValueError, RecursionError):
        return None


def _first_output(output: Any, where: str) -> Any:
    data = output.get("data") if isinstance(output, dict) else None
    if not isinstance(data, list) or not data:
        raise StreamError(f"The Space sent a {where} without output data: {excerpt(json.dumps(output))}")
    return data[0]


def _number(value: Any) -> Optional[float]:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # a JSON integer too large for a float
        return None
    return number if math.isfinite(number) else None


def _integer(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _string(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def _space_log(message: Any) -> Optional[SpaceLog]:
    """``{"msg": "log", "log": text, "level": "warning", "title": ...}`` as an event (None
    when it holds no text)."""
    text = message.get("log")
    if not isinstance(text, str):
        return None
    level = message.get("level")
    level = level.lower() if isinstance(level, str) and level else "info"  # Gradio 4 sent no level for info
    return SpaceLog(level=level, message=text, title=_string(message.get("title")))


def _progress(message: Any) -> Optional[Progress]:
    """``{"msg": "progress", "progress_data": [unit, ...]}`` as an event, from its first
    (outermost) unit; None when it holds none."""
    units = message.get("progress_data")
    unit = units[0] if isinstance(units, list) and units else None
    if not isinstance(unit, dict):
        return None
    return Progress(
        progress=_number(unit.get("progress")),
        index=_integer(unit.get("index")),
        length=_integer(unit.get("length")),
        unit=_string(unit.get("unit")),
        desc=_string(unit.get("desc")),
    )


# Messages the queue decoder knows and has nothing to say about.
_QUIET_KINDS = frozenset(["heartbeat", "close_stream", "server_stopped"])


class _Decoder:
    """What both decoders share: the text so far, and whether the answer completed."""

    def __init__(self) -> None:
        self._text = _TextTracker()
        self.done = False
        self._ended_because: Optional[str] = None

    def _complete(self, updates: List[TextUpdate]) -> List[Event]:
        events: List[Event] = list(updates)
        self.done = True
        events.append(Done(self._text.current()))
        return events

    def end_of_stream(self) -> List[Event]:
        """Called when the stream ends: an unfinished answer is an error, never a short one."""
        if self.done:
            return []
        received = len(self._text.current())
        reason = self._ended_because or "the stream ended"
        raise StreamError(
            f"The Space's reply was cut off: {reason} before the answer was complete "
            f"({received} characters received, not returned as an answer). Retry the request."
        )


class QueueDecoder(_Decoder):
    """Decodes the messages of ``GET {prefix}/queue/data`` for one request."""

    def __init__(self, event_id: Optional[str] = None, redact: Callable[[str], str] = str) -> None:
        super().__init__()
        self._event_id = event_id
        self._redact = redact
        self._unknown_kinds: Set[str] = set()

    def feed(self, name: str, data: str) -> List[Event]:
        """The events one message means (its SSE event name is unused: the queue's are unnamed)."""
        try:  # _parse_json, inlined for the usual case: one JSON object, nothing around it
            message, end = _scan_json(data, 0)
            if end != len(data):
                message = _parse_json(data)
        except (StopIteration, ValueError, RecursionError):
            message = _parse_json(data)
        kind = message.get("msg") if type(message) is dict else None
        if not isinstance(kind, str):
            _load_json(data)  # says why, when it is not JSON at all
            raise StreamError(f"The Space sent a message of an unexpected shape: {excerpt(data)!r}")
        event_id = message.get("event_id")
        if self.done or (event_id is not None and self._event_id is not None and event_id != self._event_id):
            return []
        if kind == "process_generating":
            output: Any = message.get("output")
            outputs = output.get("data") if type(output) is dict else None
            value = outputs[0] if type(outputs) is list and outputs else _first_output(output, kind)
            # The common case, once per update of a long answer: one ["append", [], text] edit.
            if type(value) is list and len(value) == 1:
                edit = value[0]
                if type(edit) is list and len(edit) == 3 and edit[0] == "append" and edit[1] == [] and edit[2]:
                    update = self._text.append(edit[2])
                    return [] if update is None else [update]
            return list(self._text.apply_output(value))
        if kind == "estimation":
            return [
                QueuePosition(
                    rank=_integer(message.get("rank")),
                    queue_size=_integer(message.get("queue_size")),
                    eta=_number(message.get("rank_eta")),
                )
            ]
        if kind == "process_starts":
            return [ProcessingStarted(eta=_number(message.get("eta")))]
        if kind == "process_completed":
            output = message.get("output")
            if message.get("success") is False:
                error = output.get("error") if isinstance(output, dict) else None
                raise app_error(error, hidden_because=HIDDEN_BY_SPACE)
            if isinstance(output, dict) and "data" not in output:
                raise StreamError("The Space ended the job without an answer (it was cancelled). Retry the request.")
            return self._complete(self._text.apply_output(_first_output(output, kind)))
        if kind == "log":
            log = _space_log(message)
            return [] if log is None else [log]
        if kind == "progress":
            progress = _progress(message)
            return [] if progress is None else [progress]
        if kind == "unexpected_error":
            detail = message.get("message")
            if message.get("session_not_found") or (isinstance(detail, str) and "session not found" in detail.lower()):
                raise StreamError("The Space lost this request's session (it may have restarted); retry the request.")
            raise StreamError(
                "The Space's server failed while streaming"
                + (f": {excerpt(detail)}" if isinstance(detail, str) else "")
                + ". Retry the request."
            )
        if kind == "close_stream":
            self._ended_because = "the Space closed the stream"
        elif kind == "server_stopped":
            self._ended_because = "the Space's server stopped (it is restarting or being redeployed)"
        elif kind not in _QUIET_KINDS and kind not in self._unknown_kinds:
            self._unknown_kinds.add(kind)
            logger.debug(
                "ignored a message of a kind qvq-sdk does not know: %s", self._redact(f"{kind!r} ({excerpt(data)})")
            )
        return []


class CallDecoder(_Decoder):
    """Decodes the named events of ``GET {prefix}/call/generate/{event_id}``."""

    def feed(self, event: str, data: str) -> List[Event]:
        if self.done or event not in ("generating", "complete", "error"):
            return []
        value = _load_json(data)
        if event == "error":
            raise self._error(value)
        if not isinstance(value, list) or not value:
            raise StreamError(f"The Space sent a {event!r} event without output data: {excerpt(data)!r}")
        update = self._text.set_whole(value[0])
        updates = [] if update is None else [update]
        if event == "complete":
            return self._complete(updates)
        return list(updates)

    @staticmethod
    def _error(value: Any) -> Exception:
        if isinstance(value, dict):
            return app_error(value.get("error"), hidden_because=HIDDEN_BY_SPACE)
        if isinstance(value, str) and (value.startswith("404") or "session not found" in value.lower()):
            return StreamError(
                f"The Space does not know this request any more ({excerpt(value)}): it may have "
                "restarted or expired the request. Retry the request."
            )
        if isinstance(value, str):
            return app_error(value, hidden_because=HIDDEN_BY_SPACE)
        return app_error(None, hidden_because=HIDDEN_BY_CALL_PROTOCOL)
