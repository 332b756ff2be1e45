"""qvq_sdk._transport.watchdog: the one thread that ends reads waiting past their read timeout or
deadline, on real (socketpair) sockets that block without a timeout, as a stream's do."""

from __future__ import annotations

import math
import os
import signal
import socket
import threading
import time
import warnings

import pytest

from qvq_sdk._transport.watchdog import WATCHDOG, Watch, Watchdog

GUARD = 10.0  # if the watchdog never acts, the peer closes after this long and the test fails


@pytest.fixture
def pair():
    """(ours, theirs): ``ours`` blocks without a timeout. ``theirs`` closes after GUARD
    seconds, so a watchdog that does nothing fails the test instead of hanging it."""
    ours, theirs = socket.socketpair()
    ours.settimeout(None)
    guard = threading.Timer(GUARD, theirs.close)
    guard.start()
    yield ours, theirs
    guard.cancel()
    ours.close()
    theirs.close()


def blocked_read(watch: Watch) -> bytes:
    watch.since = time.monotonic()
    try:
        return watch.sock.recv(100)
    finally:
        watch.since = None


def test_a_read_waiting_longer_than_its_timeout_is_ended(pair):
    ours, _ = pair
    watch = WATCHDOG.watch(ours, 0.2, None)
    started = time.monotonic()
    assert blocked_read(watch) == b""  # the socket was shut down: the read sees its end
    assert watch.expired == "read timeout"
    assert 0.2 <= time.monotonic() - started < GUARD
    assert watch not in WATCHDOG.watched()


def test_a_read_waiting_past_the_deadline_is_ended(pair):
    ours, _ = pair
    watch = WATCHDOG.watch(ours, 60.0, time.monotonic() + 0.2)
    assert blocked_read(watch) == b""
    assert watch.expired == "deadline"


def test_data_that_arrives_in_time_is_read_and_nothing_expires(pair):
    ours, theirs = pair
    watch = WATCHDOG.watch(ours, 5.0, None)
    threading.Timer(0.1, theirs.sendall, args=(b"hello",)).start()
    assert blocked_read(watch) == b"hello"
    assert watch.expired is None
    WATCHDOG.unwatch(watch)
    assert watch not in WATCHDOG.watched()


def test_an_unwatched_socket_is_left_alone(pair):
    ours, theirs = pair
    watch = WATCHDOG.watch(ours, 0.1, None)
    WATCHDOG.unwatch(watch)
    threading.Timer(0.5, theirs.sendall, args=(b"late",)).start()  # five read timeouts later
    assert blocked_read(watch) == b"late"
    assert watch.expired is None


def test_a_new_watch_with_an_earlier_end_wakes_the_sleeping_thread(pair):
    """A watch due in 0.2 s, added while the thread sleeps until another's end in 60 s,
    still ends on time: the thread is woken to plan again."""
    ours, _ = pair
    watchdog = Watchdog(name="test-watchdog")
    spare, spare_peer = socket.socketpair()
    try:
        slow = watchdog.watch(spare, 60.0, None)  # starts the thread, which plans to wake in 60 s
        slow.since = time.monotonic()
        planned = threading.Event()
        while watchdog._wakes_at == math.inf:  # until the thread has planned its sleep
            planned.wait(0.005)
        fast = watchdog.watch(ours, 0.2, None)
        started = time.monotonic()
        assert blocked_read(fast) == b""
        assert fast.expired == "read timeout"
        assert time.monotonic() - started < GUARD / 2
        assert slow.expired is None
    finally:
        watchdog.unwatch(slow)
        spare.close()
        spare_peer.close()


def test_due_counts_only_a_read_in_progress():
    watch = Watch(socket.socket(), read_timeout=10.0, expires=None)
    try:
        assert watch.due(100.0) == 110.0  # not reading: look again a read timeout from now
        watch.since = 95.0
        assert watch.due(100.0) == 105.0  # reading since 95: due at 105
        watch.expires = 102.0
        assert watch.due(100.0) == 102.0  # the deadline comes first
        watch.since = None
        assert watch.due(100.0) == 102.0
    finally:
        watch.sock.close()


def test_one_daemon_thread_serves_the_whole_process(pair):
    ours, _ = pair
    for _ in range(50):
        WATCHDOG.unwatch(WATCHDOG.watch(ours, 1.0, None))
    threads = [thread for thread in threading.enumerate() if thread.name == "qvq-sdk-watchdog"]
    assert len(threads) == 1
    assert threads[0].daemon


def test_a_watchdog_of_its_own_starts_its_own_thread(pair):
    ours, _ = pair
    watchdog = Watchdog(name="test-watchdog")
    watch = watchdog.watch(ours, 0.2, None)
    assert blocked_read(watch) == b""
    assert watch.expired == "read timeout"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_a_forked_child_gets_a_working_watchdog(pair):
    """The parent's thread does not exist in a child: the child starts its own."""
    ours, theirs = pair
    WATCHDOG.unwatch(WATCHDOG.watch(ours, 1.0, None))  # the parent's thread is running
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() of a threaded process
        pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its watchdog ends the read
        code = 1
        try:
            theirs.close()  # the parent's copy alone stays open, and its guard closes it
            watch = WATCHDOG.watch(ours, 0.2, None)
            code = 0 if blocked_read(watch) == b"" and watch.expired == "read timeout" else 2
        finally:
            os._exit(code)
    killer = threading.Timer(GUARD, os.kill, args=(pid, signal.SIGKILL))  # a child that hangs fails
    killer.start()
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        killer.cancel()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
