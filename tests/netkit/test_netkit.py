"""Tests of the network test kit itself: TLS certificates, the proxy.py forward proxy and the
latency shaper, against small standard-library servers on 127.0.0.1.

Timing assertions are lower bounds only; "promptly" is checked in lockstep (the server writes
its next chunk only once the client has received the previous one), never with a clock.
"""

from __future__ import annotations

import contextlib
import gc
import http.server
import os
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time

import pytest
import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from netkit.proxy import ProxyUnavailable, proxy_python, start_proxy
from netkit.shaper import Shaper

# trustme and proxy.py come with the test extras; without them only the shaper tests run.
try:
    from netkit.tls import make_certs
except ImportError:
    make_certs = None
try:
    proxy_python()
    _no_proxy = None
except ProxyUnavailable as exc:
    _no_proxy = str(exc)

ACK_TIMEOUT = 5.0


# -- small local servers ------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/lockstep/"):
            self._lockstep(self.path.split("/")[2])
            return
        body = ("hello %s" % self.path).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _lockstep(self, key):
        """An event stream of 4 chunks; chunk i+1 is written only after the test has set
        acks[i] (that is, received chunk i), or after ACK_TIMEOUT (recorded as a failure)."""
        acks = self.server.acks[key]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(len(acks) + 1):
            data = ("data: %d\n\n" % i).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            if i < len(acks) and not acks[i].wait(ACK_TIMEOUT):
                self.server.timeouts.append((key, i))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


@contextlib.contextmanager
def http_server(ssl_context=None):
    server = _HTTPServer(("127.0.0.1", 0), _Handler)
    server.acks, server.timeouts = {}, []
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _EchoHandler(socketserver.BaseRequestHandler):
    """Echoes; on EOF answers b"bye" and half-closes; on a chunk with b"RESET" resets."""

    def handle(self):
        sock = self.request
        while True:
            data = sock.recv(65536)
            if not data:
                sock.sendall(b"bye")
                sock.shutdown(socket.SHUT_WR)
                return
            if b"RESET" in data:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                return
            sock.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def echo_port():
    server = _EchoServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if make_certs is None:
        pytest.skip("trustme is not installed (it is in the test extras)")
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def plain_server():
    with http_server() as server:
        yield server


@pytest.fixture(scope="module")
def tls_server(certs):
    with http_server(certs.server_context()) as server:
        yield server


@pytest.fixture(scope="module")
def proxy():
    if _no_proxy:
        pytest.skip(_no_proxy)
    with start_proxy() as p:
        yield p


@pytest.fixture(scope="module")
def tls_proxy(certs):
    if _no_proxy:
        pytest.skip(_no_proxy)
    with start_proxy(tls_certs=certs) as p:
        yield p


def _session():
    s = requests.Session()
    s.trust_env = False  # no proxy or CA bundle from the environment
    return s


def _recv_exactly(sock, n):
    out = b""
    while len(out) < n:
        data = sock.recv(n - len(out))
        if not data:
            break
        out += data
    return out


def _recv_all(sock):
    out = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return out, "reset"
        if not data:
            return out, "eof"
        out += data


# -- TLS ------------------------------------------------------------------------------------


def test_certs_verify_with_requests_for_ip_and_localhost(certs, tls_server):
    port = tls_server.server_address[1]
    with _session() as s:
        for host in ("127.0.0.1", "localhost"):
            r = s.get("https://%s:%d/tls" % (host, port), verify=certs.ca_pem, timeout=10)
            assert r.text == "hello /tls"
    # A new session: requests < 2.32 would reuse the connection verified with ca_pem above.
    with _session() as s, pytest.raises(requests.exceptions.SSLError):
        s.get("https://127.0.0.1:%d/tls" % port, timeout=10)  # the default CAs do not know it
    for path in (certs.ca_pem, certs.cert_pem, certs.key_pem, certs.combined_pem):
        assert os.path.getsize(path) > 0


def test_client_context_trusts_the_ca_only(certs, tls_server):
    port = tls_server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with certs.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")


# -- shaper ---------------------------------------------------------------------------------

RTT = 0.05


