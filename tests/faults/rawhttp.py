"""The raw-socket machinery that the fault-injecting servers here share: faultspace.py (the
Gradio Space), faultopenai.py (an OpenAI-compatible server) and hubkit.py's SleepingFront.

What it provides (standard library only; every byte written by hand, so a test controls the
framing, the timing and the way a connection ends: FIN, or RST through ``SO_LINGER`` 0):

    TCPServer       a listener on 127.0.0.1: one accept thread, one thread per connection
                    (``_serve(sock, number)``, a subclass's), ``connections``, ``errors``,
                    ``wait_for(condition, timeout)``, ``start()``/``stop()`` or ``with``,
                    ``wait_idle()``; ``stop()`` wakes what waits, joins every thread, closes
                    every socket
    RawHTTPServer   HTTP/1.1 on it: a subclass names its ``routes`` and gives ``route_of(request)``
                    and ``healthy(route, request)``; a test scripts ``on(route, reply, times)``
                    and ``clear()``. Keep-alive (``keep_alive=True``) unless a request asks for
                    ``Connection: close`` (or is HTTP/1.0 without ``keep-alive``) or a reply has
                    no framing or breaks the connection; ``close_idle()``. Records (re-checked by
                    ``wait_for``): ``requests``, ``requests_to(route)``, ``stalled``,
                    ``idle_connections``, ``client_closed`` (the connections whose client hung
                    up, in order), ``wait_requests(route, count)``, ``wait_stalled(route, count)``
    Request         what was read: method, path, query, headers (lower-case names), body,
                    version, ``connection`` (1 for the server's first), ``.json``, ``.wants_close``
    Exchange        one request's reply on the raw socket: ``head``, ``body`` (one chunk each
                    when chunked), ``end``, ``send``, ``byte_by_byte``, ``reset``, ``wait``,
                    ``stalling``, ``wait_for(event)``; a subclass may write a header preamble
                    and lower-case names (``preamble``, ``lower_case``)
    ClientGone      raised to end a reply: the client hung up (``by_client``) or the server ends it
    replies         ``status``, ``json_reply``, ``redirect``, ``reset``, ``stall``, ``event_stream``
    parts           of an event stream, acting in place: ``RESET``, ``STALL``, ``CLOSE``,
                    ``heartbeats(data, interval)``, ``gate(event)``

Anything that waits (a stall, heartbeats, a gate, an idle connection) wakes as soon as the
client hangs up or the server stops, and never lasts longer than ``MAX_WAIT`` seconds.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, TypeVar, Union
from urllib.parse import parse_qs, urlsplit

SSE = "text/event-stream; charset=utf-8"
MAX_WAIT = 30.0  # seconds any stall, gate or heartbeat loop lasts at most
REQUEST_LIMIT = 64 * 1024 * 1024  # bytes of a request the server reads at most
IDLE_TIMEOUT = 10.0  # seconds a connection waits for (the rest of) its next request

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
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


# -- one request and its reply, on one connection ------------------------------------------------


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
    def wants_close(self) -> bool:
        """The client asked for its connection to be closed after the reply."""
        tokens = {token.strip().lower() for token in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens


def read_request(sock: socket.socket) -> Optional[Request]:
    """Reads one request (head, then a Content-Length body); None if the client hung up first."""
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


class ClientGone(Exception):
    """The reply ends here: the client hung up (``by_client``), or the server ends it."""

    def __init__(self, by_client: bool = False) -> None:
        super().__init__("the client hung up" if by_client else "the server ended the connection")
        self.by_client = by_client


class Exchange:
    """The server's side of one request: the raw socket, and helpers to answer on it."""

    preamble: Tuple[str, ...] = ()  # header lines written first, after the status line
    lower_case = False  # every header name written in lower case

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

    @property
    def keeps_alive(self) -> bool:
        """The connection serves another request after this reply."""
        return self._keep_alive and self.framed

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
        """The status line and ``headers``, then ``Transfer-Encoding: chunked`` if ``chunked``, and
        ``Connection: close`` unless the connection stays alive (it needs a framed body for that)."""
        self._chunked = chunked
        pairs = list(headers)
        if chunked:
            pairs.append(("Transfer-Encoding", "chunked"))
        self.framed = chunked or any(name.lower() == "content-length" for name, _ in pairs)
        if not self.keeps_alive:
            pairs.append(("Connection", "close"))
        lines = ["HTTP/1.1 %d %s" % (code, REASONS.get(code, "Status")), *self.preamble]
        lines += ["%s: %s" % (name.lower() if self.lower_case else name, value) for name, value in pairs]
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
        """Closes with RST instead of FIN: what a crashed server or proxy, or a dropped route, looks like."""
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
        """Records that the reply has sent all it sends before it waits (the server's ``stalled``)."""
        if self._on_stall is not None:
            self._on_stall(self.request)

    def wait_for(self, event: threading.Event) -> None:
        """Waits until the test sets ``event`` (watching the client and the stop signal)."""
        if not event.is_set():
            self.stalling()
        for _ in range(int(MAX_WAIT / 0.05)):
            if event.is_set():
                return
            self.wait(0.05)
        raise ClientGone(by_client=False)


