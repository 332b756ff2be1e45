"""qvq_sdk._chat_stream.ChatStream: a generator (iteration, send, throw, close) that any thread
can stop: stop() cancels the chat's token, whose registered abort wakes the blocked chat;
``stopped`` only for a stop before the answer was complete, ``done`` once it is, its repr."""

from __future__ import annotations

import threading
import time

import pytest

from qvq_sdk._cancel import CLOSED, STOPPED, Cancelled, CancelToken
from qvq_sdk._chat_stream import ChatStream
from qvq_sdk._events import Done

GUARD = 5.0  # a blocked chat that nothing wakes gives up after this long (the test then fails)


def items(*values):
    yield from values


def blocked_chat(cancel, log, before=("a",)):
    """A chat as the protocols write one: it yields, then blocks (as on a socket) with an
    abort registered with its token; a cancel wakes it and it ends quietly."""
    woken = threading.Event()
    key = cancel.register(woken.set)
    try:
        yield from before
        log.append("blocked")
        if not woken.wait(GUARD):
            log.append("never woken")
            return
        cancel.check()
        yield "after the wake-up"
    except Cancelled as cancelled:
        log.append(("cancelled", cancelled.reason))
    finally:
        cancel.unregister(key)
        log.append("closed")


def when_blocked(log, action):
    """Runs ``action`` in another thread once the chat is blocked; returns what it raised,
    once it has run (``errors()``)."""
    errors = []

    def run():
        stop = time.monotonic() + GUARD
        while "blocked" not in log and time.monotonic() < stop:
            time.sleep(0.001)
        time.sleep(0.01)  # into the wait itself
        try:
            action()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def joined():
        thread.join(GUARD)
        return errors

    return joined


def test_iteration():
    stream = ChatStream(items("a", "b", "c"), CancelToken())
    assert iter(stream) is stream
    assert list(stream) == ["a", "b", "c"]
    with pytest.raises(StopIteration):
        next(stream)
    assert not stream.stopped and stream.done is None


def test_send_none_is_next():
    stream = ChatStream(items("a", "b"), CancelToken())
    assert stream.send(None) == "a"
    assert next(stream) == "b"


def test_send_goes_to_the_chat_s_generator():
    with pytest.raises(TypeError, match="non-None value"):
        ChatStream(items("a"), CancelToken()).send("x")


def test_throw_raises_in_the_chat():
    seen = []

    def chat():
        try:
            yield "a"
        except KeyError as exc:
            seen.append(exc)
            yield "recovered"

    stream = ChatStream(chat(), CancelToken())
    next(stream)
    assert stream.throw(KeyError("k")) == "recovered"
    assert isinstance(seen[0], KeyError)
    stream = ChatStream(chat(), CancelToken())
    next(stream)
    error = ValueError("v")
    with pytest.raises(ValueError) as caught:
        stream.throw(ValueError, error, None)  # the three-argument form
    assert caught.value is error
    stream = ChatStream(chat(), CancelToken())
    next(stream)
    assert stream.throw(KeyError, KeyError("k2")) == "recovered"
    assert str(seen[1]) == "'k2'"


def test_close_ends_the_chat_and_counts_as_a_stop():
    cancel, log = CancelToken(), []
    stream = ChatStream(blocked_chat(cancel, log, before=("a", "b")), cancel)
    assert next(stream) == "a"
    stream.close()
    assert log == ["closed"]  # the chat's finally ran: its stream closed
    assert cancel.reason == STOPPED and stream.stopped
    with pytest.raises(StopIteration):
        next(stream)
    stream.close()  # again: nothing


def test_close_after_the_end_changes_nothing():
    cancel = CancelToken()
    stream = ChatStream(items("a"), cancel)
    assert list(stream) == ["a"]
    stream.close()
    stream.stop()
    assert cancel.reason is None and not stream.stopped


def test_a_context_manager_closes_the_chat():
    cancel, log = CancelToken(), []
    with ChatStream(blocked_chat(cancel, log, before=("a", "b")), cancel) as stream:
        assert next(stream) == "a"
    assert log == ["closed"] and stream.stopped