def test_shaper_delays_first_byte_by_two_rtt_then_one_rtt(echo_port):
    with Shaper("127.0.0.1", echo_port, rtt=RTT) as shaper:
        with socket.create_connection(("127.0.0.1", shaper.port), timeout=10) as sock:
            t0 = time.perf_counter()
            sock.sendall(b"ping")
            assert _recv_exactly(sock, 4) == b"ping"
            first = time.perf_counter() - t0
            t1 = time.perf_counter()
            sock.sendall(b"pong")
            assert _recv_exactly(sock, 4) == b"pong"
            second = time.perf_counter() - t1
            assert shaper.connections == 1
            assert shaper.open_connections == 1
        assert first >= 2 * RTT
        assert second >= RTT
        assert shaper.wait_open(0)
        (info,) = shaper.connection_info()
        assert (info.bytes_up, info.bytes_down, info.is_open) == (8, 11, False)  # + b"bye" at EOF


def test_shaper_preserves_order_and_half_close(echo_port):
    payload = os.urandom(3 * 1024 * 1024)
    for rtt in (0, 0.01):
        with Shaper("127.0.0.1", echo_port, rtt=rtt) as shaper:
            with socket.create_connection(("127.0.0.1", shaper.port), timeout=10) as sock:
                for i in range(0, len(payload), 100_000):
                    sock.sendall(payload[i : i + 100_000])
                sock.shutdown(socket.SHUT_WR)  # the echo server answers EOF with b"bye" + FIN
                data, end = _recv_all(sock)
            assert end == "eof"
            assert data == payload + b"bye"


def test_shaper_propagates_a_reset_as_a_close(echo_port):
    with Shaper("127.0.0.1", echo_port, rtt=0.01) as shaper:
        with socket.create_connection(("127.0.0.1", shaper.port), timeout=10) as sock:
            sock.sendall(b"hi")
            assert _recv_exactly(sock, 2) == b"hi"
            sock.sendall(b"RESET")
            data, end = _recv_all(sock)
        assert data == b""
        assert end in ("eof", "reset")
        assert shaper.wait_open(0)


def test_shaper_counts_connections_and_close_idle_is_survived(plain_server):
    port = plain_server.server_address[1]
    with Shaper("127.0.0.1", port, rtt=0.01) as shaper, _session() as s:
        for i in range(3):
            assert s.get(shaper.url_for("http", "/ka%d" % i), timeout=10).text == "hello /ka%d" % i
        assert shaper.connections == 1  # keep-alive reuse
        assert shaper.close_idle() == 1
        assert shaper.wait_open(0)
        assert s.get(shaper.url_for("http", "/after"), timeout=10).text == "hello /after"
        assert shaper.connections == 2
        assert shaper.close_idle(idle_for=60) == 0  # not idle for that long
        assert shaper.close_all(reset=True) == 1
        assert s.get(shaper.url + "/after-reset", timeout=10).text == "hello /after-reset"
        assert shaper.connections == 3


def test_shaper_relays_tls_untouched(certs, tls_server):
    with Shaper("127.0.0.1", tls_server.server_address[1], rtt=0) as shaper, _session() as s:
        assert (
            s.get(shaper.url_for("https", "/via-shaper"), verify=certs.ca_pem, timeout=10).text == "hello /via-shaper"
        )
        assert shaper.connections == 1


# -- proxy ----------------------------------------------------------------------------------


def test_proxy_forwards_http_and_records_it(proxy, plain_server):
    port = plain_server.server_address[1]
    before = len(proxy.requests())
    with _session() as s:
        for i in range(2):
            # (no Response kept: a live Response keeps its socket open past Session.close())
            assert s.get("http://127.0.0.1:%d/fwd%d" % (port, i), proxies=proxy.proxies, timeout=10).text == (
                "hello /fwd%d" % i
            )
        seen = proxy.wait_for_requests(before + 2)[before:]
        assert [(r.method, r.target, r.path, r.misrouted) for r in seen] == [
            ("GET", "127.0.0.1:%d" % port, "/fwd0", False),
            ("GET", "127.0.0.1:%d" % port, "/fwd1", False),
        ]
    # The access log has one line per client connection, written when it closes.
    gc.collect()
    log = [a for a in proxy.wait_for_access_log(1) if a.path == "/fwd0"]
    assert log, proxy.log_tail()
    assert log[0].method == "GET" and log[0].status == 200 and log[0].bytes > 0


