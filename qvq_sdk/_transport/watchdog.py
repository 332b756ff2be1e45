"""Read timeouts and deadlines for open streams, kept by one thread for the whole process.

A socket with a timeout makes CPython ``poll()`` before every ``recv()``. On a stream of
thousands of small events that doubles the system calls and contends for the socket's
wait queue with the sender: it cost more CPU than decoding the events (see
``docs/benchmarks.md``). So while an answer streams, its socket blocks without a timeout,
and the watchdog, one daemon thread named ``qvq-sdk-watchdog`` started with the first
stream, shuts down a socket whose read has waited longer than its read timeout, or past its
chat's deadline. The reading thread then sees the connection end, and
:attr:`Watch.expired` says why.

Only time spent waiting in a read counts: while the caller holds a chunk (between two
reads) the read timeout does not run, as with a socket timeout.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from typing import FrozenSet, Optional, Set

from .sockets import shut_down

_INF = math.inf


class Watch:
    """One stream's socket and its limits. The reading thread sets :attr:`since` to the
    time a read starts (``time.monotonic()``) and to ``None`` when it returns."""

    __slots__ = ("expired", "expires", "read_timeout", "since", "sock")

    def __init__(self, sock: socket.socket, read_timeout: float, expires: Optional[float]) -> None:
        self.sock = sock
        self.read_timeout = read_timeout
        self.expires = _INF if expires is None else expires
        self.since: Optional[float] = None
        #: why the watchdog shut the socket down: ``"read timeout"``, ``"deadline"``, or None
        self.expired: Optional[str] = None

    def due(self, now: float) -> float:
        """When this watch must be looked at again (at or before ``now``: it has expired).

        A watch that is not reading is looked at again a read timeout later (or at its
        deadline), so a read that starts in between is never left unwatched for longer.
        """
        since = self.since
        return min((now if since is None else since) + self.read_timeout, self.expires)


class Watchdog:
    """The set of watched streams and the daemon thread that expires them."""

    def __init__(self, name: str = "qvq-sdk-watchdog") -> None:
        self._name = name
        self._reset()

    def _reset(self) -> None:
        # Also run in a forked child: the parent's thread does not exist there.
        self._cond = threading.Condition(threading.Lock())
        self._watches: Set[Watch] = set()
        self._thread: Optional[threading.Thread] = None
        self._wakes_at = _INF

    def watch(self, sock: socket.socket, read_timeout: float, expires: Optional[float]) -> Watch:
        """Starts watching ``sock``. The caller sets :attr:`Watch.since` around each read."""
        watch = Watch(sock, read_timeout, expires)
        with self._cond:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif watch.due(time.monotonic()) < self._wakes_at:
                self._cond.notify()
        return watch

    def unwatch(self, watch: Optional[Watch]) -> None:
        """Stops watching (before the socket is closed, so that a closed file descriptor,
        which another connection may reuse, is never shut down)."""
        if watch is not None:
            with self._cond:
                self._watches.discard(watch)

    def watched(self) -> FrozenSet[Watch]:
        """The watches now in force."""
        with self._cond:
            return frozenset(self._watches)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                soonest = _INF
                for watch in list(self._watches):
                    due = watch.due(now)
                    if due > now:
                        soonest = min(soonest, due)
                        continue
                    watch.expired = "deadline" if watch.expires <= now else "read timeout"
                    self._watches.discard(watch)
                    shut_down(watch.sock)  # the blocked read returns at once
                self._wakes_at = soonest
                self._cond.wait(None if soonest == _INF else min(soonest - now, threading.TIMEOUT_MAX))


WATCHDOG = Watchdog()

if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=WATCHDOG._reset)
