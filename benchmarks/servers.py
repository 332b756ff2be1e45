"""The servers the clients talk to, and the relays that count what passes.

- the tests' real-server harness (``tests/realserver/servers.py``: the ``gradio==5.9.1``
  stand-in of the Space), the latency shaper (``tests/netkit/shaper.py``) and throw-away TLS
  certificates (``tests/netkit/tls.py``), all borrowed from the test kit;
- ``CountingProxy``: a loopback relay that counts the bytes the server sends;
- ``ShaperStats``: a control port that reports the shaper's connections and bytes;
- ``openai_stub()``: ``openai_stub.py``, the openai scenario's server, in a process of its own.

The counters answer on control ports of their own, one line of ASCII per connection, so that
a worker process reads them around each chat.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import threading

from venvs import HERE, REPO, python_of


def _load(relative, name):
    path = os.path.join(REPO, *relative.split("/"))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_servers():
    """The real-server harness of the tests, imported by path."""
    return _load("tests/realserver/servers.py", "qvq_realserver_servers")


def load_shaper():
    """tests/netkit/shaper.py's ``Shaper`` (standard library only), imported by path."""
    return _load("tests/netkit/shaper.py", "qvq_netkit_shaper").Shaper


def make_certs(directory):
    """A throw-away CA and server certificate for 127.0.0.1 (tests/netkit/tls.py, trustme, run
    in the tls venv); returns ``(certfile, keyfile, cafile)``."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from netkit.tls import make_certs; "
        "c = make_certs(sys.argv[2]); print(c.cert_pem); print(c.key_pem); print(c.ca_pem)"
    )
    done = subprocess.run(
        [python_of("tls"), "-c", code, os.path.join(REPO, "tests"), directory], capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit("making the TLS certificates failed: %s" % done.stderr[-500:])
    return tuple(done.stdout.split())


@contextlib.contextmanager
def openai_stub():
    """Runs ``openai_stub.py`` (this Python) until the block ends; yields ``(port, stats_port)``."""
    process = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "openai_stub.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        ports = process.stdout.readline().split()
        if len(ports) != 2:
            raise SystemExit("openai_stub.py did not start (exit %s)" % process.poll())
        yield int(ports[0]), int(ports[1])
    finally:
        process.stdin.close()  # the stub ends when its standard input closes
        process.wait(timeout=30)
        process.stdout.close()


def listen():
    """A listening socket on 127.0.0.1, on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class CountingProxy:
    """Forwards 127.0.0.1:port to the server and counts the bytes the server sends.

    ``counter_port`` answers each connection with the running count, one line of ASCII.
    """

    def __init__(self, target_port):
        self.target_port = target_port
        self.received = 0
        self._lock = threading.Lock()
        self._listener = listen()
        self._counter = listen()
        self.port = self._listener.getsockname()[1]
        self.counter_port = self._counter.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._answer_counts, daemon=True).start()

    def _answer_counts(self):
        while True:
            conn, _ = self._counter.accept()
            with conn:
                with self._lock:
                    count = self.received
                conn.sendall(b"%d\n" % count)

    def _accept(self):
        while True:
            client, _ = self._listener.accept()
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source, sink, count):
        buffer = bytearray(256 * 1024)
        view = memoryview(buffer)
        try:
            while True:
                n = source.recv_into(buffer)
                if not n:
                    break
                if count:
                    with self._lock:
                        self.received += n
                sink.sendall(view[:n])
        except OSError:
            pass
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass
        if count:  # the server-to-client pump closes both sockets last
            source.close()
            sink.close()


class ShaperStats:
    """Answers each connection to ``port`` with ``"<connections> <bytes>\\n"``: the connections
    the shaper has accepted so far and the bytes it has delivered to its clients."""

    def __init__(self, shaper):
        self.shaper = shaper
        self._listener = listen()
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._answer, daemon=True).start()

    def _answer(self):
        while True:
            conn, _ = self._listener.accept()
            with conn:
                received = sum(c.bytes_down for c in self.shaper.connection_info())
                conn.sendall(b"%d %d\n" % (self.shaper.connections, received))
