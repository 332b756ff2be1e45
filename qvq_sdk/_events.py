"""The typed events :meth:`QVQClient.events` yields, in the order a chat produces them:

``QueuePosition``* → ``ProcessingStarted``? → ``TextUpdate``* → ``Done``

Only the queue protocol reports queue position and start; both protocols report text
and completion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Union

__all__ = ["Done", "Event", "ProcessingStarted", "QueuePosition", "TextUpdate"]


@dataclass(frozen=True)
class QueuePosition:
    """Where the request waits in the Space's queue.

    Attributes:
        rank: How many requests are ahead (0 is next), or None.
        queue_size: How many requests the queue holds, or None.
        eta: Seconds until processing should start, as the Space estimates, or None.
    """

    rank: Optional[int]
    queue_size: Optional[int]
    eta: Optional[float]


@dataclass(frozen=True)
class ProcessingStarted:
    """The Space started generating the answer.

    Attributes:
        eta: Seconds the Space expects the answer to take, or None.
    """

    eta: Optional[float]


class TextBuffer:
    """The answer so far, as a list of pieces, so that appending is O(1).

    A :class:`TextUpdate` remembers how many pieces existed when it was made and joins
    them only if someone asks for its ``text``: a long, fine-grained answer costs no
    more than its bytes unless every intermediate text is wanted.
    """

    __slots__ = ("_joined", "_joined_count", "_pieces")

    def __init__(self, text: str = "") -> None:
        self._pieces: List[str] = [text] if text else []
        self._joined = text
        self._joined_count = len(self._pieces)

    def append(self, piece: str) -> None:
        self._pieces.append(piece)

    @property
    def count(self) -> int:
        return len(self._pieces)

    def text(self, count: Optional[int] = None) -> str:
        if count is None:
            count = len(self._pieces)
        if count == self._joined_count:
            return self._joined
        if count > self._joined_count:
            joined = self._joined + "".join(self._pieces[self._joined_count : count])
            self._joined, self._joined_count = joined, count
            return joined
        return "".join(self._pieces[:count])


class TextUpdate:
    """New text from the Space.

    Attributes:
        delta: What to add to the text received so far; when ``replaced``, the whole new
            text, which replaces everything before it.
        replaced: True when the Space rewrote text it had already sent.
    """

    __slots__ = ("_buffer", "_count", "delta", "replaced")
    delta: str
    replaced: bool

    def __init__(self, delta: str, *, replaced: bool = False, buffer: Optional[TextBuffer] = None) -> None:
        self.delta = delta
        self.replaced = replaced
        if buffer is None:
            buffer = TextBuffer(delta)
        self._buffer = buffer
        self._count = buffer.count

    @property
    def text(self) -> str:
        """The whole answer so far (joined only when asked for)."""
        return self._buffer.text(self._count)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TextUpdate):
            return NotImplemented
        return (self.delta, self.replaced, self.text) == (other.delta, other.replaced, other.text)

    def __hash__(self) -> int:
        return hash((self.delta, self.replaced))

    def __repr__(self) -> str:
        return f"TextUpdate(delta={self.delta!r}, replaced={self.replaced!r})"


@dataclass(frozen=True)
class Done:
    """The answer is complete.

    Attributes:
        text: The Space's final output, exactly.
    """

    text: str


Event = Union[QueuePosition, ProcessingStarted, TextUpdate, Done]
