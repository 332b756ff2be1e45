"""Canned Gradio replies and helpers for the responses-based HTTP tests.

Kept out of conftest.py so that test modules can import them by a unique name
(``from httpkit import ...``) whatever other conftest files pytest loads.
"""

import email.parser
import email.policy
import io
import json
import struct
import zlib
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import parse_qs, urlsplit

import responses

BASE = "http://127.0.0.1:7860"
PREFIX = BASE + "/gradio_api"
HF_BASE = "https://qwen-qvq-72b-preview.hf.space"
TOKEN = "hf_TopSecretTokenValue1234567890"
UPLOAD_PATH = "/tmp/gradio/0123abcd/cat.png"
GENERATE_FN_INDEX = 1

# What the canned streams say: three pieces of "Hello world".
ANSWER_PIECES = ["Hel", "lo", " world"]
ANSWER = "".join(ANSWER_PIECES)

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8"}


def make_png(width: int = 1, height: int = 1) -> bytes:
    """A real, tiny PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = make_png()


def gradio5_config(
    *,
    api_prefix: Optional[str] = "/gradio_api",
    endpoints: Sequence[str] = ("lambda", "generate"),
    max_file_size: Optional[int] = None,
    protocol: str = "sse_v3",
) -> Dict[str, Any]:
    """A Gradio 5 ``/config`` document, trimmed to what matters plus some decoration."""
    config: Dict[str, Any] = {
        "version": "5.9.1",
        "mode": "blocks",
        "protocol": protocol,
        "title": "QVQ-72B-preview",
        "components": [{"id": 1, "type": "image"}, {"id": 2, "type": "textbox"}],
        "dependencies": [
            {
                "id": index,
                "targets": [[3, "click"]],
                "inputs": [1, 2],
                "outputs": [2],
                "backend_fn": True,
                "queue": True,
                "api_name": name,
            }
            for index, name in enumerate(endpoints)
        ],
        "max_file_size": max_file_size,
    }
    if api_prefix is not None:
        config["api_prefix"] = api_prefix
    return config


# -- SSE bodies ----------------------------------------------------------------------------


def queue_sse(
    event_id: str,
    pieces: Sequence[str] = ANSWER_PIECES,
    *,
    complete: bool = True,
    final: Optional[str] = None,
    close_stream: bool = True,
) -> bytes:
    """The body of ``GET {prefix}/queue/data``: estimation, start, a full first output,
    then ``append`` diffs, then ``process_completed`` with the whole text."""
    messages: List[Dict[str, Any]] = [
        {"msg": "estimation", "event_id": event_id, "rank": 0, "queue_size": 1, "rank_eta": 0.31},
        {"msg": "process_starts", "event_id": event_id, "eta": 0.31},
    ]
    for index, piece in enumerate(pieces):
        value: Any = piece if index == 0 else [["append", [], piece]]
        messages.append(
            {
                "msg": "process_generating",
                "event_id": event_id,
                "output": {"data": [value], "is_generating": True},
                "success": True,
            }
        )
    if complete:
        text = "".join(pieces) if final is None else final
        messages.append(
            {
                "msg": "process_completed",
                "event_id": event_id,
                "output": {"data": [text], "is_generating": False},
                "success": True,
            }
        )
    if close_stream:
        messages.append({"msg": "close_stream", "event_id": None})
    return sse_data_lines(messages)


def sse_data_lines(messages: Sequence[Any]) -> bytes:
    """``data: <json>`` events, each followed by a blank line (the queue protocol's form)."""
    return "".join("data: " + json.dumps(message) + "\n\n" for message in messages).encode("utf-8")


def queue_error_sse(event_id: str, error: Optional[str]) -> bytes:
    return sse_data_lines(
        [
            {"msg": "process_starts", "event_id": event_id, "eta": None},
            {
                "msg": "process_completed",
                "event_id": event_id,
                "output": {"error": error, "title": "Error"},
                "success": False,
            },
            {"msg": "close_stream", "event_id": None},
        ]
    )


def call_sse(pieces: Sequence[str] = ANSWER_PIECES, *, complete: bool = True) -> bytes:
    """The body of ``GET {prefix}/call/generate/{event_id}``: ``generating`` events with the
    whole output so far, then ``complete``."""
    events = []
    so_far = ""
    for piece in pieces:
        so_far += piece
        events.append(("generating", [so_far]))
    if complete:
        events.append(("complete", [so_far]))
    return call_events(events)


def call_events(events: Sequence[Any]) -> bytes:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode("utf-8")


class ClosingBody(io.BufferedReader):
    """A response body that records whether it was closed (the connection released).

    Like a chunked server, ``read1`` hands out one event (up to a blank line) at a time, so
    the client reads the stream in several pieces; reading after close() fails as a closed
    connection does. (``responses`` passes a BufferedReader through as the raw body.)
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(b""))
        self._data = data
        self._position = 0
        self.close_calls = 0

    def _take(self, end: int) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        piece = self._data[self._position : end]
        self._position += len(piece)
        return piece

    def read(self, size: Optional[int] = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else self._position + size
        return self._take(end)

    def read1(self, size: int = -1) -> bytes:
        end = self._data.find(b"\n\n", self._position)
        end = len(self._data) if end < 0 else end + 2
        if size is not None and size >= 0:
            end = min(end, self._position + size)
        return self._take(end)

    @property
    def unread(self) -> int:
        return len(self._data) - self._position

    def close(self) -> None:
        self.close_calls += 1
        super().close()


def as_body(body: Any) -> ClosingBody:
    return body if isinstance(body, ClosingBody) else ClosingBody(body)


# -- reading what the client sent ----------------------------------------------------------


def query_of(request: Any) -> Dict[str, List[str]]:
    return parse_qs(urlsplit(request.url).query)


def path_of(request: Any) -> str:
    return urlsplit(request.url).path


def json_of(request: Any) -> Any:
    body = request.body
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    return json.loads(body)


def multipart_parts(request: Any) -> List[Dict[str, Any]]:
    """The parts of a multipart/form-data request: name, filename, content type, bytes."""
    content_type = request.headers["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    body = request.body if isinstance(request.body, bytes) else request.body.encode("utf-8")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("ascii") + b"\r\n\r\n" + body
    )
    assert message.is_multipart()
    parts = []
    for part in message.iter_parts():
        parts.append(
            {
                "name": part.get_param("name", header="content-disposition"),
                "filename": part.get_filename(),
                "content_type": part.get_content_type() if part.get("Content-Type") else None,
                "data": part.get_payload(decode=True),
            }
        )
    return parts


def calls_to(rsps: responses.RequestsMock, method: str, path: str) -> List[Any]:
    """The requests the client made with this method to this path (any host, any query)."""
    return [call.request for call in rsps.calls if call.request.method == method and path_of(call.request) == path]


# -- a fake Space --------------------------------------------------------------------------


class FakeSpace:
    """Registers a Gradio 5 Space's routes on a RequestsMock.

    The join callback answers ``event_id = "ev-" + session_hash`` and the stream callback
    answers the body ``stream_body(event_id)`` for the session in its query, so any number
    of chats (and threads) each get their own consistent stream.
    """

    def __init__(self, rsps: responses.RequestsMock, base: str = BASE, api_prefix: str = "/gradio_api") -> None:
        self.rsps = rsps
        self.base = base
        self.prefix = base + api_prefix
        self.api_prefix = api_prefix
        self.stream_bodies: List[ClosingBody] = []

    def config(self, **kwargs: Any) -> "FakeSpace":
        kwargs.setdefault("api_prefix", self.api_prefix)
        self.rsps.add(responses.GET, self.base + "/config", json=gradio5_config(**kwargs))
        return self

    def upload(self, path: str = UPLOAD_PATH) -> "FakeSpace":
        self.rsps.add(responses.POST, self.prefix + "/upload", json=[path])
        return self

    def queue(self, stream_body: Any = None, headers: Optional[Dict[str, str]] = None) -> "FakeSpace":
        """``stream_body(event_id)`` makes the stream's bytes or body (default: the canned answer)."""
        make_body = stream_body or (lambda event_id: queue_sse(event_id))

        def join(request: Any) -> Any:
            session_hash = json_of(request)["session_hash"]
            return 200, {}, json.dumps({"event_id": "ev-" + session_hash})

        def data(request: Any) -> Any:
            session_hash = query_of(request)["session_hash"][0]
            body = as_body(make_body("ev-" + session_hash))
            self.stream_bodies.append(body)
            return 200, dict(SSE_HEADERS if headers is None else headers), body

        self.rsps.add_callback(
            responses.POST, self.prefix + "/queue/join", callback=join, content_type="application/json"
        )
        self.rsps.add_callback(responses.GET, self.prefix + "/queue/data", callback=data)
        return self

    def call(self, body: Any = b"", event_id: str = "abc123", headers: Optional[Dict[str, str]] = None) -> "FakeSpace":
        """``body``: the stream's bytes, or a function making its body (default: the canned answer)."""
        self.rsps.add(responses.POST, self.prefix + "/call/generate", json={"event_id": event_id})
        make_body = body if callable(body) else (lambda: body or call_sse())

        def data(request: Any) -> Any:
            closing = as_body(make_body())
            self.stream_bodies.append(closing)
            return 200, dict(SSE_HEADERS if headers is None else headers), closing

        self.rsps.add_callback(responses.GET, self.prefix + "/call/generate/" + event_id, callback=data)
        return self

    def space_calls(self) -> List[Any]:
        host = urlsplit(self.base).netloc
        return [call.request for call in self.rsps.calls if urlsplit(call.request.url).netloc == host]


# -- fixtures ------------------------------------------------------------------------------
