"""Stopping one chat (``ChatStream.stop()``, or ``close()`` from another thread) over real
sockets: a read blocked in another thread returns at once and its iteration ends quietly,
the server sees the connection close, the client's other chats go on, and a stop after the
end of a chat leaves its pooled connection alone.

No sleeps that assume a state: a test waits (with a deadline) for the FaultSpace to say its
reply has sent everything before its stall (``space.wait_stalled``) and, where it claims a
blocked read, for the reader thread to be in a socket read (``wait_until_reading``)."""

from __future__ import annotations

import threading
import time

import pytest
from faultspace import EVENT_ID, STALL, TOKEN, WIRES, FaultSpace, event_stream, gate, json_reply, wait_until_in

from qvq_sdk import ChatStream, Done, QVQClient

PROTOCOLS = ["queue", "call"]


def first_piece_then_stall(wire):
    """The stream up to its first text, then silence until the client hangs up."""
    events = wire.events()
    head = events[:3] if wire.protocol == "queue" else events[:1]  # estimation, start, "Hel" / "Hel"
    return event_stream(*head, STALL)


def wait_until_reading(thread):
    """Whether ``thread`` gets blocked in a socket read (where every read of a body over plain
    HTTP waits) within 10 s."""
    return wait_until_in(thread, "socket.py", "readinto")


def read_in_thread(chat):
    """Iterates ``chat`` in a thread; returns (thread, received, errors, first_item_event)."""
    received, errors = [], []
    first = threading.Event()

    def run():
        try:
            for item in chat:
                received.append(item)
                first.set()
        except BaseException as exc:  # the test asserts there is none
            errors.append(exc)
        finally:
            first.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, received, errors, first


@pytest.mark.parametrize("how", ["stop", "close"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stop_from_another_thread_ends_a_blocked_read_at_once(space, make_client, protocol, how):
    wire = WIRES[protocol]
    space.on(wire.stream, first_piece_then_stall(wire))
    chat = make_client(protocol).chat("hi")
    thread, received, errors, first = read_in_thread(chat)
    assert first.wait(10) and received == ["Hel"]
    assert space.wait_stalled(wire.stream), "the server never reached its stall"
    assert wait_until_reading(thread), "the reader never blocked in a read of the silent stream"

    started = time.monotonic()
    getattr(chat, how)()
    thread.join(5)

    assert not thread.is_alive()
    assert time.monotonic() - started < 0.5
    assert errors == [] and received == ["Hel"]  # a quiet end: no exception, no more text
    assert chat.stopped
    assert space.wait_idle(5)  # the server saw the connection close: its stream thread ended


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_other_chats_of_the_client_go_on(space, make_client, protocol):
    wire = WIRES[protocol]
    release = threading.Event()
    space.on(wire.stream, first_piece_then_stall(wire), times=1)
    events = wire.events()
    space.on(wire.stream, event_stream(*events[:-2], gate(release), *events[-2:]), times=1)
    client = make_client(protocol)

    stopped = client.chat("first")
    thread, _received, errors, first = read_in_thread(stopped)
    assert first.wait(10)
    going_on = client.events("second")
    other, other_events, other_errors, other_first = read_in_thread(going_on)
    assert other_first.wait(10)

    stopped.stop()
    thread.join(5)
    release.set()
    other.join(10)

    assert not thread.is_alive() and not other.is_alive()
    assert errors == [] and other_errors == []
    assert other_events[-1] == Done("Hello world") and not going_on.stopped
    assert client.complete("third") == "Hello world"  # the client is not closed


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stop_between_events_ends_the_chat_at_its_next_step(space, make_client, protocol):
    """Events already received (buffered in the client) are not handed out after a stop."""
    wire = WIRES[protocol]
    space.on(wire.stream, event_stream(*wire.events(("a", "b", "c", "d", "e", "f"), complete=False), STALL))
    chat = make_client(protocol).chat("hi")
    assert next(chat) == "a"
    assert space.wait_stalled(wire.stream)  # everything up to the stall has been sent
    chat.stop()
    assert list(chat) == []
    assert chat.stopped


def test_a_chat_stopped_before_it_starts_sends_nothing(space, make_client):
    chat = make_client().chat("hi")
    chat.stop()
    assert list(chat) == [] and chat.stopped
    assert space.requests == []


def test_a_stop_while_the_job_starts_closes_the_stream_the_job_has(space, make_client):
    """Stopped while the join is in flight: the job exists on the Space, so its stream is
    opened and closed at once (Gradio then cancels the job), and nothing is read."""
    joined = threading.Event()
    answer = threading.Event()

    def slow_join(exchange):
        joined.set()
        exchange.wait_for(answer)
        json_reply({"event_id": EVENT_ID})(exchange)

    space.on("join", slow_join)
    chat = make_client().events("hi")
    thread, received, errors, _ = read_in_thread(chat)
    assert joined.wait(10)
    chat.stop()
    answer.set()
    thread.join(5)
    assert not thread.is_alive() and errors == [] and received == []
    assert len(space.requests_to("queue/data")) <= 1
    assert space.wait_idle(5)


def test_close_from_another_thread_is_a_stop_not_a_value_error(space, make_client):
    space.on("queue/data", first_piece_then_stall(WIRES["queue"]))
    chat = make_client().chat("hi")
    thread, _received, errors, first = read_in_thread(chat)
    assert first.wait(10)
    assert space.wait_stalled("queue/data")
    assert wait_until_reading(thread)  # the chat is executing, in the other thread
    chat.close()  # a generator's close() would raise "ValueError: generator already executing"
    thread.join(5)
    assert not thread.is_alive() and errors == [] and chat.stopped


def test_a_stop_after_the_end_leaves_the_pooled_connection_alone():
    with FaultSpace(keep_alive=True) as server:
        with QVQClient(token=TOKEN, base_url=server.base_url, timeout=(2, 5)) as client:
            chat = client.chat("hi")
            assert "".join(chat) == "Hello world"
            chat.stop()  # after the end: nothing to stop
            assert not chat.stopped
            assert client.complete("again") == "Hello world"
        assert server.connections == 1  # the second chat reused the first one's connection
    assert server.errors == []


def test_a_chat_stream_is_a_generator():
    import collections.abc

    from qvq_sdk.testing import FakeSpace

    space = FakeSpace().answer("Hel", "lo").answer("again")
    client = space.client()
    chat = client.chat("hi")
    assert isinstance(chat, ChatStream) and isinstance(chat, collections.abc.Generator)
    assert iter(chat) is chat
    assert chat.send(None) == "Hel"
    with pytest.raises(KeyError):
        chat.throw(KeyError("boom"))
    assert list(chat) == []  # the throw ended it
    with client.chat("again") as second:
        assert next(second) == "again"
    assert list(second) == [] and second.stopped  # closed at the end of the block
