"""A fault-injecting OpenAI-compatible server on 127.0.0.1, framed as vLLM frames its replies,
for the tests of ``protocol="openai"`` (the approach of faultspace.py, without its Gradio routes).

Raw sockets, one thread per connection, HTTP/1.1 keep-alive (a connection serves request
after request, as uvicorn does under vLLM) unless a request says ``Connection: close``, or a
reply has no framing or breaks the connection. Every byte is written by hand, so a test
controls the framing, the timing and how a connection ends (FIN, or RST via ``SO_LINGER`` 0).

Routes, by the name a test uses:

    "chat"    POST /v1/chat/completions
    "models"  GET  /v1/models
    "other"   anything else (FastAPI's 404 ``{"detail": "Not Found"}``)

The healthy chat reply is vLLM's stream: ``Content-Type: text/event-stream``, chunked, each
event ``data: {json}\\n\\n`` in one chunk: the role chunk (``delta {"role": "assistant",
"content": ""}``), the content deltas ("Hel", "lo", " world"), the last one carrying
``finish_reason: "stop"``, a usage chunk (``"choices": []``, ``"usage": {...}``) only when the
request's body asks for it (``stream_options.include_usage``), then ``data: [DONE]``.

A test scripts a reply with ``server.on(route, reply, times=n)``: the next ``n`` requests to
the route (all, if None) get ``reply``. Replies:

    answer(pieces, reasoning_pieces=..., field=..., finish_reason=..., done=..., usage=...)
                         a whole stream (``field``: "reasoning_content" or "reasoning")
    sse(*parts)          a 200 event stream of parts: bytes (one chunk each) or callables
                         acting in place: STALL, RESET, CLOSE, gate(event), USAGE (the usage
                         chunk if the request asked for it)
    error_status(code, message), UNAUTHORIZED (vLLM's 401 ``{"error": "Unauthorized"}``),
    too_many_requests(retry_after), unavailable(), status(...), json_reply(...), redirect(...),
    stall() / reset() (before any header), echo() (answers the last user message's text)

Event builders: ``ROLE``, ``content(text, finish_reason)``, ``reasoning(text, field)``,
``finish(reason)``, ``usage_chunk()``, ``error_event(message)`` (vLLM's error after the
headers), ``llamacpp_error(message)`` (llama.cpp's ``error:`` line), ``openrouter_error_chunk(message)``
(OpenRouter's), ``DONE``.

What the server saw and did, for a test to check or to wait for (bounded, no sleeps):

    server.requests           every request read: ``Request`` (method, path, headers (lower-case
                              names), body, ``.json``, the ``connection`` it came on: 1, 2, ...)
    server.requests_to(route), server.chats (those to "chat")
    server.connections        connections accepted so far
    server.idle_connections   kept-alive connections waiting for their next request
    server.stalled            requests whose reply sent all it sends before a stall, in order
    server.client_closed      numbers of the connections the client closed (FIN or RST seen
                              by the server), in order: how vLLM learns to abort a generation
    server.wait_for(condition, timeout), server.wait_requests(route, count, timeout),
    server.wait_stalled(route, count, timeout), server.wait_client_closed(connection, timeout)

``server.close_idle()`` closes the kept-alive connections waiting for a request, as a server
does at its keep-alive timeout. Images for requests: ``PNG``, ``GIF``, ``make_png(w, h)``.

Anything that waits (a stall, a gate) wakes as soon as the client hangs up or the server
stops, and never lasts longer than ``MAX_WAIT``. ``stop()`` joins every thread and closes
every socket. The pytest fixtures ``openai_server`` and ``make_openai`` (a client of it, with
the token and short timeouts; ``QVQ_API_KEY`` and ``QVQ_PROTOCOL`` removed from the
environment) are defined at the end: a test module imports ``openai_server_fixture`` and
``make_openai_fixture``.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union
from urllib.parse import parse_qs, urlsplit

import pytest

from qvq_sdk import QVQClient

TOKEN = "hf_OpenAIFaultTokenDoNotLeak0123456789"  # what the tests' clients send
MODEL = "Qwen/QVQ-72B-Preview"
COMPLETION_ID = "chatcmpl-fa17fa17fa17fa17"
CREATED = 1735000000
ANSWER_PIECES = ("Hel", "lo", " world")
ANSWER = "".join(ANSWER_PIECES)
REASONING_PIECES = ("Let me ", "look at it.")
REASONING = "".join(REASONING_PIECES)
USAGE_COUNTS = {"prompt_tokens": 21, "total_tokens": 33, "completion_tokens": 12}
SSE = "text/event-stream; charset=utf-8"

MAX_WAIT = 30.0  # seconds any stall or gate lasts at most
REQUEST_LIMIT = 64 * 1024 * 1024  # bytes of a request the server reads at most
IDLE_TIMEOUT = 10.0  # seconds a kept-alive connection waits for its next request


# -- images a chat may carry ---------------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def make_png(width: int = 1, height: int = 1) -> bytes:
    """An RGB PNG, every pixel black (a different size, different bytes)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


