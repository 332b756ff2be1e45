"""A scripted HTTP/1.1 server on 127.0.0.1 for the unit tests of the transport's lowest layers
(pools, the streamed body): one thread per connection, nothing but the standard library.

The n-th request head it reads is answered by the n-th script, and every later one by
``then``. A script is a list of steps: bytes are sent, an ``Event`` is waited for (at most
``wait_limit`` seconds), a float is seconds to sleep, :data:`CLOSE` closes the connection.
After a script the connection reads on, for its next request (keep-alive) or its end, so a
script that stops before the end of its body (or an empty one) stalls. It records the
connections it accepted, the requests (``received`` is set at the first), and whether a
client closed its end (``closed_by_client``).
"""

import socket
import threading
import time

CLOSE = "close"  # in a script: the server closes the connection


class LoopbackServer:
    """See the module. ``url`` is ``http://127.0.0.1:PORT`` + ``path``."""

    def __init__(self, *scripts, then=(), path="/", wait_limit=10.0):
        self.scripts = [*scripts, list(then)]
        self.wait_limit = wait_limit
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}{path}"
        self.accepted = 0
        self.requests = 0
        self.received = threading.Event()  # a request head arrived
        self.closed_by_client = threading.Event()  # a connection's client end closed
        self._connections = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection):
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = connection.recv(65536)
                    if not data:
                        self.closed_by_client.set()
                        return
                    buffer += data
                _, buffer = buffer.split(b"\r\n\r\n", 1)
                with self._lock:
                    script = self.scripts[min(self.requests, len(self.scripts) - 1)]
                    self.requests += 1
                self.received.set()
                for step in script:
                    if step is CLOSE:
                        connection.close()
                        return
                    if isinstance(step, threading.Event):
                        step.wait(self.wait_limit)
                    elif isinstance(step, float):
                        time.sleep(step)
                    else:
                        connection.sendall(step)
        except OSError:
            self.closed_by_client.set()

    def close(self):
        self.listener.close()
        for connection in self._connections:
            try:
                connection.close()
            except OSError:
                pass
