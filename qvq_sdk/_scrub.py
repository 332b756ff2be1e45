"""What an error holds when it reaches the caller: nothing an error tracker could find the
token in.

:func:`scrub` walks the error's chain (``__cause__``, ``__context__``) and, for each error:
forgets a context that was hidden on purpose (raised ``from None``: it may hold what the
server sent, like a JSON decoder's ``.doc``); and clears the local variables of the frames
its traceback passed through that have finished (the transport's, requests' and urllib3's,
whose ``headers`` carry the token; error trackers record frame locals by default). The
frames still running (the caller's) are left alone, and so are the frames of generators
other than those of qvq-sdk and the libraries it reads through (:data:`_READERS`): clearing
a suspended generator's frame would end the generator, and the chain may reach an error the
caller was handling, with the caller's generators in it. The readers' generators in the
chain have finished: the error left them. The text of
errors that quote the server is redacted by the transport
(:meth:`~qvq_sdk._transport.Transport.redact`).
"""

from __future__ import annotations

import inspect
from types import TracebackType
from typing import Optional, Set

_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
#: The modules whose generators read what the server sent for qvq-sdk (their frames hold it).
_READERS = ("qvq_sdk.", "urllib3.", "requests.", "sseclient", "http.client")


def scrub(error: BaseException) -> None:
    """See the module."""
    seen: Set[int] = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        _clear_frames(current.__traceback__)
        if current.__suppress_context__:
            current.__context__ = None
        current = current.__cause__ or current.__context__


def _clear_frames(tb: Optional[TracebackType]) -> None:
    """Clears the finished frames of a traceback (see the module)."""
    while tb is not None:
        frame = tb.tb_frame
        if not frame.f_code.co_flags & _GENERATOR_FLAGS or frame.f_globals.get("__name__", "").startswith(_READERS):
            try:
                frame.clear()
            except RuntimeError:  # still running
                pass
        tb = tb.tb_next
