"""Scripted, in-process stand-ins for testing code that uses qvq-sdk: the Space, and an
OpenAI-compatible server.

No network and no Gradio: :class:`FakeSpace` is a ``requests`` transport adapter that
speaks the Space's two protocols (config, upload, queue and call) from a script, and
stands in for the Hugging Face Hub's runtime API of the Space (its stage)::

    from qvq_sdk.testing import FakeSpace

    space = FakeSpace()
    space.warning("Image was resized")   # the next chat's Space warns first ...
    space.answer("Hel", "lo")            # ... then streams "Hel", "lo"
    space.app_error("Boom")              # the one after fails with AppError("Boom")
    client = space.client()
    assert "".join(client.chat("hi")) == "Hello"

Each scripted reply answers one chat, in order; a chat with nothing scripted left gets an
:class:`~qvq_sdk.AppError` saying so. :meth:`FakeSpace.asleep` and :meth:`FakeSpace.paused`
script the Space's life on Hugging Face. ``space.patch()`` routes every ``QVQClient`` made
inside it (the ``qvq`` command's too) to the fake.

:class:`FakeOpenAI` does the same for ``protocol="openai"``: it serves
``POST /v1/chat/completions`` and streams reasoning, text, usage and errors framed as vLLM
frames them::

    from qvq_sdk.testing import FakeOpenAI

    server = FakeOpenAI()
    server.answer("A cat.", reasoning="I see fur.")   # reasoning first, then the answer
    server.error_mid_stream("out of memory")           # the next chat fails with AppError
    client = server.client()                           # QVQClient(protocol="openai", ...)
    assert client.complete("What is it?") == "A cat."
    assert server.bodies[0]["model"] == "Qwen/QVQ-72B-Preview"
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import functools
import http
import io
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, TypeVar, Union
from urllib.parse import parse_qs, unquote_to_bytes, urlsplit

import requests
import urllib3
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from . import _transport
from ._client import QVQClient
from ._constants import DEFAULT_SPACE
from ._events import Usage
from ._space import space_url

__all__ = ["FakeOpenAI", "FakeSpace"]

_PREFIX = "/gradio_api"
_QUOTA = "You have exceeded your GPU quota (60s left vs. 120s requested)."
_ASLEEP_PAGE = b"<!DOCTYPE html><html><body><p>This Space is waking up.</p></body></html>"
# How much later than a read timeout a timed-out read returns, so that a deadline which cut
# that timeout (Deadline.bound) has passed when the client looks.
_TIMEOUT_MARGIN = 0.005


@dataclass
class _Reply:
    """One scripted reply: successive whole texts, or an error; and the Space's log and
    progress messages sent before the text (queue protocol only)."""

    texts: List[str] = field(default_factory=list)
    delay: float = 0.0
    error: Optional[str] = None
    failed: bool = False
    status: Optional[int] = None
    retry_after: Optional[float] = None
    before: List[Dict[str, Any]] = field(default_factory=list)


# A body piece, and the seconds to wait before sending it.
_Piece = Tuple[bytes, float]


class _Chunks(io.RawIOBase):
    """A response body handed out piece by piece, each after its wait.

    A wait longer than ``read_timeout`` (the one the request was sent with) raises
    ``socket.timeout`` after that timeout, as a socket would. Closing it (from any thread)
    ends a wait under way: the read returns the end of the body, as a socket shut down does.
    Unbuffered, so that closing takes no lock a blocked read holds. ``on_close(finished)``
    is called once when the body is closed, ``finished`` telling whether all of it was read.
    """

    def __init__(
        self, pieces: List[_Piece], read_timeout: Optional[float] = None, on_close: Optional[Any] = None
    ) -> None:
        self._pieces = pieces
        self._next = 0
        self._current = b""
        self._read_timeout = read_timeout
        self._on_close = on_close
        self._closing = threading.Event()

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        """What the next piece holds, up to ``size`` bytes (waiting for it if it is not due yet)."""
        return self.read(size if size is not None and size >= 0 else 1 << 20) or b""

    @property
    def finished(self) -> bool:
        return not self._current and self._next >= len(self._pieces)

    def readinto(self, buffer: Any) -> int:
        if not self._current:
            if self._next >= len(self._pieces):
                return 0
            chunk, wait = self._pieces[self._next]
            if wait:
                timeout = self._read_timeout
                if timeout is not None and wait > timeout:
                    if self._closing.wait(timeout + _TIMEOUT_MARGIN):
                        return 0
                    raise socket.timeout("The read operation timed out")
                if self._closing.wait(wait):
                    return 0
            self._next += 1
            self._current = chunk
        size = min(len(buffer), len(self._current))
        buffer[:size] = self._current[:size]
        self._current = self._current[size:]
        return size

    def close(self) -> None:
        self._closing.set()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(self.finished)
        super().close()


def _sse(message: Any) -> bytes:
    return b"data: " + json.dumps(message).encode() + b"\n\n"


def _retry_after(seconds: Optional[float]) -> Dict[str, str]:
    """The headers of an error reply that asks to retry after ``seconds`` (None: no advice)."""
    return {} if seconds is None else {"Retry-After": "%g" % seconds}


def _read_timeout(timeout: Any) -> Optional[float]:
    """The read timeout of a ``requests`` timeout: a number, (connect, read), urllib3's Timeout."""
    if isinstance(timeout, tuple):
        timeout = timeout[1] if len(timeout) == 2 else None
    elif isinstance(timeout, urllib3.Timeout):
        timeout = timeout.read_timeout
    return float(timeout) if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else None


