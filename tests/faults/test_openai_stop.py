"""protocol="openai" over real sockets: ending a chat early. A stop (``ChatStream.stop()`` or
``close()`` from another thread, leaving the loop) ends it quietly and closes its connection,
which is how vLLM learns to abort the generation (the server here sees the client close it);
``QVQClient.close()`` from another thread raises APIConnectionError; a stop during a 429's
``Retry-After`` wait sends nothing more; a deadline shorter than the read timeout ends a silent
chat at the deadline."""

from __future__ import annotations

import threading
import time

import pytest
from faultopenai import (
    ANSWER,
    ROLE,
    STALL,
    content,
    make_openai_fixture,  # noqa: F401  (pytest fixture)
    openai_server_fixture,  # noqa: F401  (pytest fixture)
    sse,
    stall,
    too_many_requests,
)

from qvq_sdk import APIConnectionError, APITimeoutError, Done, TextUpdate
from qvq_sdk._transport import transport as transport_module

REAL_PAUSE = transport_module.pause  # taken at import, before the faults conftest's ``sleeps`` replaces it

FIRST_PIECE_THEN_SILENCE = sse(ROLE, content("Hel"), STALL)


def read_in_thread(stream):
    """Iterates ``stream`` in a thread; (thread, received, errors, first): ``first`` is set
    once an item arrived (or the iteration ended)."""
    received, errors = [], []
    first = threading.Event()

    def run():
        try:
            for item in stream:
                received.append(item)
                first.set()
        except BaseException as exc:  # the test checks there is none, or which
            errors.append(exc)
        finally:
            first.set()

    thread = threading.Thread(target=run, name="test-reader", daemon=True)
    thread.start()
    return thread, received, errors, first


@pytest.mark.parametrize("how", ["stop", "close"])
@pytest.mark.parametrize("call", ["chat", "events"])
def test_a_stop_from_another_thread_ends_a_blocked_read_quietly_and_closes_the_connection(
    openai_server, make_openai, call, how
):
    openai_server.on("chat", FIRST_PIECE_THEN_SILENCE)
    stream = getattr(make_openai(), call)("hi")
    thread, received, errors, first = read_in_thread(stream)
    assert first.wait(10) and len(received) == 1
    assert openai_server.wait_stalled()  # everything before the silence was sent: the reader waits for more

    started = time.monotonic()
    getattr(stream, how)()
    thread.join(5)

    assert not thread.is_alive()
    assert time.monotonic() - started < 1
    assert errors == []  # a quiet end
    assert received == (["Hel"] if call == "chat" else [TextUpdate("Hel")])
    assert stream.stopped and stream.done is None
    assert openai_server.wait_client_closed(timeout=5)  # what tells vLLM to abort the request
    assert len(openai_server.requests) == 1


def test_a_stop_while_the_post_waits_for_its_headers_ends_quietly(openai_server, make_openai):
    openai_server.on("chat", stall())
    chat = make_openai().chat("hi")
    thread, received, errors, _ = read_in_thread(chat)
    assert openai_server.wait_stalled()
    started = time.monotonic()
    chat.stop()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 1
    assert errors == [] and received == [] and chat.stopped
    assert openai_server.wait_client_closed(timeout=5)
    assert len(openai_server.requests) == 1  # not sent again


@pytest.mark.parametrize("how", ["break", "with"])
def test_leaving_the_loop_closes_the_connection(openai_server, make_openai, how):
    openai_server.on("chat", FIRST_PIECE_THEN_SILENCE)
    client = make_openai()
    if how == "break":
        chat = client.chat("hi")
        for chunk in chat:
            assert chunk == "Hel"
            break
        chat.close()  # what the loop's end does to a generator that is no longer referenced
    else:
        with client.chat("hi") as chat:
            assert next(chat) == "Hel"
    assert chat.stopped
    assert openai_server.wait_client_closed(timeout=5)


def test_a_stop_between_events_hands_out_nothing_more(openai_server, make_openai):
    openai_server.on("chat", sse(ROLE, *(content(piece) for piece in "abcdef"), STALL))
    chat = make_openai().chat("hi")
    assert next(chat) == "a"
    assert openai_server.wait_stalled()  # the rest is on its way, or already read
    chat.stop()
    assert list(chat) == []
    assert chat.stopped
    assert openai_server.wait_client_closed(timeout=5)


def test_a_stop_before_the_chat_starts_sends_nothing(openai_server, make_openai):
    chat = make_openai().chat("hi")
    chat.stop()
    assert list(chat) == [] and chat.stopped
    assert openai_server.requests == []


