"""A fault-injecting stand-in of the QVQ Space: a raw-socket HTTP server on 127.0.0.1.

It speaks both of the Space's protocols (see PROTOCOL.md) and, on demand, does what a real
Gradio server will not do when asked: reset a connection, stall, end a stream early, send
bad bytes, answer any status with any body, redirect anywhere. Every byte is written by
hand, so a test controls framing (chunked or close-delimited), timing (one byte per TCP
write) and the way a connection ends (FIN, or RST through ``SO_LINGER`` 0).

Routes (the Gradio 5 layout, ``api_prefix`` ``/gradio_api``), by the name a test uses:

    "config"       GET  /config
    "upload"       POST /gradio_api/upload
    "join"         POST /gradio_api/queue/join
    "queue/data"   GET  /gradio_api/queue/data?session_hash=...
    "call"         POST /gradio_api/call/generate
    "call/stream"  GET  /gradio_api/call/generate/<event_id>

Each route answers healthily by default ("Hello world" in three pieces). A test scripts a
fault with ``space.on(route, reply, times=n)``: the next ``n`` requests to the route (all
of them when ``times`` is None) get ``reply`` instead. Replies are built by the functions
below (``status``, ``json_reply``, ``redirect``, ``too_many_requests``, ``reset``, ``stall``,
``event_stream``). Any route, "other" included, can be made to stall once the server has read
the whole request: ``space.on("upload", stall())``.

What the server saw and did, for the test to check or wait for (no sleeps that assume a state):

    space.requests            every request, in the order read: ``Request`` (method, path, query,
                              headers, body, the ``connection`` it came on, 1 for the first)
    space.requests_to(route)  those to one route
    space.connections         connections accepted so far
    space.stalled             the requests whose reply sent all it sends before a stall
                              (``stall()``, ``STALL``, a ``gate`` not yet open) and waited there,
                              in the order they got there (they stay when the stall ends)
    space.idle_connections    kept-alive connections waiting for their next request
    space.wait_for(condition, timeout)   until ``condition()`` is true (re-checked whenever the
                              server records something): True, or False after ``timeout`` s
    space.wait_requests(route, count), space.wait_stalled(route, count)   the same, for
                              ``count`` requests to (or stalls on) ``route`` (any route if None)

And of the client, for a test that claims a thread is blocked somewhere:
``wait_until_in(thread, "socket.py", "readinto")`` waits until ``thread`` is in that function
(there: a blocking read of a response body over plain HTTP).

Connections: a request with ``Connection: close`` (or an HTTP/1.0 one without ``Connection:
keep-alive``) gets ``Connection: close`` in its reply and its connection closed after it, as a
real HTTP/1.1 server does, so a client that asks for that cannot pass the keep-alive tests.

Threads and sockets: one accept thread, one thread per connection, every connection closed
by its own thread. Anything that waits (a stall, heartbeats, a gate) wakes as soon as the
client hangs up or the server stops, and never waits longer than ``MAX_WAIT`` seconds.
``stop()`` joins every thread and closes every socket; ``wait_idle()`` joins the
connection threads so far (the leak test counts threads and descriptors after it).
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union
from urllib.parse import parse_qs, urlsplit

TOKEN = "hf_FaultTestTokenDoNotLeak0123456789"  # what the tests' clients send
EVENT_ID = "fa17" * 8
UPLOADED_PATH = "/tmp/gradio/fa17/image.png"
ANSWER_PIECES = ("Hel", "lo", " world")
ANSWER = "".join(ANSWER_PIECES)
PREFIX = "/gradio_api"
SSE = "text/event-stream; charset=utf-8"

MAX_WAIT = 30.0  # seconds any stall, gate or heartbeat loop lasts at most
REQUEST_LIMIT = 64 * 1024 * 1024  # bytes of a request the server reads at most
REQUEST_READ_TIMEOUT = 10.0


# -- what the healthy Space says ----------------------------------------------------------


def config_document() -> Dict[str, Any]:
    """A trimmed Gradio 5 ``/config``: ``generate`` is dependency 1."""
    return {
        "version": "5.9.1",
        "api_prefix": PREFIX,
        "protocol": "sse_v3",
        "max_file_size": None,
        "dependencies": [
            {"id": 0, "api_name": "lambda", "queue": True, "backend_fn": True},
            {"id": 1, "api_name": "generate", "queue": True, "backend_fn": True},
        ],
    }


def queue_event(message: Dict[str, Any]) -> bytes:
    """One event of the queue protocol: a ``data:`` line of JSON and a blank line."""
    return b"data: " + json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n\n"


def call_event(name: str, data: Any) -> bytes:
    """One event of the call protocol: ``event:`` and a ``data:`` line of JSON."""
    return ("event: %s\ndata: %s\n\n" % (name, json.dumps(data))).encode("utf-8")


def queue_events(pieces: Sequence[str] = ANSWER_PIECES, complete: bool = True) -> List[bytes]:
    """Estimation, start, the first piece whole, the rest as ``append`` diffs, completion."""
    events = [
        queue_event({"msg": "estimation", "event_id": EVENT_ID, "rank": 0, "queue_size": 1, "rank_eta": 0.1}),
        queue_event({"msg": "process_starts", "event_id": EVENT_ID, "eta": 0.1}),
    ]
    for index, piece in enumerate(pieces):
        value: Any = piece if index == 0 else [["append", [], piece]]
        events.append(
            queue_event(
                {
                    "msg": "process_generating",
                    "event_id": EVENT_ID,
                    "output": {"data": [value], "is_generating": True},
                    "success": True,
                }
            )
        )
    if complete:
        events.append(
            queue_event(
                {
                    "msg": "process_completed",
                    "event_id": EVENT_ID,
                    "output": {"data": ["".join(pieces)], "is_generating": False},
                    "success": True,
                }
            )
        )
        events.append(queue_event({"msg": "close_stream", "event_id": None}))
    return events


def call_events(pieces: Sequence[str] = ANSWER_PIECES, complete: bool = True) -> List[bytes]:
    """``generating`` events with the whole text so far, then ``complete``."""
    events = []
    text = ""
    for piece in pieces:
        text += piece
        events.append(call_event("generating", [text]))
    if complete:
        events.append(call_event("complete", [text]))
    return events


QUEUE_HEARTBEAT = queue_event({"msg": "heartbeat", "event_id": None})
CALL_HEARTBEAT = call_event("heartbeat", None)


@dataclass(frozen=True)
class Wire:
    """What differs between the two protocols, for tests that run on both."""

    protocol: str
    start: str  # the route that starts a job
    stream: str  # the route that streams it
    events: Callable[..., List[bytes]]
    heartbeat: bytes

    def event(self, payload: Any, name: str = "generating") -> bytes:
        """An event carrying ``payload`` as its JSON data."""
        if self.protocol == "queue":
            return queue_event(payload)
        return call_event(name, payload)

    def raw_event(self, data: bytes, name: bytes = b"generating") -> bytes:
        """An event whose data line is ``data``, byte for byte."""
        if self.protocol == "queue":
            return b"data: " + data + b"\n\n"
        return b"event: " + name + b"\ndata: " + data + b"\n\n"

    def text_event(self, text: str) -> bytes:
        """An event that sets the whole output to ``text`` (a first output on the queue protocol)."""
        if self.protocol == "queue":
            return queue_event(
                {"msg": "process_generating", "event_id": EVENT_ID, "output": {"data": [text]}, "success": True}
            )
        return call_event("generating", [text])

    def completion(self, text: str) -> List[bytes]:
        if self.protocol == "queue":
            return [
                queue_event(
                    {"msg": "process_completed", "event_id": EVENT_ID, "output": {"data": [text]}, "success": True}
                ),
                queue_event({"msg": "close_stream", "event_id": None}),
            ]
        return [call_event("complete", [text])]


WIRES = {
    "queue": Wire("queue", "join", "queue/data", queue_events, QUEUE_HEARTBEAT),
    "call": Wire("call", "call", "call/stream", call_events, CALL_HEARTBEAT),
}


# -- one request and its response, on one connection -----------------------------------------


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
    def wants_close(self) -> bool:
        """The client asked for its connection to be closed after the reply."""
        tokens = {token.strip().lower() for token in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens


class ClientGone(Exception):
    """The client hung up (or the server is stopping): the reply ends here."""


class Exchange:
    """The server's side of one request: the raw socket, and helpers to answer on it."""

    def __init__(
        self,
        sock: socket.socket,
        request: Request,
        stopping: socket.socket,
        keep_alive: bool = False,
        on_stall: Optional[Callable[[Request], None]] = None,
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
            raise ClientGone() from exc

    def head(self, code: int, headers: Sequence[Tuple[str, str]], chunked: bool = False) -> None:
        self._chunked = chunked
        lines = ["HTTP/1.1 %d %s" % (code, REASONS.get(code, "Status"))]
        lines += ["%s: %s" % pair for pair in headers]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        self.framed = chunked or any(name.lower() == "content-length" for name, _ in headers)
        if not (self._keep_alive and self.framed):
            lines.append("Connection: close")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

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
        """Closes with RST instead of FIN: what a crashed proxy or a dropped route looks like."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        raise ClientGone()

    def wait(self, seconds: float) -> None:
        """Waits ``seconds``; raises ClientGone at once if the client hangs up or the server stops."""
        ready, _, _ = select.select([self.sock, self._stopping], [], [], seconds)
        if self._stopping in ready:
            raise ClientGone()
        if self.sock in ready:
            try:
                if not self.sock.recv(65536):
                    raise ClientGone()
            except OSError as exc:
                raise ClientGone() from exc

    def stalling(self) -> None:
        """Records that the reply has sent all it sends before it waits (``FaultSpace.stalled``)."""
        if self._on_stall is not None:
            self._on_stall(self.request)

    def wait_for(self, event: threading.Event) -> None:
        """Waits until the test sets ``event`` (polling the client and the stop signal)."""
        if not event.is_set():
            self.stalling()
        for _ in range(int(MAX_WAIT / 0.05)):
            if event.is_set():
                return
            self.wait(0.05)
        raise ClientGone()


REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    410: "Gone",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

Reply = Callable[[Exchange], None]
Part = Union[bytes, Callable[[Exchange], None]]


# -- replies --------------------------------------------------------------------------------


def status(
    code: int, body: Union[bytes, str] = b"", content_type: str = "text/plain; charset=utf-8", headers: Any = ()
) -> Reply:
    """A whole response with a Content-Length."""
    data = body.encode("utf-8") if isinstance(body, str) else body

    def reply(exchange: Exchange) -> None:
        exchange.head(
            code, [("Content-Type", content_type), ("Content-Length", str(len(data))), *dict(headers).items()]
        )
        exchange.body(data)

    return reply


def json_reply(document: Any, code: int = 200, headers: Any = ()) -> Reply:
    return status(code, json.dumps(document), "application/json", headers)


def redirect(location: str, code: int = 307) -> Reply:
    return status(code, b"", headers={"Location": location})


def too_many_requests(
    retry_after: Union[int, float, str, None] = 1, body: Union[bytes, str] = "Too Many Requests"
) -> Reply:
    """A 429 with ``Retry-After: retry_after`` (seconds, or any text such as an HTTP date;
    no header if None)."""
    headers = {} if retry_after is None else {"Retry-After": "%s" % retry_after}
    return status(429, body, headers=headers)


def reset() -> Reply:
    """RST right after reading the request: no status line at all."""
    return lambda exchange: exchange.reset()


def stall() -> Reply:
    """Says nothing, until the client hangs up (or MAX_WAIT passes); the request has been read
    whole (``FaultSpace.wait_stalled`` says when it got here)."""

    def reply(exchange: Exchange) -> None:
        exchange.stalling()
        exchange.wait(MAX_WAIT)

    return reply


def event_stream(
    *parts: Part, chunked: bool = True, byte_by_byte: bool = False, content_type: str = SSE, code: int = 200
) -> Reply:
    """A 200 event stream of ``parts``: bytes are written as they come (one chunk each, or
    one byte per write), callables (RESET, CLOSE, STALL, heartbeats(...), gate(...)) act in place.
    The stream then ends cleanly: the last chunk, or a FIN when close-delimited."""

    def reply(exchange: Exchange) -> None:
        exchange.byte_by_byte = byte_by_byte
        headers = [("Content-Type", content_type), ("Cache-Control", "no-cache")]
        exchange.head(code, headers, chunked=chunked)
        for part in parts:
            if callable(part):
                part(exchange)
            else:
                exchange.body(part)
        exchange.end()

    return reply


def RESET(exchange: Exchange) -> None:
    exchange.reset()


def STALL(exchange: Exchange) -> None:
    """Sends nothing more, until the client hangs up (or MAX_WAIT passes); then a FIN."""
    exchange.stalling()
    exchange.wait(MAX_WAIT)
    raise ClientGone()


def CLOSE(exchange: Exchange) -> None:
    """Ends the connection with a FIN where it is (a chunked body then lacks its last chunk)."""
    raise ClientGone()


def heartbeats(data: bytes, interval: float = 0.05) -> Part:
    """Sends ``data`` every ``interval`` seconds, until the client hangs up (never ends by itself)."""

    def part(exchange: Exchange) -> None:
        for _ in range(int(MAX_WAIT / interval)):
            exchange.body(data)
            exchange.wait(interval)
        raise ClientGone()

    return part


def gate(event: threading.Event) -> Part:
    """Holds the stream until the test sets ``event`` (e.g. once it has read some text); while
    held, the request counts as stalled."""
    return lambda exchange: exchange.wait_for(event)


# -- the client's side ----------------------------------------------------------------------


def wait_until_in(thread: threading.Thread, filename: str, function: str, timeout: float = 10.0) -> bool:
    """Whether ``thread`` gets (within ``timeout`` s) into ``function`` of a file named
    ``filename`` (a base name, e.g. "socket.py"), anywhere in its stack: e.g. blocked in a
    socket read (``"socket.py", "readinto"``) or in an ``Event.wait`` (``"threading.py", "wait"``)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = sys._current_frames().get(thread.ident)  # type: ignore[arg-type]
        while frame is not None:
            code = frame.f_code
            if code.co_name == function and os.path.basename(code.co_filename) == filename:
                return True
            frame = frame.f_back
        if time.monotonic() >= deadline or not thread.is_alive():
            return False
        time.sleep(0.001)  # a poll, bounded by the deadline


# -- the server ------------------------------------------------------------------------------


class FaultSpace:
    """The server. Use as a context manager, or start() and stop()."""

    def __init__(self, keep_alive: bool = False) -> None:
        """``keep_alive``: a connection serves request after request (as Gradio does) until
        a reply breaks it or :meth:`close_idle` closes it; else each reply closes it."""
        self.keep_alive = keep_alive
        self.connections = 0  # connections accepted so far
        self.stalled: List[Request] = []  # requests whose reply reached a stall (stall, STALL, gate), in order
        self._idle: Set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self.base_url = "http://127.0.0.1:%d" % self.port
        self._stop_reader, self._stop_writer = socket.socketpair()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified whenever the server records something
        self._scripts: Dict[str, List[Tuple[Reply, Optional[int]]]] = {}
        self._threads: List[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultspace-accept", daemon=True)
        self.requests: List[Request] = []
        self.errors: List[BaseException] = []  # unexpected failures inside the server
        self._changes = 0  # how many times the server recorded something (see wait_for)

    # -- scripting

    def on(self, route: str, reply: Reply, times: Optional[int] = None) -> FaultSpace:
        """The next ``times`` requests to ``route`` (all, if None) get ``reply``."""
        if route not in ROUTES:
            raise ValueError("unknown route %r (routes: %s)" % (route, ", ".join(ROUTES)))
        with self._lock:
            self._scripts.setdefault(route, []).append((reply, times))
        return self

    def clear(self) -> None:
        """Forgets every scripted fault: the Space is healthy again."""
        with self._lock:
            self._scripts.clear()

    def close_idle(self) -> int:
        """Closes the kept-alive connections that wait for a request (as a server or proxy
        closes idle connections); returns how many."""
        with self._lock:
            idle, self._idle = list(self._idle), set()
        for sock in idle:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(idle)

    def requests_to(self, route: str) -> List[Request]:
        with self._lock:
            return [request for request in self.requests if route_of(request) == route]

    @property
    def idle_connections(self) -> int:
        """Kept-alive connections waiting for their next request."""
        with self._lock:
            return len(self._idle)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Waits until ``condition()`` (called without the server's lock held) is true: re-checked
        whenever the server records a request, a stall, a connection or an idle one, and at
        least every 0.05 s. False if it is still false after ``timeout`` seconds."""
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

    def wait_requests(self, route: Optional[str] = None, count: int = 1, timeout: float = 10.0) -> bool:
        """Waits until ``count`` requests to ``route`` (to any route if None) have been read."""
        return self.wait_for(lambda: len(self._matching(self.requests, route)) >= count, timeout)

    def wait_stalled(self, route: Optional[str] = None, count: int = 1, timeout: float = 10.0) -> bool:
        """Waits until ``count`` replies to ``route`` (any if None) have sent all they send before a
        stall (``stall()``, ``STALL``, a closed ``gate``) and wait: the client has been sent every
        byte before it."""
        return self.wait_for(lambda: len(self._matching(self.stalled, route)) >= count, timeout)

    def _matching(self, requests: List[Request], route: Optional[str]) -> List[Request]:
        with self._lock:
            return [request for request in requests if route is None or route_of(request) == route]

    def _recorded(self) -> None:
        """Wakes wait_for(); called with the lock held, after a change."""
        self._changes += 1
        self._changed.notify_all()

    # -- running

    def start(self) -> FaultSpace:
        self._acceptor.start()
        return self

    def __enter__(self) -> FaultSpace:
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
            raise RuntimeError("a FaultSpace connection thread did not end")

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
                thread = threading.Thread(target=self._serve, args=(sock, number), name="faultspace-conn", daemon=True)
                self._threads.append(thread)
                self._recorded()
            thread.start()

    # -- one connection

    def _serve(self, sock: socket.socket, number: int) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                request = self._next_request(sock)
                if request is None:
                    return
                request.connection = number
                with self._changed:
                    self.requests.append(request)
                    self._recorded()
                exchange = Exchange(sock, request, self._stop_reader, self.keep_alive, self._stalling)
                self._reply_for(request)(exchange)
                if not (self.keep_alive and exchange.framed) or request.wants_close:
                    return
        except ClientGone:
            pass
        except OSError:
            pass  # the client went away while we read its request
        except BaseException as exc:  # a bug in a reply: let the test see it
            with self._lock:
                self.errors.append(exc)
        finally:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _stalling(self, request: Request) -> None:
        with self._changed:
            self.stalled.append(request)
            self._recorded()

    def _next_request(self, sock: socket.socket) -> Optional[Request]:
        """The connection's next request; None when the client, close_idle() or stop() ends it."""
        with self._changed:
            self._idle.add(sock)
            self._recorded()
        try:
            ready, _, _ = select.select([sock, self._stop_reader], [], [], REQUEST_READ_TIMEOUT)
            if sock not in ready:
                return None
            return _read_request(sock)
        finally:
            with self._changed:
                self._idle.discard(sock)
                self._recorded()

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
        return healthy(route, request)


def _read_request(sock: socket.socket) -> Optional[Request]:
    """Reads one request (head, then a Content-Length body); None if the client sent nothing."""
    sock.settimeout(REQUEST_READ_TIMEOUT)
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
            break
        body += piece
    sock.settimeout(None)
    parts = urlsplit(target)
    return Request(method, parts.path, parse_qs(parts.query), headers, body, version.strip())


ROUTES = ("config", "upload", "join", "queue/data", "call", "call/stream", "other")


def route_of(request: Request) -> str:
    path = request.path
    if request.method == "GET" and path == "/config":
        return "config"
    if request.method == "POST" and path == PREFIX + "/upload":
        return "upload"
    if request.method == "POST" and path == PREFIX + "/queue/join":
        return "join"
    if request.method == "GET" and path == PREFIX + "/queue/data":
        return "queue/data"
    if request.method == "POST" and path == PREFIX + "/call/generate":
        return "call"
    if request.method == "GET" and path.startswith(PREFIX + "/call/generate/"):
        return "call/stream"
    return "other"


def healthy(route: str, request: Request) -> Reply:
    """What a working Space answers."""
    if route == "config":
        return json_reply(config_document())
    if route == "upload":
        return json_reply([UPLOADED_PATH])
    if route in ("join", "call"):
        return json_reply({"event_id": EVENT_ID})
    if route == "queue/data":
        return event_stream(*queue_events())
    if route == "call/stream":
        return event_stream(*call_events())
    return json_reply({"detail": "Not Found"}, code=404)
