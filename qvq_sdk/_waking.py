"""A Space's state on Hugging Face, and waiting for a sleeping or starting Space to run.

When a Space answers 404 or 503, the client asks the Hub what the Space is doing
(``GET {hub}/api/spaces/{id}/runtime``, its ``"stage"``). A Space that sleeps or starts
(:data:`WAKING_STAGES`) is waited for: :func:`wait_for_space` polls its stage every
``WAKE_POLL_SECONDS`` and asks the Space again (a request to a sleeping Space is what wakes
it), until the Space answers, for at most the client's ``wake_timeout`` and within the
chat's deadline. A Space that needs its owner (:data:`FAILED_STAGES`) fails at once.

The wait's clock is :data:`CLOCK`; tests replace it with one that records the pauses.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Callable, Generator, Optional, Tuple, TypeVar

from ._cancel import CancelToken
from ._deadline import Deadline
from ._events import WakingUp
from .errors import APIStatusError, APITimeoutError, ServiceUnavailableError

logger = logging.getLogger("qvq_sdk")
T = TypeVar("T")

STAGE = re.compile(r"[A-Z][A-Z_]{0,39}")  # a runtime stage as Hugging Face names them
#: Stages of a Space that will run by itself: the client waits.
WAKING_STAGES = frozenset(
    {"SLEEPING", "STOPPED", "BUILDING", "APP_STARTING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"}
)
#: Stages of a Space that will not run until its owner acts: the chat fails at once.
FAILED_STAGES = frozenset({"PAUSED", "BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE"})
#: The statuses a Space answers while it sleeps or starts (or is paused, broken, gone).
DOWN_STATUSES = (404, 503)
WAKE_POLL_SECONDS = 3.0

_STAGE_ADVICE = {
    "RUNNING": "Hugging Face says the Space is RUNNING, so this should pass; retry shortly.",
    "SLEEPING": "The Space is SLEEPING and waking up; retry in a minute.",
    "STOPPED": "The Space is STOPPED and starting on request; retry in a minute.",
    "BUILDING": "The Space is BUILDING; retry in a few minutes.",
    "APP_STARTING": "The Space is starting (APP_STARTING); retry in a minute.",
    "RUNNING_BUILDING": "The Space is being rebuilt (RUNNING_BUILDING); retry in a few minutes.",
    "RUNNING_APP_STARTING": "The Space is restarting (RUNNING_APP_STARTING); retry in a minute.",
    "PAUSED": (
        "The Space is PAUSED by its owner; it answers nothing until they restart it. "
        "Ask them, or duplicate the Space and use your copy (space= or base_url=)."
    ),
    "RUNTIME_ERROR": "The Space has a runtime error (RUNTIME_ERROR); its owner must fix it, or use a duplicate.",
    "BUILD_ERROR": "The Space failed to build (BUILD_ERROR); its owner must fix it, or use a duplicate.",
    "CONFIG_ERROR": "The Space's configuration is broken (CONFIG_ERROR); its owner must fix it, or use a duplicate.",
    "NO_APP_FILE": "The Space has no app file (NO_APP_FILE); its owner must fix it, or use a duplicate.",
    "DELETING": "The Space is being deleted (DELETING).",
}


def stage_advice(stage: str) -> str:
    """What a Space's runtime stage (from Hugging Face's API) means for the caller."""
    return _STAGE_ADVICE.get(stage, f"Hugging Face reports the Space's stage as {stage}.")


class Clock:
    """The wait's clock: :func:`time.monotonic`, and pauses that a cancel cuts short."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float, cancel: CancelToken) -> None:
        cancel.sleep(seconds)


CLOCK = Clock()

#: What the Hub said: the stage (None if it said nothing usable), and whether it knows no
#: such Space (or it is private and no token was sent).
Lookup = Tuple[Optional[str], bool]


def is_down(error: APIStatusError) -> bool:
    return error.status_code in DOWN_STATUSES