Reply = Callable[[Exchange], None]
Part = Union[bytes, Callable[[Exchange], None]]


# -- replies, and the parts of a stream -----------------------------------------------------------


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


def reset() -> Reply:
    """RST once the whole request has been read: no status line at all."""
    return lambda exchange: exchange.reset()


def stall() -> Reply:
    """Says nothing (no status line) until the client hangs up or MAX_WAIT passes, then a FIN; the
    request has been read whole (the server's ``wait_stalled`` says when it got here)."""
    return STALL


def event_stream(
    *parts: Part,
    chunked: bool = True,
    byte_by_byte: bool = False,
    content_type: str = SSE,
    code: int = 200,
    headers: Any = (),
) -> Reply:
    """A 200 event stream of ``parts``: bytes are written as they come (one HTTP chunk each, or
    one byte per write), callables (RESET, STALL, CLOSE, heartbeats(...), gate(...)) act in place.
    The stream then ends cleanly: the last chunk, or a FIN when close-delimited."""

    def reply(exchange: Exchange) -> None:
        exchange.byte_by_byte = byte_by_byte
        exchange.head(code, [("Content-Type", content_type), *dict(headers).items()], chunked=chunked)
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
    raise ClientGone(by_client=False)


def CLOSE(exchange: Exchange) -> None:
    """Ends the connection with a FIN where it is (a chunked body then lacks its last chunk)."""
    raise ClientGone(by_client=False)


def heartbeats(data: bytes, interval: float = 0.05) -> Part:
    """Sends ``data`` every ``interval`` seconds, until the client hangs up (never ends by itself)."""

    def part(exchange: Exchange) -> None:
        for _ in range(int(MAX_WAIT / interval)):
            exchange.body(data)
            exchange.wait(interval)
        raise ClientGone(by_client=False)

    return part


def gate(event: threading.Event) -> Part:
    """Holds the stream until the test sets ``event`` (e.g. once it has read some text); while
    held, the request counts as stalled."""
    return lambda exchange: exchange.wait_for(event)


# -- the servers ----------------------------------------------------------------------------------

_Server = TypeVar("_Server", bound="TCPServer")
_HTTPServer = TypeVar("_HTTPServer", bound="RawHTTPServer")


