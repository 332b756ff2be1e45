"""A scripted, in-process stand-in of the Space for testing code that uses qvq-sdk.

No network and no Gradio: :class:`FakeSpace` is a ``requests`` transport adapter that
speaks the Space's two protocols (config, upload, queue and call) from a script::

    from qvq_sdk.testing import FakeSpace

    space = FakeSpace()
    space.answer("Hel", "lo")            # the next chat streams "Hel", "lo"
    space.app_error("Boom")              # the one after fails with AppError("Boom")
    client = space.client()
    assert "".join(client.chat("hi")) == "Hello"

Each scripted reply answers one chat, in order; a chat with nothing scripted left gets an
:class:`~qvq_sdk.AppError` saying so. ``space.patch()`` routes every ``QVQClient`` made
inside it (the ``qvq`` command's too) to the fake.
"""

from __future__ import annotations

import contextlib
import email.parser
import io
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import requests
import urllib3
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from . import _transport
from ._client import QVQClient

__all__ = ["FakeSpace"]

_PREFIX = "/gradio_api"
_QUOTA = "You have exceeded your GPU quota (60s left vs. 120s requested)."


@dataclass
class _Reply:
    """One scripted reply: successive whole texts, or an error."""

    texts: List[str] = field(default_factory=list)
    delay: float = 0.0
    error: Optional[str] = None
    failed: bool = False
    status: Optional[int] = None
    retry_after: Optional[float] = None


# A body piece, and the seconds to wait before sending it.
_Piece = Tuple[bytes, float]


class _Chunks(io.RawIOBase):
    """A response body handed out piece by piece, each after its wait."""

    def __init__(self, pieces: List[_Piece]) -> None:
        self._pieces = iter(pieces)
        self._current = b""
        self._closing = threading.Event()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._current:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            chunk, wait = piece
            if wait and self._closing.wait(wait):
                return 0
            self._current = chunk
        size = min(len(buffer), len(self._current))
        buffer[:size] = self._current[:size]
        self._current = self._current[size:]
        return size

    def close(self) -> None:
        self._closing.set()
        super().close()


def _sse(message: Any) -> bytes:
    return b"data: " + json.dumps(message).encode() + b"\n\n"