PNG = make_png()
GIF = bytes.fromhex("47494638376101000100810000ff00000000000000000000002c000000000100010000080400010404003b")


# -- events, as vLLM writes them ----------------------------------------------------------------


def event(document: Any) -> bytes:
    """One server-sent event: ``data: {json}`` and a blank line (UTF-8, as pydantic writes it)."""
    return b"data: " + json.dumps(document, ensure_ascii=False).encode("utf-8") + b"\n\n"


DONE = b"data: [DONE]\n\n"


def chunk(delta: Optional[Dict[str, Any]] = None, finish_reason: Optional[str] = None) -> bytes:
    """A ``chat.completion.chunk`` with one choice."""
    choice = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}
    return event(
        {
            "id": COMPLETION_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "choices": [choice],
        }
    )


ROLE = chunk({"role": "assistant", "content": ""})


def content(text: str, finish_reason: Optional[str] = None) -> bytes:
    return chunk({"content": text}, finish_reason)


def reasoning(text: str, field: str = "reasoning_content") -> bytes:
    """A reasoning delta: ``reasoning_content`` (DashScope, older vLLM) or ``reasoning`` (vLLM 0.17+)."""
    return chunk({field: text})


def finish(reason: str = "stop") -> bytes:
    """A chunk that only says why the model stopped."""
    return chunk({"content": ""}, reason)


def usage_chunk(usage: Optional[Dict[str, Any]] = None) -> bytes:
    """The last chunk before ``[DONE]`` when the request asked for usage: no choices."""
    return event(
        {
            "id": COMPLETION_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "choices": [],
            "usage": USAGE_COUNTS if usage is None else usage,
        }
    )


def error_event(message: str, type: str = "BadRequestError", code: int = 400) -> bytes:
    """What vLLM sends when generation fails after the headers (then ``[DONE]``)."""
    return event({"error": {"message": message, "type": type, "param": None, "code": code}})


def llamacpp_error(message: str, type: str = "server_error", code: int = 500) -> bytes:
    """What llama.cpp's server (``server_sent_event(sink, "error", ...)``) sends when generation
    fails after the headers: an ``error:`` field, not ``data:`` (then ``[DONE]``)."""
    return b"error: " + json.dumps({"code": code, "message": message, "type": type}).encode("utf-8") + b"\n\n"


def openrouter_error_chunk(message: str, code: Any = "server_error") -> bytes:
    """OpenRouter's mid-stream error: a chunk with the error at its top level and a choice that
    finishes with ``finish_reason: "error"``."""
    return event(
        {
            "id": COMPLETION_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "provider": "openai",
            "error": {"code": code, "message": message},
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
        }
    )


def answer_events(
    pieces: Sequence[str] = ANSWER_PIECES,
    reasoning_pieces: Sequence[str] = (),
    field: str = "reasoning_content",
    finish_reason: Optional[str] = "stop",
) -> List[bytes]:
    """The role chunk, reasoning deltas, content deltas, the last one with ``finish_reason``."""
    events = [ROLE, *(reasoning(piece, field) for piece in reasoning_pieces)]
    if not pieces:
        return [*events, finish(finish_reason)] if finish_reason is not None else events
    events += [content(piece) for piece in pieces[:-1]]
    events.append(content(pieces[-1], finish_reason))
    return events


