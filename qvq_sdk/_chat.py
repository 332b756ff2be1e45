"""What :meth:`QVQClient.chat` and :meth:`QVQClient.events` return: a generator that can also
be stopped from another thread.

A :class:`ChatStream` wraps the chat's own generator (one bound-method call per item).
:meth:`ChatStream.stop` sets the chat's :class:`StopSignal`: the signal aborts the chat's
open event stream (its socket is shut down, so a read blocked in another thread returns at
once) and the chat's generator, seeing the signal, ends quietly at its next step: before
its next request, at its next event, or in the middle of a wait for a sleeping Space.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Generator, Optional, Type, TypeVar

if TYPE_CHECKING:
    from types import TracebackType

    from ._stream import Stream

T = TypeVar("T")


class Rewrite(str):
    """A chunk of :meth:`QVQClient.chat` that replaces the text so far, instead of extending it.

    The Space rewrote text it had already sent (``"Thinking..."`` then ``"Answer: 42"``): this
    chunk is the whole new text. It is a ``str`` like every chunk; ``isinstance(chunk,
    Rewrite)`` tells it apart. ``repr()`` shows it: ``Rewrite('Answer: 42')``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Rewrite({str.__repr__(self)})"


class Stopped(Exception):
    """Raised inside a chat's generator when its chat was stopped; the generator catches it
    and ends. Never reaches the caller."""


class StopSignal:
    """A chat's stop flag, shared by its :class:`ChatStream` and its generator; thread-safe."""

    __slots__ = ("_event", "_lock", "_stream", "stopped")

    def __init__(self) -> None:
        self.stopped = False
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._stream: Optional[Stream] = None

    def stop(self) -> None:
        with self._lock:  # abort under the lock: once detached, the connection may serve another chat
            self.stopped = True
            self._event.set()
            if self._stream is not None:
                self._stream.abort()

    def check(self) -> None:
        """Raises :class:`Stopped` if the chat was stopped (at each step before the stream)."""
        if self.stopped:
            raise Stopped()

    def attach(self, stream: Stream) -> None:
        """The chat's stream is open: a stop() from now on aborts it (at once if already stopped)."""
        with self._lock:
            self._stream = stream
            if self.stopped:
                stream.abort()

    def detach(self) -> None:
        """The stream is done with (before its connection goes back to the pool)."""
        with self._lock:
            self._stream = None

    def wait(self, seconds: float) -> bool:
        """Sleeps ``seconds``, or less if the chat is stopped meanwhile; True if it was."""
        return self._event.wait(seconds)


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
    :meth:`QVQClient.events`, the missing ``Done``) before using it as one.
    """

    __slots__ = ("_generator", "_next", "_signal")

    def __init__(self, generator: Generator[T, None, None], signal: StopSignal) -> None:
        self._generator = generator
        self._next = generator.__next__
        self._signal = signal

    def __iter__(self) -> ChatStream[T]:
        return self

    def __next__(self) -> T:
        try:
            return self._next()
        except ValueError:  # "generator already executing": another thread is closing it
            if self._signal.stopped:
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
        self._signal.stopped = True
        try:
            generator.close()  # its stream closes, or goes back to the pool if the answer is whole
        except ValueError:  # another thread runs it: abort its stream, which ends it there at once
            self._signal.stop()

    def stop(self) -> None:
        """Stops the chat, from any thread, at once; see the class. Safe to call more than
        once, and after the chat ended."""
        if not _ended(self._generator):
            self._signal.stop()

    @property
    def stopped(self) -> bool:
        """True if :meth:`stop` or :meth:`close` ended the chat before its end."""
        return self._signal.stopped

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
        if self._signal.stopped:
            state = "stopped"
        elif _ended(self._generator):
            state = "ended"
        else:
            state = "open"
        return f"<ChatStream {state}>"
