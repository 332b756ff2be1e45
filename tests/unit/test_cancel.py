"""qvq_sdk._cancel.CancelToken: what a cancel runs and when, what a finished chat ignores,
and the waits it cuts short."""

from __future__ import annotations

import threading
import time

import pytest

from qvq_sdk._cancel import CLOSED, STOPPED, Cancelled, CancelToken


def test_a_cancel_runs_every_registered_abort_in_order():
    token = CancelToken()
    calls = []
    for name in ("request", "body", "wait"):
        token.register(lambda name=name: calls.append(name))
    assert calls == []  # nothing runs before the cancel
    token.cancel(STOPPED)
    assert calls == ["request", "body", "wait"]
    assert token.reason == STOPPED


def test_an_unregistered_abort_never_runs():
    token = CancelToken()
    calls = []
    kept = token.register(lambda: calls.append("kept"))
    gone = token.register(lambda: calls.append("gone"))
    assert kept != gone
    token.unregister(gone)
    token.unregister(gone)  # twice: nothing
    token.cancel(CLOSED)
    assert calls == ["kept"]


def test_registering_after_a_cancel_runs_the_abort_at_once():
    """A request that starts after the cancel (its owner had not checked yet) is aborted
    as soon as it registers."""
    token = CancelToken()
    token.cancel(STOPPED)
    calls = []
    key = token.register(lambda: calls.append("late"))
    assert calls == ["late"]
    token.unregister(key)


def test_unregister_waits_for_an_abort_under_way():
    """Once unregister() returns, the abort is not running (the connection it shuts down may
    go back to the pool right after): unregister waits for a running abort to end."""
    token = CancelToken()
    aborting = threading.Event()
    release = threading.Event()
    events = []

    def abort():
        aborting.set()
        release.wait(5)
        events.append("abort ended")

    key = token.register(abort)
    canceller = threading.Thread(target=token.cancel, args=(STOPPED,))
    canceller.start()
    assert aborting.wait(5)

    def owner():
        token.unregister(key)
        events.append("unregistered")

    unregistering = threading.Thread(target=owner)
    unregistering.start()
    unregistering.join(0.2)
    assert unregistering.is_alive(), "unregister() returned while the abort was running"
    release.set()
    unregistering.join(5)
    canceller.join(5)
    assert events == ["abort ended", "unregistered"]


def test_the_first_reason_wins():
    token = CancelToken()
    token.cancel(STOPPED)
    token.cancel(CLOSED)
    assert token.reason == STOPPED
    with pytest.raises(Cancelled) as info:
        token.check()
    assert info.value.reason == STOPPED

    other = CancelToken()
    other.cancel(CLOSED)
    other.cancel(STOPPED)
    assert other.reason == CLOSED


def test_check_raises_only_once_cancelled():
    token = CancelToken()
    token.check()  # nothing
    token.cancel(CLOSED)
    with pytest.raises(Cancelled) as info:
        token.check()
    assert info.value.reason == CLOSED and str(info.value) == CLOSED


def test_finish_makes_later_cancels_no_ops():
    """A chat whose answer is complete: a stop or close after it changes nothing."""
    token = CancelToken()
    calls = []
    token.register(lambda: calls.append("abort"))
    done = object()
    token.finish(done)
    token.cancel(STOPPED)
    token.cancel(CLOSED)
    assert token.finished and token.result is done
    assert token.reason is None and calls == []
    token.check()  # does not raise
    token.sleep(0)


def test_finish_after_a_cancel_does_not_finish():
    """A chat cancelled first stays cancelled: what arrived is not an answer."""
    token = CancelToken()
    token.cancel(STOPPED)
    token.finish(object())
    assert not token.finished and token.result is None
    assert token.reason == STOPPED


def test_sleep_waits_when_not_cancelled():
    token = CancelToken()
    started = time.monotonic()
    token.sleep(0.2)
    assert time.monotonic() - started >= 0.19
    token.sleep(0)
    token.sleep(-1)


def test_sleep_is_cut_short_by_a_cancel_from_another_thread():
    token = CancelToken()
    timer = threading.Timer(0.1, token.cancel, args=(STOPPED,))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(Cancelled) as info:
            token.sleep(10)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 2
    assert info.value.reason == STOPPED


def test_sleep_after_a_cancel_raises_at_once():
    token = CancelToken()
    token.cancel(CLOSED)
    started = time.monotonic()
    with pytest.raises(Cancelled):
        token.sleep(10)
    assert time.monotonic() - started < 1
