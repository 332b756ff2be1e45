"""The OpenAI chat-completions stream, decoded: server-sent events in, typed events out.

No I/O here. Each event's data is a ``chat.completion.chunk`` (JSON) or ``[DONE]``:

- ``choices[0].delta.content`` is the answer (:class:`TextUpdate`);
  ``delta.reasoning_content`` (DashScope, older vLLM) or ``delta.reasoning`` (vLLM 0.17+,
  OpenRouter) is the reasoning (:class:`ReasoningUpdate`);
- ``choices[0].finish_reason`` says why the model stopped; a chunk with ``usage`` (asked
  for with ``stream_options.include_usage``, ``choices`` empty) counts the tokens;
- ``data: [DONE]`` ends the answer (:class:`Done`). A stream that ends without it but after
  a ``finish_reason`` is complete too; one that ends with neither is cut off
  (:class:`StreamError`), never a short answer.
- ``data: {"error": ...}`` (vLLM sends it after the headers, then ``[DONE]``; OpenRouter
  beside a choice whose ``finish_reason`` is ``"error"``), and llama.cpp's ``error:`` field
  (an event named ``error``: see :mod:`qvq_sdk._sse`), are an :class:`AppError` with the
  server's message: raised at once, the text before it having been yielded.
- With several choices (``n`` > 1 in ``extra_body``), the first (``index`` 0) is read.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._events import Done, Event, ReasoningUpdate, TextBuffer, Usage, new_text_update
from ._text import excerpt
from .errors import AppError, StreamError

_scan_json: Callable[[str, int], Tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_APP_MESSAGE_CHARS = 2000


def _parse(data: str) -> Any:
    try:
        value, end = _scan_json(data, 0)
        if end == len(data):
            return value
    except (StopIteration, ValueError, RecursionError):
        pass
    try:
        return json.loads(data)  # whitespace around it
    except (ValueError, RecursionError):
        raise StreamError(f"The server sent an event that is not valid JSON: {excerpt(data)!r}") from None


def _count(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage(value: Any) -> Optional[Usage]:
    if not isinstance(value, dict):
        return None
    details = value.get("completion_tokens_details")
    return Usage(
        prompt_tokens=_count(value.get("prompt_tokens")),
        completion_tokens=_count(value.get("completion_tokens")),
        total_tokens=_count(value.get("total_tokens")),
        reasoning_tokens=_count(details.get("reasoning_tokens")) if isinstance(details, dict) else None,
    )


def _error_value(data: str) -> Any:
    """What an ``error:`` field holds: JSON, or the text itself."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return data


def stream_error(error: Any) -> AppError:
    """The exception for an error the server sent inside the stream."""
    message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str) or not message.strip():
        message = json.dumps(error) if error is not None else None
    if not message:
        return AppError("The server failed in the middle of the answer without saying why. Retry the request.")
    said = message if len(message) <= _APP_MESSAGE_CHARS else excerpt(message, _APP_MESSAGE_CHARS)
    return AppError(f"The server failed in the middle of the answer: {said}", message=message)


class OpenAIDecoder:
    """Decodes one ``POST /chat/completions`` stream (``"stream": true``)."""

    def __init__(self) -> None:
        self.done = False
        self._text = TextBuffer()
        self._reasoning = TextBuffer()
        self._finish_reason: Optional[str] = None
        self._usage: Optional[Usage] = None

    def feed(self, name: str, data: str) -> List[Event]:
        """The events one server-sent event means."""
        if self.done:
            return []
        if name == "error":  # llama.cpp's server: an `error:` field instead of data
            raise stream_error(_error_value(data))
        try:  # the usual case, once per event: one JSON object, nothing around it
            chunk, end = _scan_json(data, 0)
        except (StopIteration, ValueError, RecursionError):
            end = -1
        if end != len(data) or type(chunk) is not dict:
            if data == "[DONE]":
                return self._complete()
            chunk = _parse(data)
            if type(chunk) is not dict:
                raise StreamError(f"The server sent an event of an unexpected shape: {excerpt(data)!r}")
        if "error" in chunk or "usage" in chunk:
            self._note(chunk)  # before the choices: OpenRouter sends an error beside one
        choices = chunk.get("choices")
        if type(choices) is not list or not choices:
            if chunk.get("object") == "error":  # vLLM's older, flat shape
                raise stream_error(chunk)
            return []
        choice = choices[0]
        if type(choice) is dict and choice.get("index", 0):  # several choices (n > 1): the first
            choice = next((c for c in choices if type(c) is dict and c.get("index", 0) == 0), None)
            if choice is None:
                return []
        delta = choice.get("delta") if type(choice) is dict else None
        if type(delta) is not dict:
            raise StreamError(f"The server sent a choice without a delta: {excerpt(data)!r}")
        finish_reason = choice.get("finish_reason")
        if finish_reason is not None:
            if finish_reason == "error":
                raise stream_error("the server ended the answer with finish_reason 'error'")
            self._finish_reason = str(finish_reason)
        content = delta.get("content")
        if len(delta) == 1 and content:  # the usual case, once per event: text alone
            if type(content) is not str:
                raise StreamError(f"The server sent content that is not text: {excerpt(data)!r}")
            self._text.append(content)
            return [new_text_update(content, False, self._text)]
        events: List[Event] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning:
            if type(reasoning) is not str:
                raise StreamError(f"The server sent reasoning that is not text: {excerpt(data)!r}")
            self._reasoning.append(reasoning)
            events.append(ReasoningUpdate(reasoning, buffer=self._reasoning))
        if content:
            if type(content) is not str:
                raise StreamError(f"The server sent content that is not text: {excerpt(data)!r}")
            self._text.append(content)
            events.append(new_text_update(content, False, self._text))
        return events

    def _note(self, chunk: Dict[str, Any]) -> None:
        """An error the chunk reports (raised), or the usage it counts."""
        error = chunk.get("error")
        if error is not None:
            raise stream_error(error)
        if "usage" in chunk:
            self._usage = _usage(chunk["usage"]) or self._usage

    def _complete(self) -> List[Event]:
        self.done = True
        return [
            Done(
                self._text.text(),
                reasoning=self._reasoning.text(),
                finish_reason=self._finish_reason,
                usage=self._usage,
            )
        ]

    def end_of_stream(self) -> List[Event]:
        """The stream ended: complete after a ``finish_reason``, else cut off."""
        if self.done:
            return []
        if self._finish_reason is not None:
            return self._complete()
        raise StreamError(
            "The server's reply was cut off: the stream ended without [DONE] and without a finish_reason "
            f"({len(self._text.text())} characters of answer received, not returned as an answer). Retry the request."
        )
