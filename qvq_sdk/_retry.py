"""When to retry a request, and how long to wait first: the policy in one place.

Retried, on the requests that prepare a chat (config, image download, upload): connection
failures and HTTP 429, 502, 503, 504. The request that starts the job (join or call) is
retried only when it cannot have reached the Space: a failure while connecting, or a refusal
(429, 503: nothing was queued); after a 502 or 504 from a gateway, or a connection that broke
once the request was sent, the job may be running, and a second one is never started. Never
the event stream: once text has been yielded, a retry could duplicate or lose it.
"""

from __future__ import annotations

import email.utils
import random
import time
from typing import Mapping, Optional

from ._constants import INITIAL_RETRY_DELAY, MAX_RETRY_AFTER, MAX_RETRY_DELAY, REFUSED_STATUS, RETRYABLE_STATUS


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


def should_retry_status(status_code: int, *, starts_job: bool = False) -> bool:
    """Whether a request that answered ``status_code`` is sent again; a request that starts
    a job only when the status says nothing was queued."""
    return status_code in (REFUSED_STATUS if starts_job else RETRYABLE_STATUS)


def retry_delay(attempt: int, retry_after: Optional[float]) -> Optional[float]:
    """Seconds to wait before retry number ``attempt`` (0-based), or None: don't retry.

    The server's ``Retry-After`` wins when it asks for at most a minute; beyond that,
    waiting silently would look like a hang, so the error goes to the caller instead.
    """
    if retry_after is not None:
        return retry_after if retry_after <= MAX_RETRY_AFTER else None
    delay = min(MAX_RETRY_DELAY, INITIAL_RETRY_DELAY * 2.0**attempt)
    return delay * (1.0 - 0.25 * random.random())
