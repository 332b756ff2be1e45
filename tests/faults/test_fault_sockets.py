"""``QVQClient.close()`` closes every socket of the client at once, without the garbage
collector: after chats that succeeded, failed (resets, stalls cut by short timeouts) or were
cut short, and with ``gc`` disabled, the process holds as many sockets as before the client
was made. (urllib3 2's ``PoolManager.clear()``, which ``requests.Session.close()`` calls,
forgets its pools without closing their idle connections: they stay open until the garbage
collector finds them; ``qvq_sdk._transport.pools.close_session`` closes them.)

The Space keeps connections alive (as Gradio does), so a client's pools hold idle
connections when it is closed.
"""

from __future__ import annotations

import gc
import os

import pytest
from faultspace import RESET, STALL, TOKEN, WIRES, FaultSpace, event_stream, reset, stall

from qvq_sdk import APIConnectionError, APITimeoutError, QVQClient, StreamError

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"


def open_descriptors():
    """This process's open file descriptors: {fd: what it is}."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            found[name] = os.readlink("/proc/self/fd/" + name)
        except OSError:  # the one listdir itself used, closed by now
            pass
    return found


def open_sockets():
    return sorted(fd for fd, target in open_descriptors().items() if target.startswith("socket:"))


@pytest.fixture
def no_gc():
    """The garbage collector off for the test: what close() leaves open stays open."""
    was_enabled = gc.isenabled()
    gc.collect()  # before the test: nothing earlier is left for it to close
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@pytest.fixture
def kept_alive():
    """A FaultSpace whose connections serve request after request."""
    with FaultSpace(keep_alive=True) as server:
        yield server
    assert server.errors == []


def chats(protocol):
    """(script, call, expected exception or None): twenty chats, some failing."""
    wire = WIRES[protocol]

    def healthy(space):
        pass

    def on(route, reply):
        return lambda space: space.on(route, reply, times=1)

    def text_then(*parts):
        return on(wire.stream, event_stream(wire.text_event("Hel"), *parts))

    def complete(client):
        return client.complete("hi")

    def with_image(client):
        return client.complete("hi", images=PNG)

    def walk_away(client):
        for _ in client.chat("hi"):
            break  # the caller leaves mid-answer, without closing the chat

    return [
        (healthy, complete, None),
        (healthy, with_image, None),
        (on(wire.start, reset()), complete, APIConnectionError),
        (healthy, complete, None),
        (text_then(RESET), complete, APIConnectionError),
        (on(wire.stream, stall()), complete, APITimeoutError),
        (healthy, complete, None),
        (text_then(STALL), complete, APITimeoutError),
        (on(wire.stream, event_stream(*wire.events(complete=False))), complete, StreamError),
        (healthy, walk_away, None),
        (on(wire.start, stall()), complete, APITimeoutError),
        (healthy, with_image, None),
        (on("upload", reset()), with_image, None),  # sent again
        (healthy, complete, None),
        (text_then(RESET), complete, APIConnectionError),
        (healthy, walk_away, None),
        (healthy, complete, None),
        (on(wire.stream, stall()), complete, APITimeoutError),
        (healthy, complete, None),
        (healthy, complete, None),
    ]


@pytest.mark.parametrize("protocol", ["queue", "call"])
def test_close_frees_every_socket_at_once(kept_alive, no_gc, protocol):
    space = kept_alive
    before = open_sockets()
    client = QVQClient(token=TOKEN, base_url=space.base_url, protocol=protocol, timeout=(2, 0.3))
    for script, call, expected in chats(protocol):
        script(space)
        if expected is None:
            call(client)
        else:
            with pytest.raises(expected):
                call(client)
    assert space.wait_for(lambda: space.idle_connections >= 1)  # the client's pools hold some
    assert len(open_sockets()) > len(before)
    client.close()
    assert space.wait_idle()  # the server saw every connection close: its threads ended
    assert open_sockets() == before


def test_fifty_clients_made_and_closed_leave_no_descriptor_open(kept_alive, no_gc, sleeps):
    """Each client is closed with idle connections in its pool, after a chat that failed and
    an upload that was reset and sent again (the reset's urllib3 errors, never raised to the
    caller, hold the pool in reference cycles, which only the garbage collector would free)."""
    space = kept_alive
    client = QVQClient(token=TOKEN, base_url=space.base_url)
    assert client.complete("hi") == "Hello world"  # imports done, the watchdog thread started
    client.close()
    assert space.wait_idle()
    before = open_descriptors()
    for index in range(50):
        wire = WIRES[("queue", "call")[index % 2]]
        client = QVQClient(token=TOKEN, base_url=space.base_url, protocol=wire.protocol)
        space.on(wire.start, reset(), times=1)
        with pytest.raises(APIConnectionError):
            client.complete("hi")
        space.on("upload", reset(), times=1)
        assert client.complete("hi", images=PNG) == "Hello world"
        client.close()
    assert len(sleeps) == 50  # each upload was sent again once
    assert space.wait_idle()
    assert open_descriptors() == before
