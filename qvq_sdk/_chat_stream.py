"""What :meth:`QVQClient.chat` and :meth:`QVQClient.events` return: a generator that can also
be stopped from another thread.

A :class:`ChatStream` wraps the chat's own generator (one bound-method call per item).
:meth:`ChatStream.stop` cancels the chat's :class:`~qvq_sdk._cancel.CancelToken`, which
aborts whatever the chat is blocked on (a request in flight, the open event stream, a wait)
so that a thread blocked in it returns at once; the chat's generator then ends quietly, and
nothing more is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator, Optional, Type, TypeVar

from ._cancel import STOPPED, CancelToken
from ._events import Done

if TYPE_CHECKING:
    from types import TracebackType

T = TypeVar("T")


def _ended(generator: Generator[Any, None, None]) -> bool:
    """Whether a generator has finished (returned, raised or been closed)."""
    return getattr(generator, "gi_frame", None) is None


class ChatStream(Generator[T, None, None]):
    """A chat under way: a generator (of ``str`` chunks from :meth:`QVQClient.chat`, of
    events from :meth:`QVQClient.events`) that any thread can stop.

    - Iterate it as any generator; ``next()``, ``send()``, ``throw()`` and ``close()`` work
      as on a generator (``send()`` takes only ``None``).
    - :meth:`stop`, from any thread, ends the chat at once: a thread blocked reading it
      returns, its iteration ends (``StopIteration``, as at the end of the answer) and
      :attr:`stopped` is ``True``; the connection closes and the Space stops generating.
      The client's other chats go on. :meth:`close` may also be called from any thread.
    - ``with client.chat(...) as chat:`` closes it at the end of the block.

    Text received before a stop is not an answer: check :attr:`stopped` (or, with
    :meth:`QVQClient.events`, the missing ``Done``) before using it as one. Once the answer
    is complete, :attr:`done` holds its :class:`Done` (with ``finish_reason`` and ``usage``
    from an OpenAI-compatible server), and a stop changes nothing.
    """

    __slots__ = ("_cancel", "_generator", "_next")

    def __init__(self, generator: Generator[T, None, None], cancel: CancelToken) -> None:
        self._generator = generator
        self._next = generator.__next__
        self._cancel = cancel

    def __iter__(self) -> ChatStream[T]:
        return self

    def __next__(self) -> T:
        try:
            return self._next()
        except ValueError:  # "generator already executing": another thread is closing it
            if self._cancel.reason is not None:
                raise StopIteration from None
            raise

    def send(self, value: Any) -> T:
        return self._generator.send(value)

    def throw(
        self,
        typ: Any,
        val: Any = None,
        tb: Optional[TracebackType] = None,
    ) -> T:
        if val is None and tb is None:
            return self._generator.throw(typ)
        return self._generator.throw(typ, val, tb)

    def close(self) -> None:
        """Closes the chat: its connection closes at once and the Space stops generating.
        From any thread: while another thread reads it, this is :meth:`stop`."""
        generator = self._generator
        if _ended(generator):  # nothing to stop
            return
        self._cancel.cancel(STOPPED)  # nothing once the answer is complete
        try:
            generator.close()  # its stream closes, or goes back to the pool if the answer is whole
        except ValueError:  # another thread runs it: the cancel ends it there at once
            pass

    def stop(self) -> None:
        """Stops the chat, from any thread, at once; see the class. Safe to call more than
        once, and after the chat ended."""
        if not _ended(self._generator):
            self._cancel.cancel(STOPPED)

    @property
    def done(self) -> Optional[Done]:
        """The answer's :class:`Done` once it is complete (its ``text``, ``reasoning``,
        ``finish_reason`` and ``usage``), else None."""
        result = self._cancel.result
        return result if isinstance(result, Done) else None

    @property
    def stopped(self) -> bool:
        """True if :meth:`stop` or :meth:`close` ended the chat before its answer was complete."""
        return self._cancel.reason == STOPPED

    def __enter__(self) -> ChatStream[T]:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.stopped:
            state = "stopped"
        elif _ended(self._generator):
            state = "ended"
        else:
            state = "open"
        return f"<ChatStream {state}>"
