"""A fault-injecting stand-in of the QVQ Space: a raw-socket HTTP server on 127.0.0.1.

This module holds what is the Space's own: its routes, its healthy answers, the events of its
two protocols (``queue_event``, ``call_event``, ``WIRES``, ...). The HTTP/1.1 server, the
request record, the waits and the reply primitives are rawhttp.py's (shared with
faultopenai.py); the replies a test needs are importable from here as well.

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
of them when ``times`` is None) get ``reply`` instead. Replies: ``status``, ``json_reply``,
``redirect``, ``reset``, ``stall`` (rawhttp's), ``too_many_requests``, and ``event_stream``
(rawhttp's, with Gradio's ``Cache-Control: no-cache``) whose parts may be ``RESET``, ``STALL``,
``CLOSE``, ``heartbeats(data)``, ``gate(event)`` (rawhttp's). Any route, "other" included, can
be made to stall once the server has read the whole request: ``space.on("upload", stall())``.

What the server saw and did, for the test to check or wait for (no sleeps that assume a state):

    space.requests            every request, in the order read: ``Request`` (method, path, query,
                              headers, body, the ``connection`` it came on, 1 for the first)
    space.requests_to(route)  those to one route
    space.connections         connections accepted so far
    space.stalled             the requests whose reply sent all it sends before a stall
                              (``stall()``, ``STALL``, a ``gate`` not yet open) and waited there,
                              in the order they got there (they stay when the stall ends)
    space.idle_connections    kept-alive connections waiting for their next request
    space.client_closed       numbers of the connections the client closed, in order
    space.wait_for(condition, timeout)   until ``condition()`` is true (re-checked whenever the
                              server records something): True, or False after ``timeout`` s
    space.wait_requests(route, count), space.wait_stalled(route, count)   the same, for
                              ``count`` requests to (or stalls on) ``route`` (any route if None)

And of the client, for a test that claims a thread is blocked somewhere:
``wait_until_in(thread, "socket.py", "readinto")`` waits until ``thread`` is in that function
(there: a blocking read of a response body over plain HTTP).

Connections: each reply closes its connection, unless ``FaultSpace(keep_alive=True)`` (as
Gradio does: request after request, until a reply breaks it or ``close_idle()``). A request
with ``Connection: close`` (or an HTTP/1.0 one without ``Connection: keep-alive``) gets
``Connection: close`` in its reply and its connection closed after it, as a real HTTP/1.1
server does, so a client that asks for that cannot pass the keep-alive tests.

Threads and sockets: one accept thread, one thread per connection, every connection closed
by its own thread. Anything that waits (a stall, heartbeats, a gate) wakes as soon as the
client hangs up or the server stops, and never waits longer than ``MAX_WAIT`` seconds.
``stop()`` joins every thread and closes every socket; ``wait_idle()`` joins the
connection threads so far (the leak test counts threads and descriptors after it).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence, Union

import rawhttp
from rawhttp import Part, RawHTTPServer, Reply, Request, json_reply, status

# isort: split
# Only re-exported: the tests import these from here.
from rawhttp import CLOSE, MAX_WAIT, RESET, SSE, STALL, gate, heartbeats, redirect, reset, stall  # noqa: F401

TOKEN = "hf_FaultTestTokenDoNotLeak0123456789"  # what the tests' clients send
EVENT_ID = "fa17" * 8
UPLOADED_PATH = "/tmp/gradio/fa17/image.png"
ANSWER_PIECES = ("Hel", "lo", " world")
ANSWER = "".join(ANSWER_PIECES)
PREFIX = "/gradio_api"


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


# -- the Space's own replies (the rest are rawhttp's) ---------------------------------------


def event_stream(*parts: Part, **options: Any) -> Reply:
    """rawhttp's ``event_stream`` (a 200 stream of ``parts``: bytes, or callables such as RESET,
    CLOSE, STALL, heartbeats(...), gate(...) acting in place; ``chunked``, ``byte_by_byte``,
    ``content_type``, ``code``, ``headers``), with Gradio's ``Cache-Control: no-cache``."""
    options.setdefault("headers", {"Cache-Control": "no-cache"})
    return rawhttp.event_stream(*parts, **options)


def too_many_requests(
    retry_after: Union[int, float, str, None] = 1, body: Union[bytes, str] = "Too Many Requests"
) -> Reply:
    """A 429 with ``Retry-After: retry_after`` (seconds, or any text such as an HTTP date;
    no header if None)."""
    headers = {} if retry_after is None else {"Retry-After": "%s" % retry_after}
    return status(429, body, headers=headers)


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


class FaultSpace(RawHTTPServer):
    """The server: rawhttp's HTTP/1.1 server with the Space's routes. Use as a context manager,
    or start() and stop(). ``FaultSpace(keep_alive=True)``: a connection serves request after
    request (as Gradio does) until a reply breaks it or :meth:`close_idle` closes it; by
    default each reply closes it."""

    thread_name = "faultspace"
    routes = ROUTES

    def route_of(self, request: Request) -> str:
        return route_of(request)

    def healthy(self, route: str, request: Request) -> Reply:
        return healthy(route, request)
