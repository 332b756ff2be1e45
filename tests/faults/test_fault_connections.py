"""Connections that fail: refused, reset, cut off, ended early, stalled, kept alive forever.

Every case runs on both protocols against a FaultSpace (faultspace.py). The rule under
test: the caller gets the whole answer or a typed error, in bounded time; text that
arrived before a failure is never passed off as a whole answer.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
from faultspace import (
    CLOSE,
    RESET,
    STALL,
    TOKEN,
    WIRES,
    event_stream,
    gate,
    heartbeats,
    queue_event,
    reset,
    stall,
)

from qvq_sdk import APIConnectionError, APITimeoutError, QVQClient, StreamError, TextUpdate

PROTOCOLS = ["queue", "call"]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"


@contextlib.contextmanager
def refusing_port():
    """A port on 127.0.0.1 that refuses connections: bound (so nobody else takes it), not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def stages(protocol):
    """The requests of a chat that can fail before any text: (route, retried?, image?)."""
    wire = WIRES[protocol]
    return [
        ("config", True, False),
        ("upload", True, True),
        (wire.start, False, False),  # the Space read it: a job may have started, never start a second
        (wire.stream, False, False),
    ]


STAGE_CASES = [
    pytest.param(protocol, route, retried, image, id="%s-%s" % (protocol, route))
    for protocol in PROTOCOLS
    for route, retried, image in stages(protocol)
    if not (protocol == "call" and route == "upload")  # the upload is the same on both
]


def timed(call):
    """(exception raised by ``call()``, seconds it took)."""
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return exc, time.monotonic() - started
    raise AssertionError("no exception raised")


# -- refused, reset ----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_connection_refused_is_a_connection_error_after_the_retries(protocol, sleeps):
    with refusing_port() as port:
        client = QVQClient(token=TOKEN, base_url="http://127.0.0.1:%d" % port, protocol=protocol, timeout=(2, 5))
        error, _ = timed(lambda: client.complete("hi"))
    assert type(error) is APIConnectionError
    assert "refused" in str(error)
    assert len(sleeps) == client.max_retries == 2


@pytest.mark.parametrize("protocol, route, retried, image", STAGE_CASES)
def test_reset_before_the_headers_is_a_connection_error(space, make_client, sleeps, protocol, route, retried, image):
    space.on(route, reset())
    client = make_client(protocol)
    with pytest.raises(APIConnectionError) as info:
        client.complete("hi", images=PNG if image else None)
    assert not isinstance(info.value, APITimeoutError)
    attempts = client.max_retries + 1 if retried else 1
    assert len(space.requests_to(route)) == attempts
    assert len(sleeps) == attempts - 1