class FakeSpace:
    """A scripted Space. Script replies with :meth:`answer`, :meth:`rewrite`,
    :meth:`app_error`, :meth:`quota_error` and :meth:`http_error`; then chat through
    :meth:`client`, or through any client made inside :meth:`patch`.

    ``prompts`` and ``images`` record what the fake received, in order.
    """

    url = "http://qvq-fake-space.invalid"

    def __init__(self) -> None:
        self.prompts: List[str] = []
        self.images: List[bytes] = []
        self._script: List[_Reply] = []
        self._uploads: Dict[str, bytes] = {}
        self._jobs: Dict[str, Tuple[str, _Reply]] = {}
        self._lock = threading.Lock()
        self._adapter = _FakeAdapter(self)

    # -- the script --------------------------------------------------------------------------

    def answer(self, *chunks: str, delay: float = 0.0) -> FakeSpace:
        """The next chat streams these chunks (waiting ``delay`` seconds before each)."""
        texts = []
        text = ""
        for chunk in chunks:
            text += chunk
            texts.append(text)
        self._script.append(_Reply(texts=texts, delay=delay))
        return self

    def rewrite(self, first: str, second: str, delay: float = 0.0) -> FakeSpace:
        """The next chat sends ``first``, then replaces it with ``second``."""
        self._script.append(_Reply(texts=[first, second], delay=delay))
        return self

    def app_error(self, message: Optional[str] = None, *, after: Tuple[str, ...] = ()) -> FakeSpace:
        """The next chat fails in the app with ``message`` (None: hidden), after streaming ``after``."""
        reply = self.answer(*after)._script[-1]
        reply.error, reply.failed = message, True
        return self

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
            self._script.append(_Reply(error=message, status=status, retry_after=retry_after))
        return self

    # -- using it ----------------------------------------------------------------------------

    def session(self) -> requests.Session:
        """A ``requests.Session`` that sends the fake's URL to the fake."""
        session = requests.Session()
        session.mount(self.url, self._adapter)
        return session

    def client(self, **options: Any) -> QVQClient:
        """A ``QVQClient`` talking to the fake; takes QVQClient's keyword options.

        By default it sends no token and does not retry (``max_retries=0``), so a scripted
        HTTP error reaches the caller at once.
        """
        options.setdefault("token", False)
        options.setdefault("max_retries", 0)
        return QVQClient(base_url=self.url, session=self.session(), **options)

    @contextlib.contextmanager
    def patch(self) -> Iterator[FakeSpace]:
        """Inside, every ``QVQClient`` made without ``space=``/``base_url=`` talks to the fake."""
        original = _transport.Transport._new_session
        saved = os.environ.get("QVQ_BASE_URL")

        def new_session() -> requests.Session:
            session = original()
            session.mount(self.url, self._adapter)
            return session

        _transport.Transport._new_session = staticmethod(new_session)
        os.environ["QVQ_BASE_URL"] = self.url
        try:
            yield self
        finally:
            _transport.Transport._new_session = staticmethod(original)
            if saved is None:
                os.environ.pop("QVQ_BASE_URL", None)
            else:
                os.environ["QVQ_BASE_URL"] = saved

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
        return _Reply(error=f"FakeSpace: nothing scripted for the prompt {self.prompts[-1]!r}", failed=True)

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
            headers = {} if reply.retry_after is None else {"Retry-After": "%g" % reply.retry_after}
            return reply.status, {"detail": reply.error or ""}, headers
        event_id = os.urandom(16).hex()
        with self._lock:
            self._jobs[payload.get("session_hash") or event_id] = (event_id, reply)
        return 200, {"event_id": event_id}, {}

    @staticmethod
    def _queue_stream(event_id: str, reply: _Reply) -> List[_Piece]:
        pieces = [
            (_sse({"msg": "estimation", "event_id": event_id, "rank": 0, "queue_size": 1, "rank_eta": None}), 0.0),
            (_sse({"msg": "process_starts", "event_id": event_id, "eta": None}), 0.0),
        ]
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

    def _take_job(self, key: str) -> Optional[Tuple[str, _Reply]]:
        with self._lock:
            return self._jobs.pop(key, None)

    def _handle(self, request: requests.PreparedRequest) -> Tuple[int, Dict[str, str], List[_Piece]]:
        parts = urlsplit(request.url or "")
        path, method = parts.path, request.method
        json_headers = {"Content-Type": "application/json"}
        sse_headers = {"Content-Type": "text/event-stream; charset=utf-8"}
        if method == "GET" and path == "/config":
            return 200, json_headers, [(json.dumps(self._config()).encode(), 0.0)]
        if method == "POST" and path == _PREFIX + "/upload":
            return 200, json_headers, [(json.dumps(self._upload(request)).encode(), 0.0)]
        if method == "POST" and path in (_PREFIX + "/queue/join", _PREFIX + "/call/generate"):
            status, body, headers = self._job(request)
            return status, {**json_headers, **headers}, [(json.dumps(body).encode(), 0.0)]
        if method == "GET" and path == _PREFIX + "/queue/data":
            job = self._take_job(parse_qs(parts.query).get("session_hash", [""])[0])
            if job is not None:
                return 200, sse_headers, self._queue_stream(*job)
        if method == "GET" and path.startswith(_PREFIX + "/call/generate/"):
            job = self._take_job(path.rsplit("/", 1)[1])
            if job is not None:
                return 200, sse_headers, self._call_stream(job[1])
        return 404, json_headers, [(b'{"detail": "Not Found"}', 0.0)]


def _body(request: requests.PreparedRequest) -> bytes:
    """The request's body as bytes (the SDK sends bytes; a str is encoded, a stream is none)."""
    body = request.body
    if isinstance(body, str):
        return body.encode("utf-8")
    return body if isinstance(body, bytes) else b""


class _FakeAdapter(BaseAdapter):
    """Answers a session's requests from a :class:`FakeSpace`, without a socket."""

    def __init__(self, space: FakeSpace) -> None:
        super().__init__()
        self._space = space

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any
    ) -> requests.Response:
        status, headers, pieces = self._space._handle(request)
        raw = urllib3.HTTPResponse(
            body=io.BufferedReader(_Chunks(pieces)),
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
