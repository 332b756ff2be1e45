"""After 200 failing chats of every kind the fault tests cover, the process has the same open
file descriptors (/proc/self/fd) and the same threads as before: nothing leaks on an error
path, in the client or in the FaultSpace."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from faultspace import (
    CLOSE,
    RESET,
    STALL,
    WIRES,
    FaultSpace,
    event_stream,
    heartbeats,
    json_reply,
    redirect,
    reset,
    stall,
    status,
)

from qvq_sdk import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    NotFoundError,
    QVQClient,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
)
from qvq_sdk._transport.watchdog import WATCHDOG

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
FAILURES = 200


def open_descriptors():
    return sorted(os.listdir("/proc/self/fd"))


def thread_names():
    return sorted(thread.name for thread in threading.enumerate())


def fault_kinds(other_host):
    """(name, script(space, wire), call(client), expected exception) for each kind of failure."""
    big_traceback = "Traceback (most recent call last):\n" + "  File 'app.py', line 1\n" * 200_000

    def text_then(*parts):
        return lambda space, wire: space.on(wire.stream, event_stream(wire.text_event("Hel"), *parts))

    def on(route_of_wire, reply):
        return lambda space, wire: space.on(route_of_wire(wire), reply)

    chat = lambda client: client.complete("hi")  # noqa: E731
    with_image = lambda client: client.complete("hi", images=PNG)  # noqa: E731
    config = lambda wire: "config"  # noqa: E731
    start = lambda wire: wire.start  # noqa: E731
    stream = lambda wire: wire.stream  # noqa: E731
    upload = lambda wire: "upload"  # noqa: E731

    def cancel(client):
        for _ in client.chat("hi"):
            break  # the caller walks away mid-answer
        raise StreamError("cancelled")  # counted as a failure like the others

    return [
        ("reset-config", on(config, reset()), chat, APIConnectionError),
        ("reset-start", on(start, reset()), chat, APIConnectionError),
        ("reset-stream-head", on(stream, reset()), chat, APIConnectionError),
        ("reset-mid-stream", text_then(RESET), chat, APIConnectionError),
        ("fin-mid-chunk", text_then(CLOSE), chat, APIConnectionError),
        ("no-completion", lambda s, w: s.on(w.stream, event_stream(*w.events(complete=False))), chat, StreamError),
        ("stall-head", on(stream, stall()), chat, APITimeoutError),
        ("stall-mid-stream", text_then(STALL), chat, APITimeoutError),
        (
            "heartbeats-deadline",
            lambda s, w: s.on(w.stream, event_stream(w.text_event("Hel"), heartbeats(w.heartbeat, 0.02))),
            lambda client: client.complete("hi", deadline=0.3),
            APITimeoutError,
        ),
        ("invalid-json", text_then(b"data: {nope\n\nevent: generating\ndata: {nope\n\n"), chat, StreamError),
        ("bad-shape", lambda s, w: s.on(w.stream, event_stream(w.raw_event(b"[{}]"))), chat, StreamError),
        ("not-utf8", lambda s, w: s.on(w.stream, event_stream(w.raw_event(b'["\xff"]'))), chat, StreamError),
        ("queue-full", on(start, json_reply({"detail": "Queue is full"}, code=503)), chat, ServiceUnavailableError),
        ("429-long", on(start, status(429, "", headers={"Retry-After": "600"})), chat, RateLimitError),
        ("500-html-config", on(config, status(500, "<h1>Error</h1>", "text/html")), chat, ServiceUnavailableError),
        ("500-huge-stream", on(stream, status(500, big_traceback)), chat, ServiceUnavailableError),
        ("401", on(start, status(401)), chat, AuthenticationError),
        ("404-config", on(config, status(404)), chat, NotFoundError),
        ("410", on(stream, status(410)), chat, ServiceUnavailableError),
        ("upload-empty", on(upload, json_reply([])), with_image, StreamError),
        ("upload-413", on(upload, status(413)), with_image, APIStatusError),
        ("upload-500", on(upload, status(500)), with_image, ServiceUnavailableError),
        ("redirect-reset-config", on(config, redirect(other_host.base_url + "/config")), chat, APIConnectionError),
        ("cancel", lambda s, w: None, cancel, StreamError),
        ("refused", lambda s, w: None, chat, APIConnectionError),  # run by a client of a closed port
    ]


def test_200_failures_leave_no_descriptor_or_thread_behind(space, sleeps):
    other_host = FaultSpace().start()
    other_host.on("config", reset())
    refusing = socket.socket()  # bound, not listening: connections to it are refused
    refusing.bind(("127.0.0.1", 0))
    refused_url = "http://127.0.0.1:%d" % refusing.getsockname()[1]
    clients = {}
    for protocol in WIRES:
        clients[protocol] = QVQClient(token="hf_x", base_url=space.base_url, protocol=protocol, timeout=(2, 0.3))
        clients["refused", protocol] = QVQClient(token="hf_x", base_url=refused_url, protocol=protocol)
    try:
        kinds = fault_kinds(other_host)
        # Warm up: each client has made a whole chat (imports done, pools built).
        for protocol in WIRES:
            assert clients[protocol].complete("hi") == "Hello world"
        assert space.wait_idle() and other_host.wait_idle()
        descriptors, threads = open_descriptors(), thread_names()

        seen = {}
        for index in range(FAILURES):
            name, script, call, expected = kinds[index % len(kinds)]
            protocol = ("queue", "call")[(index // len(kinds)) % 2]
            space.clear()
            script(space, WIRES[protocol])
            if name == "refused":
                client = clients["refused", protocol]
            elif "config" in name:  # a client reads /config once: these need a new client each time
                client = QVQClient(token="hf_x", base_url=space.base_url, protocol=protocol, max_retries=0)
            else:
                client = clients[protocol]
            try:
                call(client)
            except expected:
                pass
            else:
                pytest.fail("%s on the %s protocol raised no %s" % (name, protocol, expected.__name__))
            finally:
                if "config" in name:
                    client.close()
            seen[name] = seen.get(name, 0) + 1
        assert len(seen) == len(kinds) and sum(seen.values()) == FAILURES

        assert space.wait_idle() and other_host.wait_idle()
        assert open_descriptors() == descriptors
        assert thread_names() == threads
        assert WATCHDOG.watched() == frozenset()  # every stream's watch was removed
        # And the clients still work.
        space.clear()
        for protocol in WIRES:
            assert clients[protocol].complete("hi") == "Hello world"
    finally:
        for client in clients.values():
            client.close()
        other_host.stop()
        refusing.close()