@dataclass
class _Life:
    """The Space's state on Hugging Face while it does not run: down for ``down_for`` more
    requests (None: until told otherwise), answering ``status``, the Hub saying ``stages``
    in turn, the last one repeated."""

    down_for: Optional[int]
    stages: List[str]
    status: int
    lookups: int = 0


# A request's reply: status, headers, body pieces, and the prompt of the chat whose stream it
# is (None for other replies: a stream closed early is counted in ``cancelled`` by its prompt).
_Handled = Tuple[int, Dict[str, str], List[_Piece], Optional[str]]
_F = TypeVar("_F", bound="_Fake")


class _Fake:
    """What the fakes share: the records, the adapter that answers from :meth:`_handle`, the
    session the clients of ``client()`` share, and ``patch()``'s wiring."""

    url: str

    def __init__(self) -> None:
        self.prompts: List[str] = []
        self.images: List[bytes] = []
        self.cancelled: List[str] = []
        self.requests: List[requests.PreparedRequest] = []
        self._lock = threading.Lock()
        self._adapter = _FakeAdapter(self)
        self._session: Optional[requests.Session] = None

    def __enter__(self: _F) -> _F:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the session the clients of :meth:`client` share (a later one makes a new one)."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()

    def session(self) -> requests.Session:
        """A new ``requests.Session`` that sends the fake's URLs to the fake (yours to close)."""
        return self._mount(requests.Session())

    def _prefixes(self) -> Set[str]:
        """The URLs the fake answers."""
        return {self.url}

    def _mount(self, session: requests.Session) -> requests.Session:
        for prefix in self._prefixes():
            session.mount(prefix, self._adapter)
        return session

    def _options(self, options: Dict[str, Any], **defaults: Any) -> Dict[str, Any]:
        """``client()``'s options for ``QVQClient``: no token and no retries unless asked,
        ``defaults``, and the shared session (or the caller's, with the fake mounted on it)."""
        for name, value in {"token": False, "max_retries": 0, **defaults}.items():
            options.setdefault(name, value)
        session = options.get("session")
        if session is None:
            with self._lock:
                if self._session is None:
                    self._session = self.session()
                options["session"] = self._session
        else:
            self._mount(session)
        return options

    @contextlib.contextmanager
    def _patched(self, **environment: str) -> Iterator[None]:
        """Mounts the fake on every session a client makes, with ``environment`` set."""
        original = _transport.Transport._new_session

        def new_session() -> requests.Session:
            return self._mount(original())

        _transport.Transport._new_session = staticmethod(new_session)
        try:
            with _environment(**environment):
                yield
        finally:
            _transport.Transport._new_session = staticmethod(original)

    def _record(self, request: requests.PreparedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _closed(self, prompt: str, finished: bool) -> None:
        if not finished:
            with self._lock:
                self.cancelled.append(prompt)

    def _handle(self, request: requests.PreparedRequest) -> _Handled:
        """The reply to a request (see :data:`_Handled`)."""
        raise NotImplementedError


class FakeSpace(_Fake):
    """A scripted Space. Script replies with :meth:`answer`, :meth:`rewrite`,
    :meth:`app_error`, :meth:`quota_error` and :meth:`http_error`, what the Space says
    before the next reply's text with :meth:`warning`, :meth:`info`, :meth:`log` and
    :meth:`progress`, and the Space's life with :meth:`asleep` and :meth:`paused`; then
    chat through :meth:`client`, or through any client made inside :meth:`patch`.

    ``prompts`` and ``images`` record what the fake received, in order; ``cancelled``
    the prompts whose stream the client closed before the Space had sent all of it;
    ``runtime_lookups`` the Space ids asked about on the fake Hub; ``requests`` every
    request it received (``requests.PreparedRequest``: Space and Hub alike).

    Use it as a context manager, or call :meth:`close`, to free the ``requests`` session
    that the clients of :meth:`client` share.
    """

    url = "http://qvq-fake-space.invalid"
    #: The fake Hugging Face Hub: ``GET {hub_url}/api/spaces/{id}/runtime`` answers the stage.
    hub_url = "http://qvq-fake-hub.invalid"
    #: The Space id :meth:`client` gives its clients, so that they ask the fake Hub about it.
    space_id = "qvq-fake/space"

    def __init__(self) -> None:
        super().__init__()
        self.runtime_lookups: List[str] = []
        self._script: List[_Reply] = []
        self._before: List[Dict[str, Any]] = []
        self._life: Optional[_Life] = None
        self._uploads: Dict[str, bytes] = {}
        self._jobs: Dict[str, Tuple[str, str, _Reply]] = {}

    # -- the script --------------------------------------------------------------------------

    def answer(self, *chunks: str, delay: float = 0.0) -> FakeSpace:
        """The next chat streams these chunks (waiting ``delay`` seconds before each)."""
        texts = []
        text = ""
        for chunk in chunks:
            text += chunk
            texts.append(text)
        self._add(_Reply(texts=texts, delay=delay))
        return self

    def rewrite(self, first: str, second: str, delay: float = 0.0) -> FakeSpace:
        """The next chat sends ``first``, then replaces it with ``second``."""
        self._add(_Reply(texts=[first, second], delay=delay))
        return self

    def app_error(self, message: Optional[str] = None, *, after: Tuple[str, ...] = ()) -> FakeSpace:
        """The next chat fails in the app with ``message`` (None: hidden), after streaming ``after``."""
        reply = self.answer(*after)._script[-1]
        reply.error, reply.failed = message, True
        return self

    def log(self, level: str, message: str, *, title: Optional[str] = None) -> FakeSpace:
        """The Space's app shows a message (``gr.Warning``, ``gr.Info``, ...): the next reply
        scripted after this sends it before its text, as ``{"msg": "log", ...}``.

        ``level`` is ``"warning"``, ``"info"``, ``"success"`` or ``"error"``; ``title``
        defaults to it, capitalised, as Gradio's does. Only the queue protocol carries it.
        """
        self._before.append(
            {
                "msg": "log",
                "log": message,
                "level": level,
                "duration": 10.0,
                "visible": True,
                "title": level.capitalize() if title is None else title,
            }
        )
        return self

    def warning(self, message: str, *, title: Optional[str] = None) -> FakeSpace:
        """``gr.Warning(message)`` before the next reply's text (see :meth:`log`)."""
        return self.log("warning", message, title=title)

    def info(self, message: str, *, title: Optional[str] = None) -> FakeSpace:
        """``gr.Info(message)`` before the next reply's text (see :meth:`log`)."""
        return self.log("info", message, title=title)

    def progress(
        self,
        progress: Optional[float] = None,
        *,
        index: Optional[int] = None,
        length: Optional[int] = None,
        unit: str = "steps",
        desc: Optional[str] = None,
    ) -> FakeSpace:
        """A ``gr.Progress`` report before the next reply's text: a fraction (``progress``)
        or tqdm-style steps (``index`` of ``length``). Only the queue protocol carries it."""
        unit_data = {"index": index, "length": length, "unit": unit, "progress": progress, "desc": desc}
        self._before.append({"msg": "progress", "progress_data": [unit_data]})
        return self

    def asleep(
        self, times: int = 1, *, stages: Union[str, Sequence[str]] = ("SLEEPING", "APP_STARTING"), status: int = 503
    ) -> FakeSpace:
        """The Space sleeps: it answers HTTP ``status`` (503) to its next ``times``
        requests, whatever they are, then runs. Until it answers one, the fake Hub reports
        ``stages``, one per lookup of the Space's runtime, the last one repeated; then
        ``RUNNING``.

        A client that knows the Space's id (:meth:`client` gives it :attr:`space_id`)
        waits for it, yielding :class:`~qvq_sdk.WakingUp` events; others get the 503.
        """
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise ValueError(f"times must be a whole number >= 1, not {times!r}")
        self._life = _Life(down_for=times, stages=self._stages(stages), status=status)
        return self

    def paused(self, stage: str = "PAUSED", *, status: int = 503) -> FakeSpace:
        """The Space does not run: every request to it answers HTTP ``status`` (503) and the
        fake Hub reports ``stage`` (``PAUSED``, ``RUNTIME_ERROR``, ``BUILD_ERROR``, ...),
        until :meth:`running`."""
        self._life = _Life(down_for=None, stages=self._stages(stage), status=status)
        return self

    def running(self) -> FakeSpace:
        """The Space runs again (it is not asleep or paused any more)."""
        self._life = None
        return self

    @property
    def stage(self) -> str:
        """What the fake Hub says the Space's stage is now."""
        with self._lock:
            return self._stage()

    @staticmethod
    def _stages(stages: Union[str, Sequence[str]]) -> List[str]:
        listed = [stages] if isinstance(stages, str) else list(stages)
        if not listed or not all(isinstance(stage, str) and stage for stage in listed):
            raise ValueError(f"stages must be one stage or a list of them, not {stages!r}")
        return listed

    def _add(self, reply: _Reply) -> None:
        """Scripts a reply: one that streams takes the log and progress messages scripted before it."""
        if reply.status is None:
            reply.before, self._before = self._before, []
        self._script.append(reply)

    def quota_error(self, retry_after: Optional[int] = None) -> FakeSpace:
        """The next chat fails with ZeroGPU's quota message ("Please retry in H:MM:SS")."""
        message = _QUOTA
        if retry_after is not None:
            hours, rest = divmod(int(retry_after), 3600)
            message += " Please retry in %d:%02d:%02d" % (hours, rest // 60, rest % 60)
        return self.app_error(message)

    def http_error(
        self, status: int, message: str = "", *, times: int = 1, retry_after: Optional[float] = None
    ) -> FakeSpace:
        """The next ``times`` job requests (join or call) answer HTTP ``status``.

        The client retries 429/502/503/504 (``max_retries``); each retry takes the next
        scripted reply. ``retry_after`` sets a ``Retry-After`` header (0 retries at once).
        """
        for _ in range(times):
            self._add(_Reply(error=message, status=status, retry_after=retry_after))
        return self

    # -- using it ----------------------------------------------------------------------------

    def _prefixes(self) -> Set[str]:
        """The fake's URL, the fake Hub's, and the Space URLs of :attr:`space_id` and of the
        default Space."""
        return {self.url, self.hub_url, space_url(self.space_id), space_url(DEFAULT_SPACE)}

    def client(self, **options: Any) -> QVQClient:
        """A ``QVQClient`` talking to the fake; takes QVQClient's keyword options.

        By default it sends no token and does not retry (``max_retries=0``), so a scripted
        HTTP error reaches the caller at once. It talks to :attr:`url` and asks the fake Hub
        (``HF_ENDPOINT`` is :attr:`hub_url` while it is made) about ``space=``, by default
        :attr:`space_id`. The clients share one session, which :meth:`close` closes; a
        ``session=`` of your own gets the fake mounted on it.
        """
        self._options(options, base_url=self.url, space=self.space_id)
        with _ENVIRONMENT_LOCK, _environment(HF_ENDPOINT=self.hub_url):  # the client reads it once, now
            return QVQClient(**options)

    @contextlib.contextmanager
    def patch(self) -> Iterator[FakeSpace]:
        """Inside, every ``QVQClient`` made talks to the fake: without ``space=`` or
        ``base_url=`` (through ``QVQ_BASE_URL``), with the default Space's id or
        :attr:`space_id`, or with ``base_url=`` :attr:`url`; and ``HF_ENDPOINT`` is the fake Hub."""
        with self._patched(QVQ_BASE_URL=self.url, HF_ENDPOINT=self.hub_url):
            yield self

    # -- the Space's side ----------------------------------------------------------------------

    def _next_reply(self, data: Any) -> _Reply:
        with self._lock:
            if isinstance(data, list) and len(data) == 2:
                self.prompts.append(str(data[1]))
                image = data[0]
                if isinstance(image, dict) and image.get("path") in self._uploads:
                    self.images.append(self._uploads[image["path"]])
            if self._script:
                return self._script.pop(0)
            before, self._before = self._before, []
        return _Reply(
            error=f"FakeSpace: nothing scripted for the prompt {self.prompts[-1]!r}", failed=True, before=before
        )

    def _config(self) -> Dict[str, Any]:
        return {
            "version": "5.9.1",
            "api_prefix": _PREFIX,
            "protocol": "sse_v3",
            "max_file_size": None,
            "dependencies": [{"id": 0, "api_name": "generate", "queue": True, "backend_fn": True}],
        }

    def _upload(self, request: requests.PreparedRequest) -> Any:
        body = _body(request)
        content_type = request.headers.get("Content-Type", "")
        if isinstance(content_type, bytes):  # requests' own types allow bytes header values
            content_type = content_type.decode("latin-1")
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser().parsebytes(head + body)
        paths = []
        for part in message.walk():
            if part.get_param("name", header="content-disposition") == "files":
                data = part.get_payload(decode=True)
                with self._lock:
                    path = f"/tmp/gradio/fake/{len(self._uploads)}/{part.get_filename()}"
                    self._uploads[path] = data if isinstance(data, bytes) else b""
                paths.append(path)
        return paths

    def _job(self, request: requests.PreparedRequest) -> Tuple[int, Any, Dict[str, str]]:
        payload = json.loads(_body(request) or b"{}")
        reply = self._next_reply(payload.get("data"))
        if reply.status is not None:
            return reply.status, {"detail": reply.error or ""}, _retry_after(reply.retry_after)
        event_id = os.urandom(16).hex()
        with self._lock:
            prompt = self.prompts[-1] if self.prompts else ""
            self._jobs[payload.get("session_hash") or event_id] = (event_id, prompt, reply)
        return 200, {"event_id": event_id}, {}

    @staticmethod
    def _queue_stream(event_id: str, reply: _Reply) -> List[_Piece]:
        pieces = [
            (_sse({"msg": "estimation", "event_id": event_id, "rank": 0, "queue_size": 1, "rank_eta": None}), 0.0),
            (_sse({"msg": "process_starts", "event_id": event_id, "eta": None}), 0.0),
        ]
        pieces.extend((_sse({**message, "event_id": event_id}), 0.0) for message in reply.before)
        previous: Optional[str] = None
        for text in reply.texts:
            if previous is None:
                value: Any = text
            elif text.startswith(previous):
                value = [["append", [], text[len(previous) :]]]
            else:
                value = [["replace", [], text]]
            message = {"msg": "process_generating", "event_id": event_id, "output": {"data": [value]}, "success": True}
            pieces.append((_sse(message), reply.delay))
            previous = text
        if reply.failed:
            output: Dict[str, Any] = {"error": reply.error}
        else:
            output = {"data": [reply.texts[-1] if reply.texts else None]}
        completed = {"msg": "process_completed", "event_id": event_id, "output": output, "success": not reply.failed}
        pieces.append((_sse(completed), 0.0))
        pieces.append((_sse({"msg": "close_stream", "event_id": None}), 0.0))
        return pieces

    @staticmethod
    def _call_stream(reply: _Reply) -> List[_Piece]:
        pieces = [
            (b"event: generating\ndata: " + json.dumps([text]).encode() + b"\n\n", reply.delay) for text in reply.texts
        ]
        if reply.failed:
            pieces.append((b"event: error\ndata: " + json.dumps({"error": reply.error}).encode() + b"\n\n", 0.0))
        else:
            final = reply.texts[-1] if reply.texts else None
            pieces.append((b"event: complete\ndata: " + json.dumps([final]).encode() + b"\n\n", 0.0))
        return pieces

    def _take_job(self, key: str) -> Optional[Tuple[str, str, _Reply]]:
        with self._lock:
            return self._jobs.pop(key, None)

    def _stage(self) -> str:
        life = self._life
        if life is None:
            return "RUNNING"
        return life.stages[min(life.lookups, len(life.stages) - 1)]

    def _hub(self, method: Optional[str], path: str) -> Tuple[int, Dict[str, str], List[_Piece]]:
        json_headers = {"Content-Type": "application/json"}
        prefix, suffix = "/api/spaces/", "/runtime"
        space_id = path[len(prefix) : -len(suffix)] if path.startswith(prefix) and path.endswith(suffix) else ""
        if method != "GET" or space_id.count("/") != 1:
            return 404, json_headers, [(b'{"error": "Not Found"}', 0.0)]
        with self._lock:
            self.runtime_lookups.append(space_id)
            stage = self._stage()
            if self._life is not None:
                self._life.lookups += 1
        runtime = {"stage": stage, "hardware": {"current": "cpu-basic", "requested": "cpu-basic"}}
        return 200, json_headers, [(json.dumps(runtime).encode(), 0.0)]

    def _down(self) -> Optional[int]:
        """The status to answer a request to the Space with while it is down, or None (it runs)."""
        with self._lock:
            life = self._life
            if life is None:
                return None
            if life.down_for is not None:
                if life.down_for <= 0:
                    self._life = None  # awake: this request runs
                    return None
                life.down_for -= 1
            return life.status

    def _handle(self, request: requests.PreparedRequest) -> _Handled:
        parts = urlsplit(request.url or "")
        path, method = parts.path, request.method
        self._record(request)
        if f"{parts.scheme}://{parts.netloc}" == self.hub_url:
            return (*self._hub(method, path), None)
        down = self._down()
        if down is not None:
            return down, {"Content-Type": "text/html; charset=utf-8"}, [(_ASLEEP_PAGE, 0.0)], None
        return self._space(method, path, parts.query, request)

    def _space(self, method: Optional[str], path: str, query: str, request: requests.PreparedRequest) -> _Handled:
        json_headers = {"Content-Type": "application/json"}
        sse_headers = {"Content-Type": "text/event-stream; charset=utf-8"}
        if method == "GET" and path == "/config":
            return 200, json_headers, [(json.dumps(self._config()).encode(), 0.0)], None
        if method == "POST" and path == _PREFIX + "/upload":
            return 200, json_headers, [(json.dumps(self._upload(request)).encode(), 0.0)], None
        if method == "POST" and path in (_PREFIX + "/queue/join", _PREFIX + "/call/generate"):
            status, body, headers = self._job(request)
            return status, {**json_headers, **headers}, [(json.dumps(body).encode(), 0.0)], None
        if method == "GET" and path == _PREFIX + "/queue/data":
            job = self._take_job(parse_qs(query).get("session_hash", [""])[0])
            if job is not None:
                event_id, prompt, reply = job
                return 200, sse_headers, self._queue_stream(event_id, reply), prompt
        if method == "GET" and path.startswith(_PREFIX + "/call/generate/"):
            job = self._take_job(path.rsplit("/", 1)[1])
            if job is not None:
                return 200, sse_headers, self._call_stream(job[2]), job[1]
        return 404, json_headers, [(b'{"detail": "Not Found"}', 0.0)], None


_REASONING_FIELDS = ("reasoning_content", "reasoning")
_DONE = b"data: [DONE]\n\n"
#: The ``type`` vLLM gives an error of an HTTP status (any other: "BadRequestError" below 500).
_ERROR_TYPES = {401: "AuthenticationError", 404: "NotFoundError", 429: "RateLimitError"}


@dataclass
class _Completion:
    """One scripted reply of :class:`FakeOpenAI`: the reasoning and text chunks to stream (each
    after ``delay``), and how the stream ends (``ending``): ``"done"`` (``finish_reason``, the
    usage chunk, ``[DONE]``), ``"error"`` (``error`` in the stream, then ``[DONE]``) or
    ``"cut"`` (nothing more); or, with ``status``, an HTTP error answering the POST."""

    chunks: Tuple[str, ...] = ()
    reasoning: Tuple[str, ...] = ()
    reasoning_field: str = "reasoning_content"
    delay: float = 0.0
    ending: str = "done"
    finish_reason: Optional[str] = "stop"
    usage: Union[bool, Dict[str, Any]] = True
    error: str = ""
    status: Optional[int] = None
    retry_after: Optional[float] = None


def _checked_field(field: str) -> str:
    if field not in _REASONING_FIELDS:
        raise ValueError(f"reasoning_field must be one of {_REASONING_FIELDS}, not {field!r}")
    return field


def _texts(value: Union[str, Sequence[str]], what: str) -> Tuple[str, ...]:
    """Chunks given as one ``str`` or a sequence of them."""
    texts = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(text, str) for text in texts):
        raise TypeError(f"{what} must be str chunks, not {value!r}")
    return texts


def _usage_document(usage: Union[bool, Usage, Mapping[str, Any]]) -> Union[bool, Dict[str, Any]]:
    """The ``usage`` JSON of a scripted :class:`~qvq_sdk.Usage` (or a dict as it is), or a bool."""
    if isinstance(usage, bool):
        return usage
    if isinstance(usage, Mapping):
        return dict(usage)
    if not isinstance(usage, Usage):
        raise TypeError(f"usage must be True, False, a qvq_sdk.Usage or a dict, not {usage!r}")
    counts = ("prompt_tokens", "completion_tokens", "total_tokens")
    document: Dict[str, Any] = {name: getattr(usage, name) for name in counts if getattr(usage, name) is not None}
    if usage.reasoning_tokens is not None:
        document["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return document


def _messages(body: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The messages of a chat request's body (those that are objects)."""
    messages = body.get("messages")
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _message_text(content: Any) -> str:
    """The text of a message's ``content`` (a str, or parts: their text parts, one per line)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _data_uri_bytes(url: str) -> Optional[bytes]:
    """The bytes a ``data:`` URI holds (None for another URL)."""
    if not url.startswith("data:") or "," not in url:
        return None
    head, data = url[5:].split(",", 1)
    if head.endswith(";base64"):
        return base64.b64decode(data)
    return unquote_to_bytes(data)


def _json_reply(status: int, document: Any, headers: Optional[Dict[str, str]] = None) -> _Handled:
    """A JSON reply that is not a chat's stream."""
    return status, {"Content-Type": "application/json", **(headers or {})}, [(json.dumps(document).encode(), 0.0)], None


class FakeOpenAI(_Fake):
    """A scripted OpenAI-compatible server (vLLM, DashScope, OpenRouter...), for clients of
    ``protocol="openai"``. Script replies with :meth:`answer`, :meth:`error_mid_stream`,
    :meth:`cut` and :meth:`http_error`; then chat through :meth:`client`, or through any
    client made inside :meth:`patch`.

    It serves ``POST {base_url}/chat/completions`` and streams as vLLM does: a chunk with the
    role, one per reasoning chunk, one per text chunk (``delta.content``, the last with the
    ``finish_reason``), a usage chunk (``"choices": []``) when the request asks for it with
    ``stream_options.include_usage`` (the SDK does), then ``data: [DONE]``. The reasoning goes
    in ``delta.reasoning_content`` (DashScope, older vLLM) or, with
    ``reasoning_field="reasoning"``, in ``delta.reasoning`` (newer vLLM, OpenRouter).

    ``bodies`` records the JSON body of each chat request (model, messages, ``max_tokens``,
    ``temperature``, what ``extra_body`` added); ``prompts`` the text of each request's last
    user message; ``images`` the bytes of its images (its ``data:`` URIs, in order);
    ``cancelled`` the prompts whose stream the client closed before the server had sent all
    of it; ``requests`` every request it received (``requests.PreparedRequest``).

    Use it as a context manager, or call :meth:`close`, to free the ``requests`` session
    that the clients of :meth:`client` share.
    """

    url = "http://qvq-fake-openai.invalid"
    base_url = "http://qvq-fake-openai.invalid/v1"
    """The API root the clients of :meth:`client` are given (``base_url=``), as a vLLM
    server's ``http://host:8000/v1``."""

    def __init__(self, *, reasoning_field: str = "reasoning_content") -> None:
        super().__init__()
        self.reasoning_field = _checked_field(reasoning_field)
        """The delta field the reasoning goes in (``"reasoning_content"`` or ``"reasoning"``)
        when a script method is not told."""
        self.bodies: List[Dict[str, Any]] = []
        self._script: List[_Completion] = []

    # -- the script --------------------------------------------------------------------------

    def answer(
        self,
        *chunks: str,
        reasoning: Union[str, Sequence[str]] = (),
        finish_reason: Optional[str] = "stop",
        usage: Union[bool, Usage, Mapping[str, Any]] = True,
        delay: float = 0.0,
        reasoning_field: Optional[str] = None,
    ) -> FakeOpenAI:
        """The next chat streams the ``reasoning`` chunks, then these chunks, the last with
        ``finish_reason`` (``"length"``: cut at ``max_tokens``), waiting ``delay`` seconds
        before each.

        ``usage``: ``True`` counts a token per chunk sent and per word of the messages'
        text; a :class:`~qvq_sdk.Usage` (or the JSON as a dict) is sent as it is; ``False``
        sends none. ``reasoning_field`` overrides the fake's for this reply.
        """
        self._script.append(
            _Completion(
                chunks=_texts(chunks, "chunks"),
                reasoning=_texts(reasoning, "reasoning"),
                reasoning_field=self.reasoning_field if reasoning_field is None else _checked_field(reasoning_field),
                delay=delay,
                finish_reason=finish_reason,
                usage=_usage_document(usage),
            )
        )
        return self

    def error_mid_stream(
        self,
        message: str,
        *,
        after: Union[str, Sequence[str]] = (),
        reasoning: Union[str, Sequence[str]] = (),
        delay: float = 0.0,
    ) -> FakeOpenAI:
        """The next chat streams ``reasoning`` and ``after``, then fails as vLLM does:
        ``data: {"error": {"message": ...}}`` then ``[DONE]``; the client raises
        :class:`~qvq_sdk.AppError` with ``.message == message``."""
        return self._broken("error", after, reasoning, delay, message)

    def cut(
        self, *, after: Union[str, Sequence[str]] = (), reasoning: Union[str, Sequence[str]] = (), delay: float = 0.0
    ) -> FakeOpenAI:
        """The next chat streams ``reasoning`` and ``after``, then the stream ends without a
        ``finish_reason`` or ``[DONE]`` (a server or proxy that died): the client raises
        :class:`~qvq_sdk.StreamError`."""
        return self._broken("cut", after, reasoning, delay, "")

    def http_error(
        self, status: int, message: str = "", *, times: int = 1, retry_after: Optional[float] = None
    ) -> FakeOpenAI:
        """The next ``times`` chat requests answer HTTP ``status`` with
        ``{"error": {"message": message, ...}}`` (``message`` defaults to the status's phrase).

        The client retries 429 and 503 (``max_retries``); each retry takes the next scripted
        reply. ``retry_after`` sets a ``Retry-After`` header (0 retries at once).
        """
        try:
            said = message or http.HTTPStatus(status).phrase
        except ValueError:  # a status Python does not name
            said = f"HTTP {status}"
        for _ in range(times):
            self._script.append(_Completion(status=status, error=said, retry_after=retry_after))
        return self

    def _broken(
        self,
        ending: str,
        after: Union[str, Sequence[str]],
        reasoning: Union[str, Sequence[str]],
        delay: float,
        error: str,
    ) -> FakeOpenAI:
        self._script.append(
            _Completion(
                chunks=_texts(after, "after"),
                reasoning=_texts(reasoning, "reasoning"),
                reasoning_field=self.reasoning_field,
                delay=delay,
                ending=ending,
                error=error,
            )
        )
        return self

    # -- using it ----------------------------------------------------------------------------

    def client(self, **options: Any) -> QVQClient:
        """A ``QVQClient(protocol="openai")`` talking to the fake; takes QVQClient's keyword
        options.

        By default it sends no token and does not retry (``max_retries=0``), so a scripted
        HTTP error reaches the caller at once; its ``base_url`` is :attr:`base_url`. The
        clients share one session, which :meth:`close` closes; a ``session=`` of your own
        gets the fake mounted on it.
        """
        return QVQClient(**self._options(options, base_url=self.base_url, protocol="openai"))

    @contextlib.contextmanager
    def patch(self) -> Iterator[FakeOpenAI]:
        """Inside, ``QVQ_BASE_URL`` is :attr:`base_url` and ``QVQ_PROTOCOL`` is ``openai``, so
        a ``QVQClient()`` made without ``space=`` or ``base_url=`` talks to the fake, as does
        any client made with ``base_url=`` :attr:`base_url`."""
        with self._patched(QVQ_BASE_URL=self.base_url, QVQ_PROTOCOL="openai"):
            yield self

    # -- the server's side -------------------------------------------------------------------

    def _handle(self, request: requests.PreparedRequest) -> _Handled:
        self._record(request)
        path = urlsplit(request.url or "").path
        if path != urlsplit(self.base_url).path + "/chat/completions":
            return _json_reply(404, {"detail": "Not Found"})
        if request.method != "POST":
            return _json_reply(405, {"detail": "Method Not Allowed"})
        try:
            body = json.loads(_body(request))
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _json_reply(400, self._error("the request's body is not a JSON object", 400))
        prompt, reply = self._next_reply(body)
        if reply.status is not None:
            return _json_reply(reply.status, self._error(reply.error, reply.status), _retry_after(reply.retry_after))
        headers = {"Content-Type": "text/event-stream; charset=utf-8"}
        return 200, headers, self._stream(body, reply), prompt

    def _next_reply(self, body: Dict[str, Any]) -> Tuple[str, _Completion]:
        """Records the request; its prompt, and the reply scripted for it."""
        messages = _messages(body)
        users = [m for m in messages if m.get("role") == "user"]
        prompt = _message_text(users[-1].get("content")) if users else ""
        images = []
        for message in messages:
            content = message.get("content")
            for part in content if isinstance(content, list) else ():
                url = part.get("image_url", {}).get("url") if isinstance(part, dict) else None
                data = _data_uri_bytes(url) if isinstance(url, str) else None
                if data is not None:
                    images.append(data)
        with self._lock:
            self.bodies.append(body)
            self.prompts.append(prompt)
            self.images.extend(images)
            if self._script:
                return prompt, self._script.pop(0)
        return prompt, _Completion(ending="error", error=f"FakeOpenAI: nothing scripted for the prompt {prompt!r}")

    @staticmethod
    def _error(message: str, status: int) -> Dict[str, Any]:
        kind = _ERROR_TYPES.get(status, "BadRequestError" if status < 500 else "InternalServerError")
        return {"error": {"message": message, "type": kind, "param": None, "code": status}}

    @staticmethod
    def _stream(body: Dict[str, Any], reply: _Completion) -> List[_Piece]:
        """The reply's event stream, framed as vLLM frames it."""
        head = {
            "id": "chatcmpl-" + os.urandom(16).hex(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", ""),
        }

        def chunk(delta: Dict[str, Any], finish_reason: Optional[str] = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _sse({**head, "choices": [choice]})

        pieces = [(chunk({"role": "assistant", "content": ""}), 0.0)]
        pieces.extend((chunk({reply.reasoning_field: text}), reply.delay) for text in reply.reasoning)
        if reply.ending != "done":
            pieces.extend((chunk({"content": text}), reply.delay) for text in reply.chunks)
            if reply.ending == "error":  # one piece: a client that read the error has read the stream
                pieces.append((_sse(FakeOpenAI._error(reply.error, 400)) + _DONE, 0.0))
            return pieces
        texts = reply.chunks or ("",)  # vLLM sends the finish_reason with an empty text when there is none
        for index, text in enumerate(texts):
            last = index == len(texts) - 1
            pieces.append((chunk({"content": text}, reply.finish_reason if last else None), reply.delay))
        stream_options = body.get("stream_options")
        if isinstance(stream_options, dict) and stream_options.get("include_usage") and reply.usage is not False:
            usage = reply.usage if isinstance(reply.usage, dict) else FakeOpenAI._count(body, reply)
            pieces.append((_sse({**head, "choices": [], "usage": usage}), 0.0))
        pieces.append((_DONE, 0.0))
        return pieces

    @staticmethod
    def _count(body: Dict[str, Any], reply: _Completion) -> Dict[str, int]:
        """The fake's token count: a token per word of the messages' text, and per chunk sent."""
        prompt_tokens = sum(len(_message_text(m.get("content")).split()) for m in _messages(body))
        completion_tokens = len(reply.reasoning) + len(reply.chunks)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }


_ENVIRONMENT_LOCK = threading.Lock()


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Sets environment variables for the block, then puts back what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _body(request: requests.PreparedRequest) -> bytes:
    """The request's body as bytes (the SDK sends bytes; a str is encoded, a stream is none)."""
    body = request.body
    if isinstance(body, str):
        return body.encode("utf-8")
    return body if isinstance(body, bytes) else b""


class _FakeAdapter(BaseAdapter):
    """Answers a session's requests from a fake, without a socket."""

    def __init__(self, fake: _Fake) -> None:
        super().__init__()
        self._fake = fake

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, **kwargs: Any
    ) -> requests.Response:
        fake = self._fake
        status, headers, pieces, prompt = fake._handle(request)
        on_close = None if prompt is None else functools.partial(fake._closed, prompt)
        raw = urllib3.HTTPResponse(
            body=_Chunks(pieces, _read_timeout(timeout), on_close),
            headers=headers,
            status=status,
            preload_content=False,
            decode_content=False,
        )
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(headers)
        response.raw = raw
        response.url = request.url or ""
        response.request = request
        response.reason = "OK" if status < 400 else "Error"
        response.encoding = "utf-8"
        response.connection = self  # type: ignore[assignment]
        return response

    def close(self) -> None:
        pass
