"""The transport: the only part of qvq-sdk that knows ``requests`` and ``urllib3``.

- :mod:`.transport`: :class:`Transport`, one session, retries, cancellation, the token.
- :mod:`.pools`: the session it makes, its pools, the hooks that let a cancel reach a request.
- :mod:`.retry`: when a request is sent again.
- :mod:`.failures` and :mod:`.statuses`: network failures and HTTP statuses as typed errors.
- :mod:`.streamed_body`, :mod:`.body`, :mod:`.watchdog`, :mod:`.sockets`: reading a
  streamed response, within its read timeout and deadline.
"""

from .pools import check_session
from .retry import JOB_START, ONCE
from .statuses import SPACE, Server
from .streamed_body import StreamedBody
from .transport import CLOSED_MESSAGE, HUB, NONE, Transport

__all__ = [
    "CLOSED_MESSAGE",
    "HUB",
    "JOB_START",
    "NONE",
    "ONCE",
    "SPACE",
    "Server",
    "StreamedBody",
    "Transport",
    "check_session",
]