def test_stop_from_another_thread_wakes_a_blocked_next():
    cancel, log = CancelToken(), []
    stream = ChatStream(blocked_chat(cancel, log), cancel)
    assert next(stream) == "a"
    errors = when_blocked(log, stream.stop)
    started = time.monotonic()
    with pytest.raises(StopIteration):
        next(stream)  # blocks until the stop wakes the chat
    assert time.monotonic() - started < 1.0
    assert log == ["blocked", ("cancelled", STOPPED), "closed"]
    assert errors() == []
    assert stream.stopped and stream.done is None
    assert repr(stream) == "<ChatStream stopped>"


def test_close_from_another_thread_while_one_reads_stops_it():
    cancel, log = CancelToken(), []
    stream = ChatStream(blocked_chat(cancel, log), cancel)
    assert next(stream) == "a"
    errors = when_blocked(log, stream.close)  # generator.close() there fails: it is running here
    started = time.monotonic()
    assert list(stream) == []
    assert time.monotonic() - started < 1.0
    assert ("cancelled", STOPPED) in log and stream.stopped
    assert errors() == []  # close() from another thread does not raise


def test_a_next_while_another_thread_runs_the_chat():
    """Another thread is inside the chat: a next() here is the generator's ValueError, unless
    the chat was cancelled (it is ending): then it is the end of the iteration."""
    cancel = CancelToken()
    inside, leave = threading.Event(), threading.Event()

    def chat():
        inside.set()
        leave.wait(GUARD)
        yield "a"

    stream = ChatStream(chat(), cancel)
    reader = threading.Thread(target=lambda: next(stream, None), daemon=True)
    reader.start()
    assert inside.wait(GUARD)
    try:
        with pytest.raises(ValueError, match="already executing"):
            next(stream)
        cancel.cancel(STOPPED)  # no abort registered: the chat stays blocked, the reader in it
        with pytest.raises(StopIteration):
            next(stream)
    finally:
        leave.set()
        reader.join(GUARD)


def test_stopped_only_for_a_stop_before_done():
    cancel = CancelToken()
    done = Done("42")

    def chat():
        yield "4"
        cancel.finish(done)  # as the read loop does, before the Done reaches the caller
        yield "2"

    stream = ChatStream(chat(), cancel)
    assert next(stream) == "4"
    assert stream.done is None
    assert next(stream) == "2"
    stream.stop()  # after the answer was complete: changes nothing
    stream.close()
    assert not stream.stopped
    assert stream.done is done
    assert cancel.reason is None


def test_done_holds_only_a_done():
    cancel = CancelToken()
    cancel.finish("not a Done")
    assert ChatStream(items(), cancel).done is None


def test_a_stop_before_done_leaves_done_empty():
    cancel = CancelToken()
    stream = ChatStream(items("a", "b"), cancel)
    next(stream)
    stream.stop()
    cancel.finish(Done("ab"))  # too late: the chat was stopped
    assert stream.stopped and stream.done is None


def test_closed_by_the_client_is_not_stopped():
    cancel = CancelToken()
    stream = ChatStream(items("a"), cancel)
    next(stream)
    cancel.cancel(CLOSED)  # QVQClient.close(): the chat raises, it was not stopped
    assert not stream.stopped
    stream.stop()  # the first reason stays
    assert cancel.reason == CLOSED and not stream.stopped


def test_repr_states():
    stream = ChatStream(items("a"), CancelToken())
    assert repr(stream) == "<ChatStream open>"
    next(stream)
    assert repr(stream) == "<ChatStream open>"
    list(stream)
    assert repr(stream) == "<ChatStream ended>"
    stopped = ChatStream(items("a", "b"), CancelToken())
    next(stopped)
    stopped.close()
    assert repr(stopped) == "<ChatStream stopped>"
    unstarted = ChatStream(items("a"), CancelToken())
    unstarted.stop()
    assert repr(unstarted) == "<ChatStream stopped>"


def test_stop_of_an_ended_chat_does_nothing():
    cancel = CancelToken()
    stream = ChatStream(items(), cancel)
    assert list(stream) == []
    stream.stop()
    assert cancel.reason is None and repr(stream) == "<ChatStream ended>"


def test_an_error_of_the_chat_reaches_the_caller():
    def chat():
        yield "a"
        raise RuntimeError("broke")

    stream = ChatStream(chat(), CancelToken())
    next(stream)
    with pytest.raises(RuntimeError, match="broke"):
        next(stream)
    assert repr(stream) == "<ChatStream ended>" and not stream.stopped
