"""What every test tree shares: a time limit on every test, so that a hang fails.

``time_limit`` (autouse) fails a test still running ``limit`` seconds after its set-up began
(its function-scoped fixtures, the test, and their teardown all count). The limit is, first
found:

    @pytest.mark.time_limit(seconds)   on the test (or its module's ``pytestmark``)
    TEST_TIME_LIMIT = seconds          in the test's module
    the ``tree_time_limit`` fixture    which a tree's conftest.py overrides (DEFAULT_TIME_LIMIT,
                                       20 s, if it does not), times PROPERTY_TEST_FACTOR (3) for
                                       a hypothesis test: hundreds of examples, on a loaded CI
                                       machine several times slower than on an idle one

How: SIGALRM in the main thread, whose handler raises :class:`TimeLimitExceeded` wherever the
test is blocked (a socket read, a join, a lock, a sleep), with a message naming the limit. It
derives from BaseException, so neither the code under test (``except Exception``) nor
hypothesis (which would shrink a ``pytest.fail``) takes it for an error of its own.

A backstop for what that cannot end (no SIGALRM on the platform, a test not run in the main
thread, the exception swallowed by an ``except BaseException``, a call that retries on
EINTR): ``BACKSTOP_GRACE`` seconds later (at once where there is no SIGALRM) a watchdog
thread prints every thread's stack and ends the whole run with exit status 1 (``os._exit``:
a hung process cannot be trusted to unwind).

Work with a time limit of its own that a test may start in its body (building a Gradio venv,
starting a server) runs in ``with time_limits.paused():`` (a session fixture): the clock of
the running test stops meanwhile.

Works on CPython 3.7 and later.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback

import pytest

DEFAULT_TIME_LIMIT = 20.0  # seconds
PROPERTY_TEST_FACTOR = 3  # a hypothesis test gets its tree's limit times this
BACKSTOP_GRACE = 30.0  # seconds after the limit, if the test has not ended by then


class TimeLimitExceeded(BaseException):
    """The test ran longer than its time limit (raised by SIGALRM where the test is blocked)."""


def _alarm_works():
    return hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()


class TimeLimits:
    """The clock of the running test: the alarm, the backstop and their pause."""

    def __init__(self, config):
        self._config = config
        self._wake = threading.Condition()
        self._deadline = None  # time.monotonic() of the backstop; None when no test runs (or paused)
        self._test = None  # (nodeid, limit, backstop seconds) of the running test
        self._alarm = False  # SIGALRM is armed for the running test
        self._previous = None
        self._watchdog = None

    def start(self, nodeid, limit):
        self._alarm = _alarm_works()
        backstop = limit + BACKSTOP_GRACE if self._alarm else limit
        self._test = (nodeid, limit, backstop)
        if self._alarm:
            self._previous = signal.signal(signal.SIGALRM, self._expire)
            signal.setitimer(signal.ITIMER_REAL, limit)
        with self._wake:
            self._deadline = time.monotonic() + backstop
            self._wake.notify()
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name="tests-time-limit", daemon=True)
            self._watchdog.start()

    def stop(self):
        if self._alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)
            self._alarm = False
        with self._wake:
            self._deadline = None
            self._wake.notify()
        self._test = None

    @contextlib.contextmanager
    def paused(self):
        """Stops the running test's clock while the block runs (nothing to do if none runs)."""
        if self._test is None:
            yield
            return
        alarm_left = signal.setitimer(signal.ITIMER_REAL, 0)[0] if self._alarm else 0.0
        with self._wake:
            backstop_left = None if self._deadline is None else self._deadline - time.monotonic()
            self._deadline = None
        try:
            yield
        finally:
            if backstop_left is not None:
                with self._wake:
                    self._deadline = time.monotonic() + backstop_left
                    self._wake.notify()
            if self._alarm:
                signal.setitimer(signal.ITIMER_REAL, max(alarm_left, 0.001))

    def _expire(self, signum, frame):
        nodeid, limit, _ = self._test or ("?", 0, 0)
        raise TimeLimitExceeded(
            "%s ran longer than its time limit of %g s: something hangs (the traceback shows where "
            "it was; limits: tests/conftest.py)" % (nodeid, limit)
        )

    def _watch(self):
        with self._wake:
            while True:
                if self._deadline is None:
                    self._wake.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(left)
        self._give_up()

    def _give_up(self):
        """The test outlived its limit and the alarm: print every thread's stack, end the run."""
        nodeid, limit, backstop = self._test or ("?", 0, 0)
        try:
            capture = self._config.pluginmanager.getplugin("capturemanager")
            if capture is not None:
                capture.suspend_global_capture(in_=True)
        except Exception:
            pass
        lines = [
            "\n%s TIME LIMIT %s\n" % ("+" * 30, "+" * 30),
            "%s ran longer than its time limit of %g s and was still running %g s after it started: "
            "the run stops here.\n" % (nodeid, limit, backstop),
        ]
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident == threading.get_ident():
                continue
            lines.append("\n-- thread %s (%s):\n" % (names.get(ident, "?"), ident))
            lines += traceback.format_stack(frame)
        try:
            sys.stderr.write("".join(lines))
            sys.stderr.flush()
        finally:
            os._exit(1)


def pytest_configure(config):
    config.addinivalue_line("markers", "time_limit(seconds): the test fails if it runs longer (see tests/conftest.py)")


@pytest.fixture(scope="session")
def time_limits(request):
    """The session's :class:`TimeLimits` (``time_limits.paused()`` stops the running test's clock)."""
    return TimeLimits(request.config)


@pytest.fixture
def tree_time_limit():
    """The time limit (seconds) of every test of a tree: a tree's conftest.py overrides this."""
    return DEFAULT_TIME_LIMIT


@pytest.fixture(autouse=True)
def time_limit(request, time_limits, tree_time_limit):
    """Fails the test, wherever it is blocked, once it has run its time limit (see above)."""
    marker = request.node.get_closest_marker("time_limit")
    module_limit = getattr(getattr(request.node, "module", None), "TEST_TIME_LIMIT", None)
    if marker is not None:
        limit = float(marker.args[0])
    elif module_limit is not None:
        limit = float(module_limit)
    elif getattr(getattr(request.node, "obj", None), "is_hypothesis_test", False):
        limit = float(tree_time_limit) * PROPERTY_TEST_FACTOR
    else:
        limit = float(tree_time_limit)
    time_limits.start(request.node.nodeid, limit)
    try:
        yield limit
    finally:
        time_limits.stop()
