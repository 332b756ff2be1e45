"""Stand-ins for what sits around a Space on Hugging Face, on 127.0.0.1: the Hub's runtime API
and a front that answers 503 while the Space sleeps.

``HubStandIn`` answers ``GET /api/spaces/<owner>/<name>/runtime`` with ``{"stage": ...}``,
the stages of its script in order (the last one repeated), and records every request
(path and headers). Point a client at it with ``HF_ENDPOINT=hub.url``.

``SleepingFront`` is a TCP relay in front of a Space (any ``host:port``): while it sleeps,
each request gets ``503`` and its connection is closed; ``wake()`` (or ``sleeping_requests=N``:
after N such answers) makes it relay every byte both ways from then on, as Hugging Face's
proxy does once the Space runs. Its listener, accept loop and threads are rawhttp.py's
``TCPServer`` (the fault servers' core).

Standard library only; every thread is joined and every socket closed by ``stop()``.
"""

from __future__ import annotations

import http.server
import json
import re
import select
import socket
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

from rawhttp import TCPServer

_RUNTIME = re.compile(r"^/api/spaces/([^/]+/[^/]+)/runtime$")


class HubStandIn:
    """The Hub's ``/api/spaces/<id>/runtime``, answering a script of stages."""

    def __init__(self, stages: Sequence[str] = ("RUNNING",), space: Optional[str] = None) -> None:
        self.stages: List[str] = list(stages)
        self.space = space  # answer 404 for any other id (None: answer for any)
        self.requests: List[Tuple[str, Dict[str, str]]] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with hub._lock:
                    hub.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                    match = _RUNTIME.match(self.path.split("?", 1)[0])
                    known = match is not None and (hub.space is None or match.group(1) == hub.space)
                    stage = hub.stages.pop(0) if len(hub.stages) > 1 else hub.stages[0]
                if known:
                    self._reply(200, {"stage": stage, "hardware": {"current": "cpu-basic"}})
                else:
                    self._reply(404, {"error": "Repository not found"})

            def _reply(self, code: int, document: Any) -> None:
                body = json.dumps(document).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="hub-standin", daemon=True
        )

    def set_stages(self, *stages: str) -> None:
        with self._lock:
            self.stages = list(stages)

    def lookups(self) -> List[Tuple[str, Dict[str, str]]]:
        with self._lock:
            return list(self.requests)

    def __enter__(self) -> HubStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


_SLEEPING_REPLY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    b"Connection: close\r\n\r\n%s"
)
_SLEEPING_BODY = b'{"error": "The Space is waking up"}'


class SleepingFront(TCPServer):
    """503 while the Space sleeps, then a plain relay to ``upstream_port`` (rawhttp's TCPServer:
    one thread per connection, all joined by ``stop()``)."""

    thread_name = "sleeping-front"

    def __init__(self, upstream_port: int, sleeping_requests: Optional[int] = None, host: str = "127.0.0.1") -> None:
        super().__init__()
        self._upstream = (host, upstream_port)
        self._left = sleeping_requests  # None: asleep until wake()
        self._awake = sleeping_requests == 0
        self.sleeping_answers = 0  # requests answered 503
        self.relayed_connections = 0
        self.url = self.origin

    def wake(self) -> None:
        with self._lock:
            self._awake = True

    @property
    def awake(self) -> bool:
        with self._lock:
            return self._awake

    def _serve(self, sock: socket.socket, number: int) -> None:
        upstream = None
        try:
            head = b""
            while b"\r\n\r\n" not in head:  # the first request's head: answer it, or relay it
                if not self._wait_readable(sock):
                    return
                piece = sock.recv(65536)
                if not piece:
                    return
                head += piece
            with self._lock:
                if not self._awake:
                    self.sleeping_answers += 1
                    if self._left is not None:
                        self._left -= 1
                        self._awake = self._left <= 0
                    asleep = True
                else:
                    self.relayed_connections += 1
                    asleep = False
            if asleep:
                sock.sendall(_SLEEPING_REPLY % (len(_SLEEPING_BODY), _SLEEPING_BODY))
                return
            upstream = socket.create_connection(self._upstream, timeout=10)
            upstream.settimeout(None)
            upstream.sendall(head)
            self._relay(sock, upstream)
        except OSError:
            pass
        finally:
            for end in (sock, upstream):
                if end is not None:
                    try:
                        end.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    end.close()

    def _wait_readable(self, sock: socket.socket) -> bool:
        ready, _, _ = select.select([sock, self._stop_reader], [], [], 30)
        return sock in ready

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copies bytes both ways until either side ends (or the front stops)."""
        while True:
            ready, _, _ = select.select([client, upstream, self._stop_reader], [], [], 60)
            if not ready or self._stop_reader in ready:
                return
            for source, sink in ((client, upstream), (upstream, client)):
                if source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    sink.sendall(data)
