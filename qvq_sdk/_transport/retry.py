"""When a request is sent again, and how long to wait first: the policy in one place.

Three kinds of request:

- :data:`PREPARE`: what prepares a chat and starts nothing (``/config``, the image upload,
  an image URL): sent again after any connection failure (also one that broke or timed out
  after it was sent) and after HTTP 429, 502, 503 or 504.
- :data:`JOB_START`: what starts the job (Gradio's join or call, the OpenAI-compatible
  POST): sent again only when it cannot have reached the server: a failure while connecting,
  or a refusal that queued nothing (429, 503). After a gateway's 502 or 504, or a connection
  that broke once the request was sent, the job may be running, and a second one is never
  started.
- :data:`ONCE`: never sent again: the Hub's runtime lookup (a courtesy) and an event stream
  (once text has arrived, a second request could duplicate or lose it).

An untrusted certificate is never retried. Waits: 0.5 s doubling to 8 s with jitter, or the
server's ``Retry-After`` when it asks for at most a minute (beyond that, waiting silently
would look like a hang, so the error goes to the caller instead).
"""

from __future__ import annotations

import email.utils
import random
import time
from typing import Mapping, Optional

from .._constants import INITIAL_RETRY_DELAY, MAX_RETRY_AFTER, MAX_RETRY_DELAY, REFUSED_STATUS, RETRYABLE_STATUS

PREPARE = "prepare"
JOB_START = "job start"
ONCE = "once"

_MAX_DOUBLINGS = 32  # 2.0 ** attempt overflows a float from attempt 1024


def parse_retry_after(headers: Mapping[str, str]) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no advice


def backoff(attempt: int, retry_after: Optional[float]) -> Optional[float]:
    """Seconds to wait before retry number ``attempt`` (0-based), or None: don't retry."""
    if retry_after is not None:
        return retry_after if retry_after <= MAX_RETRY_AFTER else None
    delay = min(MAX_RETRY_DELAY, INITIAL_RETRY_DELAY * 2.0 ** min(attempt, _MAX_DOUBLINGS))
    return delay * (1.0 - 0.25 * random.random())


def after_status(kind: str, status_code: int, retry_after: Optional[float], attempt: int) -> Optional[float]:
    """Seconds to wait before sending a request of ``kind`` again after ``status_code``, or None."""
    if kind == ONCE:
        return None
    if status_code not in (REFUSED_STATUS if kind == JOB_START else RETRYABLE_STATUS):
        return None
    return backoff(attempt, retry_after)


def after_failure(kind: str, *, unsent: bool, untrusted: bool, attempt: int) -> Optional[float]:
    """Seconds to wait before sending a request of ``kind`` again after a connection failure
    (``unsent``: nothing of it reached the server; ``untrusted``: the certificate was not
    trusted), or None."""
    if kind == ONCE or untrusted or (kind == JOB_START and not unsent):
        return None
    return backoff(attempt, None)