def explained(error: APIStatusError, lookup: Lookup, space: str) -> APIStatusError:
    """The error to raise for ``error`` given what the Hub said: a Space that needs its owner
    becomes a :class:`ServiceUnavailableError` with ``.space_stage``; else ``error`` itself,
    its message saying the stage and what it means."""
    stage, unknown = lookup
    if unknown:
        error.args = (f"{error} Hugging Face knows no Space {space!r} (or it is private: pass a token).",)
        return error
    if stage is None:
        return error
    if stage in FAILED_STAGES:
        failed = ServiceUnavailableError(
            f"The Space {space} does not run: it answered HTTP {error.status_code} and Hugging Face "
            f"reports its stage as {stage}. {stage_advice(stage)}",
            status_code=error.status_code,
            body=error.body,
            url=error.url,
            request_id=error.request_id,
        )
        failed.space_stage = stage
        return failed
    error.space_stage = stage
    error.args = (f"{error} {stage_advice(stage)}",)
    return error


def wait_for_space(
    request: Callable[[], T],
    *,
    lookup: Callable[[], Lookup],
    space: str,
    deadline: Deadline,
    wake_timeout: Optional[float],
    cancel: CancelToken,
) -> Generator[WakingUp, None, T]:
    """``request()``'s result; while the Space sleeps or starts, waits for it (yielding a
    :class:`WakingUp` per look at its stage) and sends the request again.

    Raises what ``request()`` raises, explained (:func:`explained`), when the Space is not
    waking up; :class:`APITimeoutError` naming the stage past ``wake_timeout`` or the
    deadline; :class:`~qvq_sdk._cancel.Cancelled` when the chat is cancelled meanwhile.
    """
    try:
        return request()
    except APIStatusError as error:
        if not is_down(error):
            raise
        failure = error
    clock = CLOCK
    started = clock.monotonic()
    stage: Optional[str] = None  # what the Hub last said, while waiting
    ran_once = False  # it went from waking to RUNNING: its proxy may need a moment more
    while True:
        said = lookup()
        if said == (None, False) and stage is not None:
            said = (stage, False)  # the Hub did not answer this time: go on with what it last said
        now = said[0]
        if now == "RUNNING" and stage in WAKING_STAGES and not ran_once:
            ran_once = True
        elif now not in WAKING_STAGES or wake_timeout == 0:
            raise explained(failure, said, space) from None
        assert now is not None
        if now != stage:
            if now == "RUNNING":
                logger.info("the Space %s is RUNNING now; asking it once more", space)
            else:
                logger.info("the Space %s is waking up (%s); waiting for it", space, now)
        stage = now
        waited = clock.monotonic() - started
        pause = WAKE_POLL_SECONDS
        if wake_timeout is not None:
            if waited >= wake_timeout:
                raise _gave_up(space, stage, waited, f"wake_timeout={wake_timeout:g} s", "wake_timeout=") from None
            pause = min(pause, wake_timeout - waited)
        remaining = deadline.remaining()
        if remaining is not None:
            if remaining <= 0:
                raise _deadline_passed(space, stage, waited, deadline) from None
            pause = min(pause, remaining)
        yield WakingUp(stage, waited)
        logger.debug("the Space %s is %s after %.1f s; asking again in %.1f s", space, stage, waited, pause)
        clock.sleep(pause, cancel)
        cancel.check()
        if deadline.expired():
            raise _deadline_passed(space, stage, clock.monotonic() - started, deadline) from None
        try:
            return request()
        except APIStatusError as error:
            if not is_down(error):
                raise
            failure = error
        except APITimeoutError:
            if deadline.expired():
                raise _deadline_passed(space, stage, clock.monotonic() - started, deadline) from None
            raise


def _gave_up(space: str, stage: str, waited: float, limit: str, option: str) -> APITimeoutError:
    return APITimeoutError(
        f"The Space {space} was still waking up ({stage}) after {waited:.0f} s, the limit of the wait "
        f"({limit}); no answer was started. Retry later, or raise {option}"
    )


def _deadline_passed(space: str, stage: str, waited: float, deadline: Deadline) -> APITimeoutError:
    seconds: Any = deadline.seconds
    return APITimeoutError(
        f"The chat's deadline of {seconds:g} s passed while the Space {space} was waking up ({stage}, "
        f"{waited:.0f} s waited); no answer was started. Retry later, or raise deadline=."
    )