def test_a_stop_after_the_answer_changes_nothing(openai_server, make_openai):
    client = make_openai()
    chat = client.events("hi")
    events = list(chat)
    chat.stop()
    assert not chat.stopped
    assert chat.done == events[-1] and isinstance(chat.done, Done)
    assert client.complete("again") == ANSWER
    assert openai_server.connections == 1  # the finished chat's connection went back to the pool


@pytest.mark.parametrize("where", ["stream", "headers"])
def test_client_close_from_another_thread_raises_api_connection_error(openai_server, make_openai, where):
    openai_server.on("chat", FIRST_PIECE_THEN_SILENCE if where == "stream" else stall())
    client = make_openai()
    chat = client.chat("hi")
    thread, received, errors, first = read_in_thread(chat)
    assert openai_server.wait_stalled()
    if where == "stream":
        assert first.wait(10)

    started = time.monotonic()
    client.close()
    thread.join(5)

    assert not thread.is_alive() and time.monotonic() - started < 1
    assert received == (["Hel"] if where == "stream" else [])
    assert len(errors) == 1 and type(errors[0]) is APIConnectionError
    assert "closed" in str(errors[0])
    assert openai_server.wait_client_closed(timeout=5)
    with pytest.raises(APIConnectionError):
        client.complete("again")
    assert len(openai_server.requests) == 1


def _really_waiting(monkeypatch, sleeps):
    """Makes the retry wait real again (cut short by a cancel), and says when it began."""
    waiting = threading.Event()

    def pause(cancel, seconds):
        sleeps.append(seconds)
        waiting.set()
        REAL_PAUSE(cancel, seconds)

    monkeypatch.setattr("qvq_sdk._transport.transport.pause", pause)
    return waiting


def test_a_stop_while_waiting_out_a_retry_after_sends_nothing_more(openai_server, make_openai, monkeypatch, sleeps):
    waiting = _really_waiting(monkeypatch, sleeps)
    openai_server.on("chat", too_many_requests(30))
    chat = make_openai().chat("hi")
    thread, received, errors, _ = read_in_thread(chat)
    assert waiting.wait(10)

    started = time.monotonic()
    chat.stop()
    thread.join(5)

    assert not thread.is_alive() and time.monotonic() - started < 1
    assert errors == [] and received == [] and chat.stopped
    assert sleeps == [30.0]
    assert len(openai_server.requests) == 1  # the retry would have come from the ended thread


def test_client_close_while_waiting_out_a_retry_after_raises_and_sends_nothing_more(
    openai_server, make_openai, monkeypatch, sleeps
):
    waiting = _really_waiting(monkeypatch, sleeps)
    openai_server.on("chat", too_many_requests(30))
    client = make_openai()
    chat = client.events("hi")
    thread, _, errors, _ = read_in_thread(chat)
    assert waiting.wait(10)
    client.close()
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1 and type(errors[0]) is APIConnectionError
    assert len(openai_server.requests) == 1


@pytest.mark.parametrize("where", ["stream", "headers"])
@pytest.mark.parametrize("given", ["call", "client"])
def test_a_deadline_shorter_than_the_read_timeout_ends_a_silent_chat_at_the_deadline(
    openai_server, make_openai, where, given
):
    openai_server.on("chat", FIRST_PIECE_THEN_SILENCE if where == "stream" else stall())
    if given == "call":
        client, options = make_openai(timeout=(2, 20)), {"deadline": 0.5}
    else:
        client, options = make_openai(timeout=(2, 20), deadline=0.5), {}
    received = []
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as info:
        for chunk in client.chat("hi", **options):
            received.append(chunk)
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 2.5
    assert "deadline of 0.5 s" in str(info.value)
    assert received == (["Hel"] if where == "stream" else [])
    assert openai_server.wait_client_closed(timeout=5)
    assert len(openai_server.requests) == 1


def test_a_silent_stream_ends_at_the_read_timeout(openai_server, make_openai):
    openai_server.on("chat", FIRST_PIECE_THEN_SILENCE)
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as info:
        make_openai(timeout=(2, 0.4)).complete("hi")
    assert 0.35 <= time.monotonic() - started < 2.5
    assert "read timeout" in str(info.value)
    assert openai_server.wait_client_closed(timeout=5)


def test_a_chat_made_before_client_close_and_read_after_it_sends_nothing(openai_server, make_openai):
    client = make_openai()
    chat = client.chat("hi")
    client.close()
    with pytest.raises(APIConnectionError) as info:
        next(chat)
    assert "closed" in str(info.value)
    assert openai_server.requests == []


def test_client_close_closes_the_pooled_connection(openai_server, make_openai):
    client = make_openai()
    assert client.complete("hi") == ANSWER
    assert openai_server.wait_for(lambda: openai_server.idle_connections == 1)
    client.close()
    assert openai_server.wait_client_closed(1, timeout=5)