def test_proxy_tunnels_https_and_tls_proxy_does_tls_in_tls(proxy, tls_proxy, certs, tls_server):
    port = tls_server.server_address[1]
    for p in (proxy, tls_proxy):
        before = len(p.requests())
        with _session() as s:
            url = "https://127.0.0.1:%d/tunnel" % port
            assert s.get(url, proxies={"https": p.url}, verify=certs.ca_pem, timeout=10).text == "hello /tunnel"
        assert p.url.startswith("https://" if p is tls_proxy else "http://")
        gc.collect()  # a Response in a reference cycle would keep the tunnel open
        (seen,) = p.wait_for_requests(before + 1)[before:]
        assert (seen.method, seen.target, seen.path) == ("CONNECT", "127.0.0.1:%d" % port, None)
        tunnels = [a for a in p.wait_for_access_log(1) if a.method == "CONNECT" and a.client == seen.client]
        assert tunnels and tunnels[0].bytes > 0


def test_tls_proxy_is_verified_with_verify(tls_proxy, tls_server, tmp_path):
    other = make_certs(tmp_path)  # a CA that signed neither the proxy nor the server
    with _session() as s, pytest.raises(requests.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        s.get(
            "https://127.0.0.1:%d/x" % tls_server.server_address[1],
            proxies={"https": tls_proxy.url},
            verify=other.ca_pem,
            timeout=10,
        )


@pytest.mark.parametrize("mode", ["forward", "connect", "tls-in-tls"])
def test_proxy_relays_a_chunked_stream_promptly(mode, proxy, tls_proxy, plain_server, tls_server, certs):
    server, p, scheme = {
        "forward": (plain_server, proxy, "http"),
        "connect": (tls_server, proxy, "https"),
        "tls-in-tls": (tls_server, tls_proxy, "https"),
    }[mode]
    key = mode
    acks = server.acks[key] = [threading.Event() for _ in range(3)]
    url = "%s://127.0.0.1:%d/lockstep/%s" % (scheme, server.server_address[1], key)
    events, buf = [], b""
    with _session() as s:
        with s.get(url, proxies={scheme: p.url}, verify=certs.ca_pem, stream=True, timeout=10) as r:
            for chunk in r.iter_content(chunk_size=None):
                buf += chunk
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    events.append(event)
                    if len(events) <= len(acks):
                        acks[len(events) - 1].set()  # lets the server write the next one
    assert events == [b"data: %d" % i for i in range(4)]
    assert [t for t in server.timeouts if t[0] == key] == []  # nothing waited for the end


def test_proxy_sends_a_keepalive_connections_requests_to_its_first_upstream(proxy, plain_server, tls_server):
    """proxy.py quirk (documented in netkit.proxy): a later request on the same client
    connection naming another host goes to the first request's upstream."""
    first, other = plain_server.server_address[1], tls_server.server_address[1]
    before = len(proxy.requests())
    with _session() as s:
        s.get("http://127.0.0.1:%d/first" % first, proxies=proxy.proxies, timeout=10)
        with contextlib.suppress(requests.RequestException):
            s.get("http://127.0.0.1:%d/second" % other, proxies=proxy.proxies, timeout=10)
    seen = proxy.wait_for_requests(before + 2)[before:]
    assert [r.misrouted for r in seen] == [False, True]
    assert seen[1].upstream == "127.0.0.1:%d" % first


def test_stopping_leaves_no_process_or_thread(echo_port):
    if not _no_proxy:
        with start_proxy() as p:
            pgid = p.process.pid
            assert p.process.poll() is None
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)  # the proxy and its acceptor processes are gone (stop waited for it)
    shaper = Shaper("127.0.0.1", echo_port, rtt=0.01).start()
    with socket.create_connection(("127.0.0.1", shaper.port), timeout=10) as sock:
        sock.sendall(b"x")
        assert _recv_exactly(sock, 1) == b"x"
        thread = shaper._thread
        shaper.stop()
        assert not thread.is_alive()
        assert _recv_all(sock) == (b"", "eof")  # the relayed connection was closed
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", shaper.port), timeout=1).close()
