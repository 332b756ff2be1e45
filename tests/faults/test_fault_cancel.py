"""A chat's cancellation over real sockets: ``ChatStream.stop()`` and ``QVQClient.close()``
reach whatever the chat is blocked on at that moment (a request the Space read and never
answered, a wait on ``Retry-After``, the shared ``/config`` fetch, an image URL's download,
a silent stream), and a chat's own deadline ends its waits too.

Every test waits on a signal of the server (``space.wait_stalled``, ``wait_requests``) or of
the client before it acts, never on a sleep that assumes a state; the time assertions are
generous (a fraction of a second where the old behaviour took the whole read timeout).
"""

from __future__ import annotations

import sys
import threading
import time

import pytest
from faultspace import STALL, WIRES, config_document, event_stream, json_reply, reset, stall, too_many_requests

from qvq_sdk import APIConnectionError, APITimeoutError, Done
from qvq_sdk._transport import transport as transport_module

PROTOCOLS = ["queue", "call"]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
#: The wait before a retry as the SDK defines it: imported before the ``sleeps`` fixture
#: replaces it with a recorder (a test that needs a real wait puts it back).
REAL_PAUSE = transport_module.pause
QUICK = 1.0  # seconds: "at once" (the old behaviours took 3 s to 8 s)


class Runner:
    """Runs ``call()`` in a thread; records what it returned or raised, and when it ended."""

    def __init__(self, call):
        self.result = None
        self.error = None
        self.ended_at = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def blocked_in_read(self):
        """Whether the thread is blocked reading a socket (its innermost Python frame is the
        socket file's ``readinto``), rather than between two reads."""
        frame = sys._current_frames().get(self._thread.ident)
        return (
            frame is not None and frame.f_code.co_name == "readinto" and frame.f_code.co_filename.endswith("socket.py")
        )

    def _run(self, call):
        try:
            self.result = call()
        except BaseException as exc:  # the test asserts on it
            self.error = exc
        finally:
            self.ended_at = time.monotonic()

    def join(self, timeout=10.0):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the chat did not end"
        return self


def drain(chat, received=None):
    """Iterates a ChatStream to its end, each item into ``received`` as it comes; returns them."""
    items = [] if received is None else received

    def run():
        for item in chat:
            items.append(item)
        return items

    return run


def first_text_then_stall(wire):
    """The stream up to its first text ("Hel"), then silence until the client hangs up."""
    return event_stream(wire.text_event("Hel"), STALL)


# -- stop() ----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stop_during_a_join_the_space_never_answers_ends_the_chat_at_once(space, make_client, protocol):
    """The join (or call) was read by the Space and never answered: a stop 0.5 s into it
    ends the loop quietly within a fraction of a second, not at the 6 s read timeout, and
    nothing more is sent (no stream is opened)."""
    wire = WIRES[protocol]
    space.on(wire.start, stall())
    chat = make_client(protocol, timeout=(2, 6)).events("hi")
    runner = Runner(drain(chat))
    assert space.wait_stalled(wire.start)
    time.sleep(0.5)  # "0.5 s into the join": the join is stalled whatever happens meanwhile
    assert runner.blocked_in_read()

    stopped_at = time.monotonic()
    chat.stop()
    runner.join()

    assert runner.ended_at - stopped_at < QUICK
    assert runner.error is None and runner.result == []  # a quiet end
    assert chat.stopped
    assert space.wait_idle()  # the server saw the connection close
    assert [r for r in space.requests if r.path != "/config"] == space.requests_to(wire.start)
    assert len(space.requests_to(wire.start)) == 1 and space.requests_to(wire.stream) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stop_during_a_retry_after_wait_sends_no_second_join(space, make_client, monkeypatch, protocol):
    """The join is refused with ``429 Retry-After: 3``; the client waits for real, and a stop
    during the wait ends the chat quietly at once: no second join, no 3 s wait."""
    wire = WIRES[protocol]
    space.on(wire.start, too_many_requests(3))
    waiting = threading.Event()
    delays = []

    def pause(cancel, seconds):  # the real wait, with a signal that it began
        delays.append(seconds)
        waiting.set()
        REAL_PAUSE(cancel, seconds)

    monkeypatch.setattr(transport_module, "pause", pause)
    chat = make_client(protocol).events("hi")
    runner = Runner(drain(chat))
    assert waiting.wait(10)

    stopped_at = time.monotonic()
    chat.stop()
    runner.join()

    assert delays == [3.0]
    assert runner.ended_at - stopped_at < QUICK
    assert runner.error is None and runner.result == [] and chat.stopped
    assert len(space.requests_to(wire.start)) == 1  # no second join, then or later
    assert space.requests_to(wire.stream) == []


# -- close() ---------------------------------------------------------------------------------


