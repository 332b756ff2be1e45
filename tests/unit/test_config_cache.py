"""qvq_sdk._gradio.ConfigCache: the Space's /config fetched once for every thread of a client; a
waiting thread leaves at its own deadline or cancel while the fetch goes on; a failed fetch
lets the next waiter fetch."""

from __future__ import annotations

import threading
import time

import pytest

from qvq_sdk._cancel import CLOSED, STOPPED, Cancelled, CancelToken
from qvq_sdk._deadline import Deadline
from qvq_sdk._gradio import ConfigCache
from qvq_sdk.errors import APIConnectionError, APITimeoutError

GUARD = 5.0  # no wait in these tests should come near this


class Fetch:
    """A /config fetch that blocks until released, and counts its calls."""

    def __init__(self, results):
        self.results = list(results)  # what each call returns or raises, in order
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self):
        self.calls += 1
        self.started.set()
        assert self.release.wait(GUARD), "the test never released the fetch"
        result = self.results.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result


class Runner(threading.Thread):
    """``cache.get(...)`` in a thread; ``.result`` is what it returned or raised."""

    def __init__(self, cache, fetch, cancel=None, deadline=None):
        super().__init__(daemon=True)
        self.args = (fetch, cancel or CancelToken(), deadline or Deadline(None))
        self.cache = cache
        self.result = None
        self.ended_at = None

    def run(self):
        try:
            self.result = self.cache.get(*self.args)
        except BaseException as exc:
            self.result = exc
        self.ended_at = time.monotonic()


def start_fetching(cache, fetch):
    """A first thread that fetches, and is blocked in the fetch."""
    first = Runner(cache, fetch)
    first.start()
    assert fetch.started.wait(GUARD)
    return first


def wait_for_waiters(cache, count):
    """Until ``count`` threads wait for the fetch under way."""
    stop = time.monotonic() + GUARD
    while len(cache._waiters or ()) < count:
        assert time.monotonic() < stop, "the threads never waited"
        time.sleep(0.001)


def test_one_fetch_for_many_threads():
    cache = ConfigCache()
    config = object()
    fetch = Fetch([config])
    first = start_fetching(cache, fetch)
    others = [Runner(cache, fetch) for _ in range(8)]
    for runner in others:
        runner.start()
    wait_for_waiters(cache, 8)
    fetch.release.set()
    for runner in [first, *others]:
        runner.join(GUARD)
    assert [runner.result for runner in [first, *others]] == [config] * 9
    assert fetch.calls == 1
    assert cache.get(fetch, CancelToken(), Deadline(None)) is config  # kept: no second fetch
    assert fetch.calls == 1


def test_a_waiter_leaves_at_its_own_deadline_while_the_fetch_goes_on():
    cache = ConfigCache()
    config = object()
    fetch = Fetch([config])
    first = start_fetching(cache, fetch)
    started = time.monotonic()
    waiter = Runner(cache, fetch, deadline=Deadline(0.2))
    waiter.run()  # in this thread
    assert isinstance(waiter.result, APITimeoutError)
    assert "deadline of 0.2 s" in str(waiter.result)
    assert 0.15 <= waiter.ended_at - started < 1.0
    assert first.is_alive()  # the fetch goes on
    fetch.release.set()
    first.join(GUARD)
    assert first.result is config
    assert cache.get(fetch, CancelToken(), Deadline(0.001)) is config
    assert fetch.calls == 1


@pytest.mark.parametrize("reason", [STOPPED, CLOSED])
def test_a_waiter_leaves_at_its_cancel_while_the_fetch_goes_on(reason):
    cache = ConfigCache()
    config = object()
    fetch = Fetch([config])
    first = start_fetching(cache, fetch)
    cancel = CancelToken()
    threading.Timer(0.05, cancel.cancel, args=(reason,)).start()
    started = time.monotonic()
    waiter = Runner(cache, fetch, cancel=cancel)
    waiter.run()
    assert isinstance(waiter.result, Cancelled) and waiter.result.reason == reason
    assert waiter.ended_at - started < 1.0
    assert cancel._aborts == {}  # its wake-up was unregistered
    assert first.is_alive()
    fetch.release.set()
    first.join(GUARD)
    assert first.result is config and fetch.calls == 1


def test_a_waiter_already_cancelled_leaves_at_once():
    cache = ConfigCache()
    fetch = Fetch([object()])
    first = start_fetching(cache, fetch)
    cancel = CancelToken()
    cancel.cancel(STOPPED)
    with pytest.raises(Cancelled):
        cache.get(fetch, cancel, Deadline(None))
    fetch.release.set()
    first.join(GUARD)


def test_a_failed_fetch_lets_the_next_waiter_fetch():
    cache = ConfigCache()
    config = object()
    fetch = Fetch([APIConnectionError("the Space broke"), config])
    first = start_fetching(cache, fetch)
    waiter = Runner(cache, fetch)
    waiter.start()
    wait_for_waiters(cache, 1)
    fetch.release.set()  # the first fetch fails, the second (the waiter's) succeeds
    first.join(GUARD)
    waiter.join(GUARD)
    assert isinstance(first.result, APIConnectionError)  # the fetching thread gets its own error
    assert waiter.result is config
    assert fetch.calls == 2
    assert cache.get(fetch, CancelToken(), Deadline(None)) is config


def test_after_a_failed_fetch_with_no_one_waiting_the_next_call_fetches():
    cache = ConfigCache()
    config = object()
    fetch = Fetch([ValueError("not JSON"), config])
    fetch.release.set()
    with pytest.raises(ValueError):
        cache.get(fetch, CancelToken(), Deadline(None))
    assert cache.get(fetch, CancelToken(), Deadline(None)) is config
    assert fetch.calls == 2
