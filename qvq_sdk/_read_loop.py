"""The one read loop every protocol shares: an event stream's body and the protocol's decoder
in, typed events out.

The body's bytes become server-sent events (:mod:`qvq_sdk._sse`), the decoder turns each
into :mod:`qvq_sdk._events`, and the loop ends at the decoder's completion, at the end of
the body (an answer that did not complete is the decoder's error), or when the chat's token
is cancelled: the token aborts the body at once, and the loop raises
:class:`~qvq_sdk._cancel.Cancelled`. A completed answer's connection goes back to the pool;
any other is closed, which tells the server to stop.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Generator, List

from ._cancel import Cancelled, CancelToken
from ._events import Event
from ._sse import events as sse_events
from ._sse import not_utf8
from ._transport import StreamedBody
from .errors import QVQError, StreamError

logger = logging.getLogger("qvq_sdk")

if TYPE_CHECKING:  # typing.Protocol is new in Python 3.8
    from typing import Protocol

    class Decoder(Protocol):
        """What the loop needs of a protocol's decoder (pure: no I/O)."""

        #: True once the answer is complete.
        done: bool

        def feed(self, name: str, data: str) -> List[Event]:
            """The events that one server-sent event (its name and data) means."""

        def end_of_stream(self) -> List[Event]:
            """The stream ended: the last events (the answer's ``Done``), or an error when
            the answer is not complete."""


def read_events(body: StreamedBody, decoder: Decoder, cancel: CancelToken, server: str) -> Generator[Event, None, None]:
    """The events of ``body``, decoded; see the module. ``server`` names it in errors."""
    started = time.perf_counter()
    count = 0
    outcome = "ended early"
    key = cancel.register(body.abort)
    try:
        if not body.content_type.startswith("text/event-stream"):
            raise StreamError(
                f"{server[0].upper()}{server[1:]} answered with {body.content_type or 'no content type'} instead "
                f"of an event stream ({body.excerpt()!r})."
            )
        feed = decoder.feed
        for name, data in sse_events(body.chunks()):  # the hot loop: once per event
            count += 1
            found = feed(name, data)
            if decoder.done:
                cancel.finish(found[-1])  # Done, before it reaches the caller: a stop after it changes nothing
                outcome = "complete"
                yield from found
                return
            yield from found
            if cancel.reason is not None:  # stopped while the caller held an event
                outcome = "stopped"
                raise Cancelled(cancel.reason)
        found = decoder.end_of_stream()
        if decoder.done and found:
            cancel.finish(found[-1])
            outcome = "complete"
        yield from found
    except UnicodeDecodeError as exc:
        cancel.check()
        outcome = "failed (StreamError)"
        raise not_utf8(exc, server) from None
    except GeneratorExit:
        outcome = "complete" if decoder.done else "cancelled"
        raise
    except QVQError as error:
        if cancel.reason is not None:  # the cancel aborted the read under way
            outcome = "stopped"
            raise Cancelled(cancel.reason) from None
        outcome = f"failed ({type(error).__name__})"
        raise
    finally:
        cancel.unregister(key)  # before the connection can go back to the pool
        if decoder.done:
            body.finish()
        else:
            body.close()
        logger.debug(
            "stream %s %s: %d events, %d bytes in %.3fs",
            body.url,
            outcome,
            count,
            body.received,
            time.perf_counter() - started,
        )