def stall_on(route):
    """Scripts a stall on ``route`` ("start" and "stream" name the protocol's own)."""

    def script(space, wire):
        name = {"start": wire.start, "stream": wire.stream, "stream-body": wire.stream}.get(route, route)
        space.on(name, first_text_then_stall(wire) if route == "stream-body" else stall())
        return name

    return script


@pytest.mark.parametrize("route", ["config", "upload", "start", "stream", "stream-body"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_close_from_another_thread_ends_a_stalled_request_with_a_closed_error(space, make_client, protocol, route):
    """The client is closed while the chat waits on a request the Space read and never
    answered (or a silent stream after text): the chat raises APIConnectionError saying the
    client was closed, within a fraction of a second (not at the 6 s read timeout)."""
    wire = WIRES[protocol]
    name = stall_on(route)(space, wire)
    client = make_client(protocol, timeout=(2, 6))
    chat = client.chat("hi", images=PNG if route == "upload" else None)
    received = []
    runner = Runner(drain(chat, received))
    assert space.wait_stalled(name)
    if route == "stream-body":  # the text is in: a read now is the one the stall blocks
        assert space.wait_for(lambda: received == ["Hel"], 5)
    assert space.wait_for(runner.blocked_in_read, 5)  # in the stalled read, not between two reads

    closed_at = time.monotonic()
    client.close()
    runner.join()

    assert runner.ended_at - closed_at < QUICK
    assert isinstance(runner.error, APIConnectionError) and not isinstance(runner.error, APITimeoutError)
    assert "was closed" in str(runner.error)
    assert not chat.stopped  # closed, not stopped
    assert space.wait_idle()
    with pytest.raises(APIConnectionError, match="was closed"):
        client.complete("again")  # and the client sends nothing more
    assert len(space.requests_to(name)) == 1


def test_close_during_a_stalled_image_download_ends_the_chat_at_once(space, make_client, other_host):
    """An image URL is downloaded inside ``chat()``, before a ChatStream exists to stop:
    ``close()`` reaches it, and ``chat()`` raises APIConnectionError at once."""
    other_host.on("other", stall())
    client = make_client(timeout=(2, 6))
    runner = Runner(lambda: client.chat("hi", images=other_host.base_url + "/cat.png"))
    assert other_host.wait_stalled("other")
    assert other_host.wait_for(runner.blocked_in_read, 5)

    closed_at = time.monotonic()
    client.close()
    runner.join()

    assert runner.ended_at - closed_at < QUICK
    assert isinstance(runner.error, APIConnectionError) and "was closed" in str(runner.error)
    assert other_host.wait_idle()
    assert space.requests == []  # nothing reached the Space


def test_a_deadline_ends_a_stalled_image_download(space, make_client, other_host):
    other_host.on("other", stall())
    client = make_client(timeout=(2, 6))
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match="deadline"):
        client.chat("hi", images=other_host.base_url + "/cat.png", deadline=1)
    assert 0.9 <= time.monotonic() - started < 1.0 + QUICK
    assert space.requests == []


# -- the shared /config fetch ------------------------------------------------------------------


def config_waiters(client):
    """How many chats wait for another's /config fetch (the client's ConfigCache)."""
    waiters = client._runner._config._waiters
    return 0 if waiters is None else len(waiters)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_chat_waiting_for_another_chats_config_fetch_keeps_its_own_deadline(space, make_client, protocol):
    """Chat A fetches /config, which stalls; chat B (deadline=1) of the same client waits for
    A's fetch and leaves at its own deadline (~1 s), not when A's fetch fails (~6 s)."""
    space.on("config", stall())
    client = make_client(protocol, timeout=(2, 6))
    a = Runner(lambda: client.complete("a"))
    assert space.wait_stalled("config")

    started = time.monotonic()
    b = Runner(lambda: client.complete("b", deadline=1)).join()

    assert isinstance(b.error, APITimeoutError) and "deadline" in str(b.error)
    assert 0.9 <= b.ended_at - started < 1.0 + QUICK
    assert len(space.requests_to("config")) == 1  # B did not fetch it itself
    assert a.ended_at is None  # A still waits on its fetch
    client.close()
    a.join()
    assert isinstance(a.error, APIConnectionError) and "was closed" in str(a.error)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_chat_waiting_for_another_chats_config_fetch_can_be_stopped(space, make_client, protocol):
    space.on("config", stall())
    client = make_client(protocol, timeout=(2, 6))
    a = Runner(lambda: client.complete("a"))
    assert space.wait_stalled("config")
    chat = client.events("b")
    b = Runner(drain(chat))
    assert space.wait_for(lambda: config_waiters(client) == 1)

    stopped_at = time.monotonic()
    chat.stop()
    b.join()

    assert b.error is None and b.result == [] and chat.stopped
    assert b.ended_at - stopped_at < QUICK
    assert a.ended_at is None and len(space.requests_to("config")) == 1
    client.close()
    a.join()
    assert isinstance(a.error, APIConnectionError)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_waiter_fetches_the_config_itself_when_the_fetching_chat_is_stopped(space, make_client, protocol):
    """Chat A's /config fetch stalls and A is stopped: chat B, which waited for it, fetches
    /config itself and gets its answer."""
    space.on("config", stall(), times=1)
    client = make_client(protocol, timeout=(2, 6))
    chat = client.events("a")
    a = Runner(drain(chat))
    assert space.wait_stalled("config")
    b = Runner(lambda: client.complete("b"))
    assert space.wait_for(lambda: config_waiters(client) == 1)

    chat.stop()
    a.join()
    b.join()

    assert a.error is None and a.result == [] and chat.stopped
    assert b.error is None and b.result == "Hello world"
    assert len(space.requests_to("config")) == 2


def test_many_threads_fetch_the_config_once(space, make_client):
    """Eight chats start together while /config is held: one fetches it, the seven others
    wait for it, and all eight get their answer from that one fetch."""
    release = threading.Event()

    def held_config(exchange):
        exchange.wait_for(release)
        json_reply(config_document())(exchange)

    space.on("config", held_config)
    client = make_client()
    runners = [Runner(lambda: client.complete("hi")) for _ in range(8)]
    assert space.wait_stalled("config")
    assert space.wait_for(lambda: config_waiters(client) == 7)
    release.set()
    for runner in runners:
        runner.join()

    assert [(r.error, r.result) for r in runners] == [(None, "Hello world")] * 8
    assert len(space.requests_to("config")) == 1


# -- what is sent again after a failure ----------------------------------------------------------


@pytest.mark.parametrize("fault", ["timeout", "reset"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_upload_that_failed_after_it_was_sent_is_sent_again(space, make_client, sleeps, protocol, fault):
    """An upload starts no job: one that timed out or broke after it was sent is sent again,
    and the chat gets its answer from one job."""
    wire = WIRES[protocol]
    space.on("upload", stall() if fault == "timeout" else reset(), times=1)
    client = make_client(protocol, timeout=(2, 0.5))
    assert client.complete("hi", images=PNG) == "Hello world"
    assert len(space.requests_to("upload")) == 2
    assert len(sleeps) == 1
    assert len(space.requests_to(wire.start)) == 1 and len(space.requests_to(wire.stream)) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_config_fetch_that_broke_after_it_was_sent_is_sent_again(space, make_client, sleeps, protocol):
    space.on("config", reset(), times=1)
    assert make_client(protocol).complete("hi") == "Hello world"
    assert len(space.requests_to("config")) == 2 and len(sleeps) == 1


@pytest.mark.parametrize("fault", ["timeout", "reset"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_join_that_failed_after_it_was_sent_is_not_sent_again(space, make_client, sleeps, protocol, fault):
    """The job may have started: it is never started twice."""
    wire = WIRES[protocol]
    space.on(wire.start, stall() if fault == "timeout" else reset(), times=1)
    client = make_client(protocol, timeout=(2, 0.5))
    expected = APITimeoutError if fault == "timeout" else APIConnectionError
    with pytest.raises(expected, match="may have started") as info:
        client.complete("hi")
    assert "was closed" not in str(info.value)
    assert len(space.requests_to(wire.start)) == 1 and space.requests_to(wire.stream) == []
    assert sleeps == []


# -- the deadline in a stream --------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_deadline_shorter_than_the_read_timeout_ends_a_silent_stream(space, make_client, protocol):
    """Text arrived, then silence: ``deadline=1`` with an 8 s read timeout ends the chat with
    the deadline's APITimeoutError at ~1 s, not at 8 s."""
    wire = WIRES[protocol]
    space.on(wire.stream, first_text_then_stall(wire))
    client = make_client(protocol, timeout=(2, 8))
    received = []
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match="deadline") as info:
        for chunk in client.chat("hi", deadline=1):
            received.append(chunk)
    elapsed = time.monotonic() - started
    assert received == ["Hel"]
    assert 0.9 <= elapsed < 1.0 + QUICK
    assert "read timeout" not in str(info.value)
    assert space.wait_idle()


# -- stopped after a complete answer ---------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stream_closed_right_after_done_is_not_stopped(space, make_client, protocol):
    """Breaking out of ``events()`` at ``Done`` and closing the stream (or stopping it) does
    not make a complete answer "stopped"."""
    client = make_client(protocol)
    for how in ("close", "stop"):
        stream = client.events("hi")
        for event in stream:
            if isinstance(event, Done):
                break
        getattr(stream, how)()
        assert not stream.stopped, how
        assert stream.done == Done("Hello world")
    chat = client.chat("hi")
    assert "".join(chat) == "Hello world"
    chat.close()
    chat.stop()
    assert not chat.stopped and chat.done == Done("Hello world")