@pytest.mark.parametrize("protocol, route, retried, image", STAGE_CASES)
def test_reset_once_then_success_is_retried_where_safe(space, make_client, protocol, route, retried, image):
    space.on(route, reset(), times=1)
    client = make_client(protocol)
    if retried:
        assert client.complete("hi", images=PNG if image else None) == "Hello world"
        assert len(space.requests_to(route)) == 2
    else:  # a job start that reached the Space, or the stream (a retry could repeat text)
        with pytest.raises(APIConnectionError) as info:
            client.complete("hi")
        assert len(space.requests_to(route)) == 1
        if route == WIRES[protocol].start:
            assert "the job may have started" in str(info.value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reset_mid_stream_after_some_text_is_a_connection_error(space, make_client, protocol):
    wire = WIRES[protocol]
    text_read = threading.Event()
    space.on(wire.stream, event_stream(wire.text_event("Hel"), gate(text_read), RESET))
    seen = []
    with pytest.raises(APIConnectionError) as info:
        for event in make_client(protocol).events("hi"):
            seen.append(event)
            if isinstance(event, TextUpdate):
                text_read.set()  # the client has the text: now reset
    assert [event.delta for event in seen if isinstance(event, TextUpdate)] == ["Hel"]
    assert "broke in the middle of the answer" in str(info.value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reset_mid_stream_never_gives_complete_a_short_answer(space, make_client, protocol):
    wire = WIRES[protocol]
    space.on(wire.stream, event_stream(wire.text_event("Hel"), RESET))
    with pytest.raises(APIConnectionError):
        make_client(protocol).complete("hi")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_fin_inside_a_chunked_body_is_a_connection_error(space, make_client, protocol):
    wire = WIRES[protocol]
    space.on(wire.stream, event_stream(wire.text_event("Hel"), CLOSE))  # no last chunk
    with pytest.raises(APIConnectionError) as info:
        make_client(protocol).complete("hi")
    assert "before the response was complete" in str(info.value) or "broke" in str(info.value)


# -- streams that end cleanly, but too early ------------------------------------------------------


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_clean_end_without_completion_is_a_stream_error_not_a_short_answer(space, make_client, protocol, chunked):
    wire = WIRES[protocol]
    space.on(wire.stream, event_stream(*wire.events(complete=False), chunked=chunked))
    chunks = []
    with pytest.raises(StreamError) as info:
        for chunk in make_client(protocol).chat("hi"):
            chunks.append(chunk)
    assert "".join(chunks) == "Hello world"  # every piece arrived, yet the answer is not whole
    assert "cut off" in str(info.value)
    with pytest.raises(StreamError):
        make_client(protocol).complete("hi")


def test_queue_close_stream_without_completion_is_a_stream_error(space, make_client):
    events = [*WIRES["queue"].events(complete=False), queue_event({"msg": "close_stream", "event_id": None})]
    space.on("queue/data", event_stream(*events))
    with pytest.raises(StreamError) as info:
        make_client("queue").complete("hi")
    assert "closed the stream" in str(info.value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stream_ending_inside_an_event_is_a_stream_error(space, make_client, protocol):
    wire = WIRES[protocol]
    completion = wire.completion("Hello world")[0]
    space.on(wire.stream, event_stream(wire.text_event("Hel"), completion[: len(completion) // 2]))
    with pytest.raises(StreamError):
        make_client(protocol).complete("hi")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_empty_stream_is_a_stream_error(space, make_client, protocol):
    space.on(WIRES[protocol].stream, event_stream())
    with pytest.raises(StreamError):
        make_client(protocol).complete("hi")


# -- stalls and deadlines -----------------------------------------------------------------------


@pytest.mark.parametrize("protocol, route, retried, image", STAGE_CASES)
def test_a_stall_before_the_headers_is_a_timeout(space, make_client, protocol, route, retried, image):
    space.on(route, stall())
    client = make_client(protocol, timeout=(2, 0.5))
    error, seconds = timed(lambda: client.complete("hi", images=PNG if image else None))
    assert isinstance(error, APITimeoutError)
    assert "0.5 s" in str(error)
    attempts = client.max_retries + 1 if retried else 1  # a job start or stream: the Space may be working
    assert 0.4 * attempts < seconds < 5 * attempts
    assert len(space.requests_to(route)) == attempts  # config and upload start nothing: sent again


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stall_mid_stream_is_a_timeout(space, make_client, protocol):
    wire = WIRES[protocol]
    space.on(wire.stream, event_stream(wire.text_event("Hel"), STALL))
    chunks = []
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as info:
        for chunk in make_client(protocol, timeout=(2, 0.5)).chat("hi"):
            chunks.append(chunk)
    assert chunks == ["Hel"]
    assert "read timeout" in str(info.value)
    assert 0.4 < time.monotonic() - started < 5


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_caller_slower_than_the_read_timeout_still_gets_the_answer(space, make_client, protocol):
    """Only time spent waiting for the Space counts against the read timeout: a caller that
    works on each chunk for longer than the timeout is not cut off (the watchdog looks only at
    reads in progress)."""
    wire = WIRES[protocol]
    more = threading.Event()
    space.on(wire.stream, event_stream(wire.text_event("Hel"), gate(more), *wire.completion("Hello world")))
    chunks = []
    for chunk in make_client(protocol, timeout=(2, 0.2)).chat("hi"):
        chunks.append(chunk)
        threading.Event().wait(0.7)  # the caller's own work on the chunk: 3.5 read timeouts
        more.set()  # only now does the Space send the rest, so the next read waits for it
    assert chunks == ["Hel", "lo world"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bytes_that_keep_coming_keep_a_short_read_timeout_from_firing(space, make_client, protocol):
    """The read timeout runs from the start of each read: heartbeats every 0.1 s for 1.2 s
    outlast a read timeout of 0.4 s many times over, and the answer still arrives."""
    wire = WIRES[protocol]
    beats = [wire.heartbeat, lambda exchange: exchange.wait(0.1)] * 12
    space.on(wire.stream, event_stream(wire.text_event("Hel"), *beats, *wire.completion("Hello world")))
    assert make_client(protocol, timeout=(2, 0.4)).complete("hi") == "Hello world"


@pytest.mark.parametrize("where", ["per-call", "client-default"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_heartbeats_forever_end_at_the_deadline(space, make_client, protocol, where):
    wire = WIRES[protocol]
    space.on(wire.stream, event_stream(wire.text_event("Hel"), heartbeats(wire.heartbeat, interval=0.05)))
    if where == "per-call":
        client = make_client(protocol, timeout=(2, 5))
        call = lambda: client.complete("hi", deadline=1.0)  # noqa: E731
    else:
        client = make_client(protocol, timeout=(2, 5), deadline=1.0)
        call = lambda: client.complete("hi")  # noqa: E731
    error, seconds = timed(call)
    assert isinstance(error, APITimeoutError)
    assert "deadline of 1 s" in str(error)
    assert 0.9 < seconds < 4
    assert len(space.requests_to(wire.stream)) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_deadline_cuts_a_read_timeout_short(space, make_client, protocol):
    space.on(WIRES[protocol].stream, stall())
    client = make_client(protocol, timeout=(2, 20))
    error, seconds = timed(lambda: client.complete("hi", deadline=0.5))
    assert isinstance(error, APITimeoutError)
    assert "deadline" in str(error)
    assert 0.4 < seconds < 4


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_deadline_stops_retries_it_cannot_wait_for(space, make_client, sleeps, protocol):
    from faultspace import status

    space.on(WIRES[protocol].start, status(503, "Queue is full", headers={"Retry-After": "30"}))
    client = make_client(protocol)
    error, seconds = timed(lambda: client.complete("hi", deadline=5))
    assert isinstance(error, APITimeoutError)
    assert sleeps == []  # it did not wait 30 s for a retry that the deadline forbids
    assert seconds < 4
