"""A chat's cancellation token: how ``ChatStream.stop()`` and ``QVQClient.close()`` reach
whatever the chat is doing at that moment.

Every chat has one :class:`CancelToken`. Whatever may block the chat registers an *abort*
with it while it blocks: the transport registers the connection of each request in flight
(its socket is shut down, so a blocked connect, send or read returns at once), the read loop
registers the open response body, and a wait registers the event it sleeps on. Cancelling the
token runs every registered abort, under the token's lock, so an abort never races with its
owner unregistering it (after which a pooled connection may already serve another chat).

Once cancelled, the chat sends nothing more: each step checks the token first
(:meth:`CancelToken.check` raises :class:`Cancelled`). The chat's generator turns
:class:`Cancelled` into its end: quietly after ``stop()``, an :class:`APIConnectionError`
after ``close()``. A token whose chat has finished (its answer is complete) ignores a cancel:
a stop after the answer does not make it "stopped".
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, Optional

#: Why a token was cancelled.
STOPPED = "stopped"  # ChatStream.stop() or close(): the chat ends quietly
CLOSED = "closed"  # QVQClient.close(): the chat raises APIConnectionError

Abort = Callable[[], None]


class Cancelled(Exception):
    """Raised inside a chat once its token is cancelled; the chat's generator catches it.
    ``.reason`` is :data:`STOPPED` or :data:`CLOSED`. Never reaches the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CancelToken:
    """One chat's cancellation; thread-safe. See the module docstring."""

    __slots__ = ("__weakref__", "_aborts", "_event", "_lock", "_next", "finished", "reason", "result")

    def __init__(self) -> None:
        #: :data:`STOPPED` or :data:`CLOSED` once cancelled, else None.
        self.reason: Optional[str] = None
        #: True once the chat's answer is complete: a cancel then changes nothing.
        self.finished = False
        #: What :meth:`finish` was given: the chat's ``Done``.
        self.result: object = None
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._aborts: Dict[int, Abort] = {}
        self._next = 0

    def cancel(self, reason: str) -> None:
        """Cancels the chat (the first reason stays) and runs every registered abort."""
        with self._lock:
            if self.finished:
                return
            if self.reason is None:
                self.reason = reason
            self._event.set()
            for abort in list(self._aborts.values()):
                abort()

    def finish(self, result: object) -> None:
        """The chat's answer is complete (``result``, its ``Done``); later cancels are ignored."""
        with self._lock:
            if self.reason is None:
                self.finished = True
                self.result = result

    def register(self, abort: Abort) -> int:
        """Registers ``abort`` until :meth:`unregister`; runs it at once if already cancelled."""
        with self._lock:
            key = self._next
            self._next += 1
            self._aborts[key] = abort
            if self.reason is not None:
                abort()
            return key

    def unregister(self, key: int) -> None:
        """After this returns, the abort registered as ``key`` is not running and never runs."""
        with self._lock:
            self._aborts.pop(key, None)

    def check(self) -> None:
        """Raises :class:`Cancelled` if the token was cancelled."""
        if self.reason is not None:
            raise Cancelled(self.reason)

    def sleep(self, seconds: float) -> None:
        """Waits ``seconds``, or until cancelled; then :meth:`check`."""
        if seconds > 0:
            self._event.wait(seconds)
        self.check()
