"""What an error holds when it reaches the caller: nothing an error tracker could find the
token in.

:func:`scrub` walks the error's chain (``__cause__``, ``__context__``) and, for each error:
forgets a context that was hidden on purpose (raised ``from None``: it may hold what the
server sent, like a JSON decoder's ``.doc``); and clears the local variables of the frames
its traceback passed through that have finished (the transport's, requests' and urllib3's,
whose ``headers`` carry the token; error trackers record frame locals by default). The
frames still running (the caller's) are left alone. The text of errors that quote the
server is redacted by the transport (:meth:`~qvq_sdk._transport.Transport.redact`).
"""

from __future__ import annotations

import traceback
from typing import Optional, Set


def scrub(error: BaseException) -> None:
    """See the module."""
    seen: Set[int] = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)  # a running frame is skipped
        if current.__suppress_context__:
            current.__context__ = None
        current = current.__cause__ or current.__context__
