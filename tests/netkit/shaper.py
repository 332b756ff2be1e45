"""A latency-shaping TCP relay on 127.0.0.1 in front of one upstream ``host:port``.

    with Shaper("127.0.0.1", server.port, rtt=0.04) as shaper:
        client = QVQClient(base_url=shaper.url_for("http"))   # or "https": bytes are relayed as is
        ...
        assert shaper.connections == 1                        # accepted so far
        shaper.close_idle()                                   # like a server dropping keep-alives

The model, per relayed connection:

* every chunk is delivered ``rtt / 2`` after the relay read it, in each direction, so a request
  and its answer take one ``rtt``;
* the first client->server chunk waits one more ``rtt`` (the TCP handshake), so the first
  response byte of a fresh connection arrives ``>= 2 * rtt`` after the first request byte was
  sent; server->client data is never delivered before ``accepted + 2 * rtt`` either (which
  only matters for a server that speaks first). ``connect()`` itself returns at once (the
  kernel accepts), so the handshake is charged to the first byte, not to ``connect()``;
* order is preserved; a FIN (half-close) is relayed in order after the data before it, and the
  other direction keeps flowing; the connection is closed once both directions have ended;
* a reset or error on either side closes both sides (after the data already read);
* a connection the upstream refuses is accepted and then closed.

There is no bandwidth limit. ``rtt=0`` makes it a plain counting relay (no timers at all).
``rtt`` may be changed while running; it applies to chunks read after the change.

Everything runs on one asyncio loop in one daemon thread; ``stop()`` (or leaving the ``with``)
closes every socket and joins the thread. Standard library only; CPython 3.7+.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import struct
import threading
import time

__all__ = ["ConnectionInfo", "Shaper"]

_READ_SIZE = 256 * 1024
#: Bytes read but not yet delivered, per direction, above which the relay stops reading.
_MAX_QUEUED = 4 * 1024 * 1024
_EOF = object()
_RESET = object()


def _no_delay(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class ConnectionInfo:
    """One relayed connection (a snapshot from ``Shaper.connection_info()``).

    Attributes: ``id`` (1, 2, ... in accept order), ``peer`` (the client's ``(host, port)``),
    ``opened`` and ``closed`` (``time.monotonic()`` values; ``closed`` is None while open),
    ``bytes_up`` (client->server, delivered) and ``bytes_down`` (server->client, delivered).
    """

    __slots__ = ("bytes_down", "bytes_up", "closed", "id", "opened", "peer")

    def __init__(self, id, peer, opened, closed, bytes_up, bytes_down):
        self.id = id
        self.peer = peer
        self.opened = opened
        self.closed = closed
        self.bytes_up = bytes_up
        self.bytes_down = bytes_down

    @property
    def is_open(self):
        return self.closed is None

    def __repr__(self):
        return "<ConnectionInfo #%d %s up=%d down=%d>" % (
            self.id,
            "open" if self.closed is None else "closed",
            self.bytes_up,
            self.bytes_down,
        )


class _Direction:
    """One direction of a relayed connection: a queue of (deliver_at, data|_EOF|_RESET)."""

    __slots__ = ("conn", "done", "first", "floor", "queue", "queued", "space", "timer", "up", "writer")

    def __init__(self, conn, writer, up, floor):
        self.conn = conn
        self.writer = writer
        self.up = up
        self.queue = collections.deque()
        self.queued = 0
        self.timer = None
        self.floor = floor  # nothing is delivered before this loop time
        self.first = True
        self.done = False
        self.space = asyncio.Event()
        self.space.set()


class _Conn:
    def __init__(self, shaper, id, client_writer):
        self.shaper = shaper
        self.id = id
        self.client_writer = client_writer
        self.upstream_writer = None
        self.peer = client_writer.get_extra_info("peername")
        self.opened = time.monotonic()
        self.closed = None
        self.bytes_up = 0
        self.bytes_down = 0
        self.last_activity = shaper._loop.time()
        self.dirs = ()
        self.task = None
        self.done = asyncio.Event()  # set by close()

    def info(self):
        return ConnectionInfo(self.id, self.peer, self.opened, self.closed, self.bytes_up, self.bytes_down)

    def busy(self):
        """Data in flight: queued in the relay or unsent in a socket buffer."""
        for d in self.dirs:
            if d.queue:
                return True
        for w in (self.client_writer, self.upstream_writer):
            if w is not None and w.transport.get_write_buffer_size():
                return True
        return False

    def close(self, reset=False):
        if self.closed is not None:
            return
        self.closed = time.monotonic()
        for d in self.dirs:
            if d.timer is not None:
                d.timer.cancel()
                d.timer = None
            d.queue.clear()
            d.space.set()
        for w in (self.client_writer, self.upstream_writer):
            if w is None:
                continue
            if reset:
                sock = w.get_extra_info("socket")
                try:
                    if sock is not None:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
                w.transport.abort()
            else:
                w.close()
        self.shaper._open.pop(self.id, None)
        self.done.set()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()


class Shaper:
    """A TCP relay ``127.0.0.1:port -> upstream_host:upstream_port`` adding latency (see the
    module docstring). Use as a context manager or call ``start()`` / ``stop()``.

    Attributes:
        host, port: where it listens (``port=0``: a free port, known after ``start()``).
        upstream: ``(upstream_host, upstream_port)``.
        rtt: the round-trip time in seconds (may be changed while running).
        connections: connections accepted so far (an int).
    """

    def __init__(self, upstream_host, upstream_port, rtt=0.04, host="127.0.0.1", port=0):
        self.upstream = (upstream_host, int(upstream_port))
        self.rtt = float(rtt)
        self.host = host
        self.port = port
        self.connections = 0
        self._loop = None
        self._thread = None
        self._server = None
        self._open = {}  # id -> _Conn (loop thread only)
        self._history = []  # every _Conn, in accept order

    # -- public API -----------------------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<Shaper 127.0.0.1:%s -> %s:%d rtt=%.3f>" % (self.port, self.upstream[0], self.upstream[1], self.rtt)

    @property
    def address(self):
        return (self.host, self.port)

    def url_for(self, scheme="http", path=""):
        """``scheme://host:port`` + path, e.g. ``url_for("https")``."""
        return "%s://%s:%d%s" % (scheme, self.host, self.port, path)

    @property
    def url(self):
        return self.url_for("http")

    def start(self):
        if self._thread is not None:
            raise RuntimeError("already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="netkit-shaper-%d" % self.port, daemon=True)
        self._thread.start()
        try:
            self._call(self._start_server(sock), timeout=10)
        except BaseException:
            sock.close()
            self.stop()
            raise
        return self

    def stop(self, timeout=10.0):
        """Close the listener and every relayed connection; join the loop thread."""
        if self._thread is None:
            return
        try:
            if self._loop.is_running():
                self._call(self._shutdown(), timeout=timeout)
        finally:
            if self._loop.is_running():
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._thread = None
            if not self._loop.is_running():
                self._loop.close()

    @property
    def open_connections(self):
        """How many relayed connections are open now."""
        return len(self._open)

    def connection_info(self):
        """A ``ConnectionInfo`` snapshot of every connection so far, in accept order."""
        if self._thread is None:  # stopped (or never started): nothing changes any more
            return [c.info() for c in self._history]
        return self._call(self._snapshot())

    def close_all(self, reset=False):
        """Close every relayed connection, both sides (a FIN; ``reset=True``: an RST).
        Returns how many were closed."""
        return self._call(self._close(None, reset))

    def close_idle(self, idle_for=0.0, reset=False):
        """Close the relayed connections with nothing in flight (nothing queued in the relay
        or unsent in a socket buffer) and no bytes relayed for ``idle_for`` seconds -- like a
        server or proxy dropping idle keep-alive connections. At TCP level a stream that waits
        for its next event looks idle too: call it when the test knows nothing is expected.
        Returns how many were closed."""
        return self._call(self._close(float(idle_for), reset))

    def wait_open(self, count, timeout=5.0):
        """Wait until exactly ``count`` connections are open; True if so within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self._open) == count:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    # -- loop thread ----------------------------------------------------------------------

    def _run(self):
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            try:
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            except Exception:
                pass

    def _call(self, coro, timeout=10.0):
        if self._thread is None or self._loop is None or self._loop.is_closed():
            coro.close()
            raise RuntimeError("the shaper is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start_server(self, sock):
        self._server = await asyncio.start_server(self._handle, sock=sock)

    async def _shutdown(self):
        if self._server is not None:
            self._server.close()
        tasks = [c.task for c in list(self._open.values()) if c.task is not None]
        for conn in list(self._open.values()):
            conn.close()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 5)
            except Exception:
                pass
        # Let the transports' close callbacks run.
        await asyncio.sleep(0)

    async def _snapshot(self):
        return [c.info() for c in self._history]

    async def _close(self, idle_for, reset):
        now = self._loop.time()
        closed = 0
        for conn in list(self._open.values()):
            if idle_for is not None and (conn.busy() or now - conn.last_activity < idle_for):
                continue
            conn.close(reset)
            closed += 1
        await asyncio.sleep(0)
        return closed

    async def _handle(self, client_reader, client_writer):
        # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, which an accepted
        # socket of a listener made with proto 0 is not: without it Nagle holds small writes
        # for a delayed ACK (40 ms), on top of the shaped latency.
        _no_delay(client_writer)
        self.connections += 1
        conn = _Conn(self, self.connections, client_writer)
        conn.task = asyncio.current_task()
        self._open[conn.id] = conn
        self._history.append(conn)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                conn.close()
                return
            if conn.closed is not None:  # closed while connecting
                up_writer.close()
                return
            _no_delay(up_writer)
            conn.upstream_writer = up_writer
            rtt = self.rtt
            accepted = self._loop.time()
            up = _Direction(conn, up_writer, True, accepted)
            down = _Direction(conn, client_writer, False, accepted + 2 * rtt)
            conn.dirs = (up, down)
            await asyncio.gather(self._pump(client_reader, up), self._pump(up_reader, down))
            # Both sides have ended; what is still queued is delivered by _flush, whose last
            # EOF (or a reset) closes the connection.
            await conn.done.wait()
        except asyncio.CancelledError:
            pass
        finally:
            conn.close()

    async def _pump(self, reader, d):
        conn = d.conn
        loop = self._loop
        while conn.closed is None:
            try:
                data = await reader.read(_READ_SIZE)
            except (OSError, asyncio.IncompleteReadError):
                data = _RESET
            if conn.closed is not None:
                return
            now = loop.time()
            conn.last_activity = now
            if data == b"":
                data = _EOF
            rtt = self.rtt
            if rtt <= 0 and not d.queue and d.timer is None:
                self._deliver(d, data)
            else:
                deliver_at = now + rtt / 2
                if d.first and d.up:
                    deliver_at += rtt  # the handshake
                d.first = False
                if deliver_at < d.floor:
                    deliver_at = d.floor
                d.floor = deliver_at
                d.queue.append((deliver_at, data))
                if data is not _EOF and data is not _RESET:
                    d.queued += len(data)
                if d.timer is None:
                    d.timer = loop.call_at(deliver_at, self._flush, d)
            if data is _EOF or data is _RESET:
                return
            if d.queued > _MAX_QUEUED:
                d.space.clear()
                await d.space.wait()
            try:
                await d.writer.drain()
            except (OSError, RuntimeError):
                self._deliver(d, _RESET)
                return

    def _flush(self, d):
        d.timer = None
        conn = d.conn
        if conn.closed is not None:
            return
        now = self._loop.time()
        chunks = []
        while d.queue and d.queue[0][0] <= now:
            data = d.queue.popleft()[1]
            if data is _EOF or data is _RESET:
                if chunks:
                    self._deliver(d, b"".join(chunks))
                    chunks = []
                self._deliver(d, data)
                if conn.closed is not None:
                    return
                continue
            d.queued -= len(data)
            chunks.append(data)
        if chunks:
            self._deliver(d, chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if d.queued <= _MAX_QUEUED:
            d.space.set()
        if d.queue and conn.closed is None:
            d.timer = self._loop.call_at(d.queue[0][0], self._flush, d)

    def _deliver(self, d, data):
        conn = d.conn
        if data is _RESET:
            conn.close()
            return
        if data is _EOF:
            d.done = True
            if all(x.done for x in conn.dirs):
                conn.close()
                return
            try:
                if d.writer.can_write_eof():
                    d.writer.write_eof()
            except OSError:
                conn.close()
            return
        d.writer.write(data)
        conn.last_activity = self._loop.time()
        if d.up:
            conn.bytes_up += len(data)
        else:
            conn.bytes_down += len(data)