# -- one request and its reply, on one connection --------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]  # names lower-cased
    body: bytes = field(repr=False)
    version: str = "HTTP/1.1"
    connection: int = 0  # which connection it came on: 1 for the server's first

    @property
    def json(self) -> Any:
        """The body as JSON, or None."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError:
            return None

    @property
    def include_usage(self) -> bool:
        document = self.json
        options = document.get("stream_options") if isinstance(document, dict) else None
        return isinstance(options, dict) and options.get("include_usage") is True

    @property
    def wants_close(self) -> bool:
        """The client asked for its connection to be closed after the reply."""
        tokens = {token.strip().lower() for token in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens


class ClientGone(Exception):
    """The reply ends here: the client hung up (``by_client``), or the server ends it."""

    def __init__(self, by_client: bool) -> None:
        super().__init__("the client hung up" if by_client else "the server ended the connection")
        self.by_client = by_client


class Exchange:
    """The server's side of one request: the raw socket, and helpers to answer on it."""

    def __init__(
        self,
        sock: socket.socket,
        request: Request,
        stopping: socket.socket,
        keep_alive: bool,
        on_stall: Callable[[Request], None],
    ) -> None:
        self.sock = sock
        self.request = request
        self._stopping = stopping
        self._keep_alive = keep_alive and not request.wants_close
        self._on_stall = on_stall
        self.byte_by_byte = False
        self._chunked = False
        self.framed = False  # the reply said where its body ends: the connection may serve another

    def send(self, data: bytes) -> None:
        try:
            if self.byte_by_byte:
                for index in range(len(data)):
                    self.sock.sendall(data[index : index + 1])
            else:
                self.sock.sendall(data)
        except OSError as exc:
            raise ClientGone(by_client=True) from exc

    def head(self, code: int, headers: Sequence[Tuple[str, str]], chunked: bool = False) -> None:
        self._chunked = chunked
        lines = ["HTTP/1.1 %d %s" % (code, REASONS.get(code, "Status")), "server: uvicorn"]
        lines += ["%s: %s" % pair for pair in headers]
        if chunked:
            lines.append("transfer-encoding: chunked")
        self.framed = chunked or any(name.lower() == "content-length" for name, _ in headers)
        if not (self._keep_alive and self.framed):
            lines.append("connection: close")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    @property
    def keeps_alive(self) -> bool:
        return self._keep_alive and self.framed

    def body(self, data: bytes) -> None:
        if not data:
            return
        if self._chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self.send(data)

    def end(self) -> None:
        if self._chunked:
            self.send(b"0\r\n\r\n")

    def reset(self) -> None:
        """Closes with RST instead of FIN: what a crashed server or a dropped route looks like."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        raise ClientGone(by_client=False)

    def wait(self, seconds: float) -> None:
        """Waits ``seconds``; raises ClientGone at once if the client hangs up or the server stops."""
        ready, _, _ = select.select([self.sock, self._stopping], [], [], seconds)
        if self._stopping in ready:
            raise ClientGone(by_client=False)
        if self.sock in ready:
            try:
                data = self.sock.recv(65536)
            except OSError as exc:
                raise ClientGone(by_client=True) from exc
            if not data:
                raise ClientGone(by_client=True)

    def stalling(self) -> None:
        """Records that the reply has sent all it sends before it waits (``server.stalled``)."""
        self._on_stall(self.request)

    def wait_for(self, gate_event: threading.Event) -> None:
        """Waits until the test sets ``gate_event`` (watching the client and the stop signal)."""
        if not gate_event.is_set():
            self.stalling()
        for _ in range(int(MAX_WAIT / 0.05)):
            if gate_event.is_set():
                return
            self.wait(0.05)
        raise ClientGone(by_client=False)


REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

Reply = Callable[[Exchange], None]
Part = Union[bytes, Callable[[Exchange], None]]


# -- replies ----------------------------------------------------------------------------------------


def status(
    code: int, body: Union[bytes, str] = b"", content_type: str = "text/plain; charset=utf-8", headers: Any = ()
) -> Reply:
    """A whole response with a Content-Length."""
    data = body.encode("utf-8") if isinstance(body, str) else body

    def reply(exchange: Exchange) -> None:
        exchange.head(
            code, [("content-type", content_type), ("content-length", str(len(data))), *dict(headers).items()]
        )
        exchange.body(data)

    return reply


def json_reply(document: Any, code: int = 200, headers: Any = ()) -> Reply:
    return status(code, json.dumps(document), "application/json", headers)


def error_status(code: int, message: str, type: str = "BadRequestError", headers: Any = ()) -> Reply:
    """An error status with the OpenAI error body ``{"error": {"message": ...}}`` (vLLM's)."""
    return json_reply({"error": {"message": message, "type": type, "param": None, "code": code}}, code, headers)


#: vLLM's answer to a missing or wrong API key (``--api-key``): not the OpenAI error shape.
UNAUTHORIZED = json_reply({"error": "Unauthorized"}, 401)


def too_many_requests(retry_after: Union[int, float, str, None] = 1, message: str = "Rate limit exceeded") -> Reply:
    """A 429 with ``Retry-After: retry_after`` (no header if None)."""
    headers = {} if retry_after is None else {"Retry-After": "%s" % retry_after}
    return error_status(429, message, "RateLimitError", headers)


def unavailable(message: str = "The model is loading") -> Reply:
    return error_status(503, message, "ServiceUnavailableError")


def redirect(location: str, code: int = 307) -> Reply:
    return status(code, b"", headers={"Location": location})


def reset() -> Reply:
    """RST once the whole request has been read: no status line at all."""
    return lambda exchange: exchange.reset()


def stall() -> Reply:
    """Says nothing (no status line) until the client hangs up or MAX_WAIT passes; the request
    has been read whole (``server.wait_stalled`` says when it got here)."""

    def reply(exchange: Exchange) -> None:
        exchange.stalling()
        exchange.wait(MAX_WAIT)
        raise ClientGone(by_client=False)

    return reply


def sse(
    *parts: Part,
    chunked: bool = True,
    byte_by_byte: bool = False,
    content_type: str = SSE,
    code: int = 200,
    headers: Any = (),
) -> Reply:
    """A 200 event stream of ``parts``: bytes are written as they come (one HTTP chunk each, or
    one byte per write), callables (USAGE, STALL, RESET, CLOSE, gate(...)) act in place. The
    stream then ends cleanly: the last chunk (or a FIN when close-delimited)."""

    def reply(exchange: Exchange) -> None:
        exchange.byte_by_byte = byte_by_byte
        exchange.head(code, [("content-type", content_type), *dict(headers).items()], chunked=chunked)
        for part in parts:
            if callable(part):
                part(exchange)
            else:
                exchange.body(part)
        exchange.end()

    return reply


def USAGE(exchange: Exchange) -> None:
    """The usage chunk, if the request asked for it (``stream_options.include_usage``)."""
    if exchange.request.include_usage:
        exchange.body(usage_chunk())


def STALL(exchange: Exchange) -> None:
    """Sends nothing more until the client hangs up (or MAX_WAIT passes); then a FIN."""
    exchange.stalling()
    exchange.wait(MAX_WAIT)
    raise ClientGone(by_client=False)


def RESET(exchange: Exchange) -> None:
    exchange.reset()


def CLOSE(exchange: Exchange) -> None:
    """Ends the connection with a FIN where it is (a chunked body then lacks its last chunk)."""
    raise ClientGone(by_client=False)


def gate(gate_event: threading.Event) -> Part:
    """Holds the stream until the test sets ``gate_event``; while held, the request counts as stalled."""
    return lambda exchange: exchange.wait_for(gate_event)


def answer(
    pieces: Sequence[str] = ANSWER_PIECES,
    reasoning_pieces: Sequence[str] = (),
    field: str = "reasoning_content",
    finish_reason: Optional[str] = "stop",
    done: bool = True,
    usage: bool = True,
    byte_by_byte: bool = False,
) -> Reply:
    """A whole stream as vLLM sends it (see the module); ``done=False`` leaves out ``[DONE]``,
    ``usage=False`` the usage chunk even when asked for, ``finish_reason=None`` the finish."""
    parts: List[Part] = [*answer_events(pieces, reasoning_pieces, field, finish_reason)]
    if usage:
        parts.append(USAGE)
    if done:
        parts.append(DONE)
    return sse(*parts, byte_by_byte=byte_by_byte)


def last_user_text(document: Any) -> str:
    """The text of the last user message of a chat request's body."""
    for message in reversed(document.get("messages", [])):
        if message.get("role") == "user":
            value = message.get("content")
            if isinstance(value, str):
                return value
            return "".join(part.get("text", "") for part in value if part.get("type") == "text")
    return ""


def echo() -> Reply:
    """Answers with the text of the last user message, in three pieces (for threads: no cross-talk)."""

    def reply(exchange: Exchange) -> None:
        text = last_user_text(exchange.request.json or {})
        third = max(1, len(text) // 3)
        pieces = [text[:third], text[third : 2 * third], text[2 * third :]]
        answer([piece for piece in pieces if piece])(exchange)

    return reply


def models_document() -> Dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "created": CREATED, "owned_by": "vllm", "max_model_len": 32768}],
    }


