"""A chat's deadline: its total time limit, counted from the call, and the waits it cuts short."""

from __future__ import annotations

import time
from typing import Optional, Tuple

from .errors import APITimeoutError


class Deadline:
    """A chat's total time limit in seconds, counted from the call; ``None`` is no limit."""

    __slots__ = ("expires", "seconds")

    def __init__(self, seconds: Optional[float]) -> None:
        self.seconds = seconds
        self.expires = None if seconds is None else time.monotonic() + seconds  # on time.monotonic()'s clock

    def remaining(self) -> Optional[float]:
        return None if self.expires is None else self.expires - time.monotonic()

    def expired(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    def error(self) -> APITimeoutError:
        return APITimeoutError(
            f"The chat did not finish within its deadline of {self.seconds:g} s (deadline=); what had "
            "arrived was not returned as an answer. Retry, or raise deadline=."
        )

    def check(self) -> None:
        if self.expired():
            raise self.error()

    def bound(self, timeout: Tuple[float, float]) -> Tuple[float, float]:
        """The (connect, read) timeout, cut short so that no wait outlasts the deadline."""
        remaining = self.remaining()
        if remaining is None:
            return timeout
        if remaining <= 0:
            raise self.error()
        return min(timeout[0], remaining), min(timeout[1], remaining)


NO_DEADLINE = Deadline(None)