class TCPServer:
    """A listener on 127.0.0.1, one accept thread, one thread per connection (``_serve``, a
    subclass's). Use as a context manager, or start() and stop()."""

    thread_name = "rawhttp"  # threads are named thread_name + "-accept", thread_name + "-conn"

    def __init__(self) -> None:
        self.connections = 0  # connections accepted so far
        self.errors: List[BaseException] = []  # unexpected failures inside the server
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self.origin = "http://127.0.0.1:%d" % self.port
        self._stop_reader, self._stop_writer = socket.socketpair()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified whenever the server records something
        self._changes = 0  # how many times the server recorded something (see wait_for)
        self._threads: List[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name=self.thread_name + "-accept", daemon=True)

    def _serve(self, sock: socket.socket, number: int) -> None:
        """Serves connection ``number`` (1 for the first) in its own thread, and closes ``sock``."""
        raise NotImplementedError

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Waits until ``condition()`` (called without the server's lock held) is true: re-checked
        whenever the server records something, and at least every 0.05 s. False if it is still
        false after ``timeout`` seconds."""
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

    def _recorded(self) -> None:
        """Wakes wait_for(); called with the lock held, after a change."""
        self._changes += 1
        self._changed.notify_all()

    def start(self: _Server) -> _Server:
        self._acceptor.start()
        return self

    def __enter__(self: _Server) -> _Server:
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
            raise RuntimeError("a %s connection thread did not end" % type(self).__name__)

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
                name = self.thread_name + "-conn"
                thread = threading.Thread(target=self._serve, args=(sock, number), name=name, daemon=True)
                self._threads.append(thread)
                self._recorded()
            thread.start()


class RawHTTPServer(TCPServer):
    """An HTTP/1.1 server whose replies a test scripts per route (see the module)."""

    routes: Tuple[str, ...] = ("other",)  # the names ``on`` takes
    exchange_class = Exchange

    def __init__(self, keep_alive: bool = False) -> None:
        """``keep_alive``: a connection serves request after request until a reply breaks it or
        :meth:`close_idle` closes it; else each reply closes it."""
        super().__init__()
        self.keep_alive = keep_alive
        self.base_url = self.origin
        self.requests: List[Request] = []  # every request, in the order read
        self.stalled: List[Request] = []  # requests whose reply reached a stall (stall, STALL, gate), in order
        self.client_closed: List[int] = []  # numbers of the connections the client closed, in order
        self._idle: Set[socket.socket] = set()
        self._scripts: Dict[str, List[Tuple[Reply, Optional[int]]]] = {}

    def route_of(self, request: Request) -> str:
        """The name of the route ``request`` goes to (one of ``routes``)."""
        return "other"

    def healthy(self, route: str, request: Request) -> Reply:
        """What the working server answers on ``route``."""
        return json_reply({"detail": "Not Found"}, code=404)

    # -- scripting

    def on(self: _HTTPServer, route: str, reply: Reply, times: Optional[int] = None) -> _HTTPServer:
        """The next ``times`` requests to ``route`` (all, if None) get ``reply``."""
        if route not in self.routes:
            raise ValueError("unknown route %r (routes: %s)" % (route, ", ".join(self.routes)))
        with self._lock:
            self._scripts.setdefault(route, []).append((reply, times))
        return self

    def clear(self) -> None:
        """Forgets every scripted reply: the server is healthy again."""
        with self._lock:
            self._scripts.clear()

    def close_idle(self) -> int:
        """Closes the kept-alive connections that wait for a request (as a server or proxy closes
        idle connections at its keep-alive timeout); returns how many."""
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
            return [request for request in self.requests if self.route_of(request) == route]

    @property
    def idle_connections(self) -> int:
        """Kept-alive connections waiting for their next request."""
        with self._lock:
            return len(self._idle)

    def wait_requests(self, route: Optional[str] = None, count: int = 1, timeout: float = 10.0) -> bool:
        """Waits until ``count`` requests to ``route`` (to any route if None) have been read whole."""
        return self.wait_for(lambda: len(self._matching(self.requests, route)) >= count, timeout)

    def wait_stalled(self, route: Optional[str] = None, count: int = 1, timeout: float = 10.0) -> bool:
        """Waits until ``count`` replies to ``route`` (any if None) have sent all they send before a
        stall (``stall()``, ``STALL``, a closed ``gate``) and wait: the client has been sent every
        byte before it."""
        return self.wait_for(lambda: len(self._matching(self.stalled, route)) >= count, timeout)

    def _matching(self, requests: List[Request], route: Optional[str]) -> List[Request]:
        with self._lock:
            return [request for request in requests if route is None or self.route_of(request) == route]

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
                    self._recorded()
                exchange = self.exchange_class(sock, request, self._stop_reader, self.keep_alive, self._stalling)
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
                    self._recorded()

    def _stalling(self, request: Request) -> None:
        with self._changed:
            self.stalled.append(request)
            self._recorded()

    def _next_request(self, sock: socket.socket) -> Optional[Request]:
        """The connection's next request; None when the idle timeout, close_idle() or stop() ends
        it; ClientGone(by_client=True) when the client closed it."""
        with self._changed:
            self._idle.add(sock)
            self._recorded()
        try:
            ready, _, _ = select.select([sock, self._stop_reader], [], [], IDLE_TIMEOUT)
            if sock not in ready:
                return None
            with self._lock:
                if sock not in self._idle:  # close_idle() shut it down: the server's doing
                    return None
            request = read_request(sock)
            if request is None:
                raise ClientGone(by_client=True)
            return request
        finally:
            with self._changed:
                self._idle.discard(sock)
                self._recorded()

    def _reply_for(self, request: Request) -> Reply:
        route = self.route_of(request)
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
        return self.healthy(route, request)