ROUTES = ("chat", "models", "other")


def route_of(request: Request) -> str:
    if request.method == "POST" and request.path == "/v1/chat/completions":
        return "chat"
    if request.method == "GET" and request.path == "/v1/models":
        return "models"
    return "other"


def healthy(route: str) -> Reply:
    """What a working vLLM answers."""
    if route == "chat":
        return answer()
    if route == "models":
        return json_reply(models_document())
    return json_reply({"detail": "Not Found"}, code=404)


# -- the server -------------------------------------------------------------------------------------


class OpenAIServer:
    """The server. Use as a context manager, or start() and stop()."""

    def __init__(self, keep_alive: bool = True) -> None:
        self.keep_alive = keep_alive
        self.connections = 0
        self.requests: List[Request] = []
        self.stalled: List[Request] = []
        self.client_closed: List[int] = []
        self.errors: List[BaseException] = []  # unexpected failures inside the server
        self._idle: Set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self.origin = "http://127.0.0.1:%d" % self.port
        self.base_url = self.origin + "/v1"
        self._stop_reader, self._stop_writer = socket.socketpair()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._changes = 0
        self._scripts: Dict[str, List[Tuple[Reply, Optional[int]]]] = {}
        self._threads: List[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultopenai-accept", daemon=True)

    # -- scripting

    def on(self, route: str, reply: Reply, times: Optional[int] = None) -> OpenAIServer:
        """The next ``times`` requests to ``route`` (all, if None) get ``reply``."""
        if route not in ROUTES:
            raise ValueError("unknown route %r (routes: %s)" % (route, ", ".join(ROUTES)))
        with self._lock:
            self._scripts.setdefault(route, []).append((reply, times))
        return self

    def clear(self) -> None:
        with self._lock:
            self._scripts.clear()

    def close_idle(self) -> int:
        """Closes the kept-alive connections waiting for a request; returns how many."""
        with self._lock:
            idle, self._idle = list(self._idle), set()
        for sock in idle:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(idle)

    # -- what happened

    def requests_to(self, route: str) -> List[Request]:
        with self._lock:
            return [request for request in self.requests if route_of(request) == route]

    @property
    def idle_connections(self) -> int:
        """Kept-alive connections waiting for their next request."""
        with self._lock:
            return len(self._idle)

    @property
    def chats(self) -> List[Request]:
        """The chat requests read so far."""
        return self.requests_to("chat")

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Waits until ``condition()`` is true (re-checked whenever the server records something,
        and at least every 0.05 s): True, or False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                seen = self._changes
            if condition():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._changed:
                if self._changes == seen:
                    self._changed.wait(min(left, 0.05))

    def _matching(self, requests: List[Request], route: Optional[str]) -> List[Request]:
        with self._lock:
            return [request for request in requests if route is None or route_of(request) == route]

    def wait_requests(self, route: Optional[str] = "chat", count: int = 1, timeout: float = 10.0) -> bool:
        """Until ``count`` requests to ``route`` (any if None) have been read whole."""
        return self.wait_for(lambda: len(self._matching(self.requests, route)) >= count, timeout)

    def wait_stalled(self, route: Optional[str] = "chat", count: int = 1, timeout: float = 10.0) -> bool:
        """Until ``count`` replies to ``route`` (any if None) have sent all they send before a stall."""
        return self.wait_for(lambda: len(self._matching(self.stalled, route)) >= count, timeout)

    def wait_client_closed(self, connection: Optional[int] = None, timeout: float = 10.0) -> bool:
        """Until the client has closed ``connection`` (the last chat's if None): the server saw
        its FIN or RST, as vLLM does when it aborts the generation."""
        if connection is None:
            chats = self.chats
            if not chats:
                return False
            connection = chats[-1].connection
        return self.wait_for(lambda: connection in self.client_closed, timeout)

    # -- running

    def start(self) -> OpenAIServer:
        self._acceptor.start()
        return self

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Joins the connection threads started so far; False if one is still running."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        with self._lock:
            self._threads = [thread for thread in self._threads if thread.is_alive()]
            return not self._threads

    def stop(self) -> None:
        """Wakes everything that waits, joins every thread, closes every socket."""
        self._stop_writer.send(b"x")
        if self._acceptor.is_alive():
            self._acceptor.join(MAX_WAIT)
        self._listener.close()
        idle = self.wait_idle(MAX_WAIT)
        self._stop_reader.close()
        self._stop_writer.close()
        if not idle:
            raise RuntimeError("an OpenAIServer connection thread did not end")

    def _record(self) -> None:
        """Wakes wait_for(); called with the lock held, after a change."""
        self._changes += 1
        self._changed.notify_all()

    def _accept_loop(self) -> None:
        while True:
            ready, _, _ = select.select([self._listener, self._stop_reader], [], [])
            if self._stop_reader in ready:
                return
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._changed:
                self.connections += 1
                number = self.connections
                self._threads = [t for t in self._threads if t.is_alive()]
                thread = threading.Thread(target=self._serve, args=(sock, number), name="faultopenai-conn", daemon=True)
                self._threads.append(thread)
                self._record()
            thread.start()

    # -- one connection

    def _serve(self, sock: socket.socket, number: int) -> None:
        by_client = False
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                request = self._next_request(sock)
                if request is None:
                    return
                request.connection = number
                with self._changed:
                    self.requests.append(request)
                    self._record()
                exchange = Exchange(sock, request, self._stop_reader, self.keep_alive, self._stalling)
                self._reply_for(request)(exchange)
                if not exchange.keeps_alive:
                    return
        except ClientGone as gone:
            by_client = gone.by_client
        except OSError:
            by_client = True  # the client went away while we read its request
        except BaseException as exc:  # a bug in a reply: let the test see it
            with self._lock:
                self.errors.append(exc)
        finally:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            if by_client:
                with self._changed:
                    self.client_closed.append(number)
                    self._record()

    def _stalling(self, request: Request) -> None:
        with self._changed:
            self.stalled.append(request)
            self._record()

    def _next_request(self, sock: socket.socket) -> Optional[Request]:
        """The connection's next request; None when the idle timeout, close_idle() or stop() ends
        it; ClientGone(by_client=True) when the client closed it."""
        with self._changed:
            self._idle.add(sock)
            self._record()
        try:
            ready, _, _ = select.select([sock, self._stop_reader], [], [], IDLE_TIMEOUT)
            if sock not in ready:
                return None
            with self._lock:
                if sock not in self._idle:  # close_idle() shut it down: the server's doing
                    return None
            request = _read_request(sock)
            if request is None:
                raise ClientGone(by_client=True)
            return request
        finally:
            with self._changed:
                self._idle.discard(sock)
                self._record()

    def _reply_for(self, request: Request) -> Reply:
        route = route_of(request)
        with self._lock:
            script = self._scripts.get(route, [])
            if script:
                reply, times = script[0]
                if times is not None:
                    if times <= 1:
                        script.pop(0)
                    else:
                        script[0] = (reply, times - 1)
                return reply
        return healthy(route)


def _read_request(sock: socket.socket) -> Optional[Request]:
    """Reads one request (head, then a Content-Length body); None if the client sent nothing."""
    sock.settimeout(IDLE_TIMEOUT)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            return None
        data += piece
        if len(data) > REQUEST_LIMIT:
            return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = min(int(headers.get("content-length", "0") or 0), REQUEST_LIMIT)
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            return None
        body += piece
    sock.settimeout(None)
    parts = urlsplit(target)
    return Request(method, parts.path, parse_qs(parts.query), headers, body, version.strip())


# -- pytest fixtures (import them by these names; tests ask for "openai_server", "make_openai") ---


@pytest.fixture(name="openai_server")
def openai_server_fixture():
    """An OpenAIServer, healthy until the test scripts a fault; stopped (and checked) at the end."""
    with OpenAIServer() as server:
        yield server
    assert server.errors == [], "the OpenAIServer itself failed: %r" % server.errors


@pytest.fixture(name="make_openai")
def make_openai_fixture(openai_server, monkeypatch):
    """``make_openai(**options)``: a ``protocol="openai"`` client of ``openai_server`` with the
    token and short timeouts, closed at the end. ``QVQ_API_KEY`` and ``QVQ_PROTOCOL`` are
    removed from the environment (the faults conftest removes the Hugging Face ones)."""
    for name in ("QVQ_API_KEY", "QVQ_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    clients: List[QVQClient] = []

    def make(**options: Any) -> QVQClient:
        options.setdefault("token", TOKEN)
        options.setdefault("timeout", (2, 5))
        options.setdefault("base_url", openai_server.base_url)
        client = QVQClient(protocol="openai", **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
