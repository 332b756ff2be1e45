"""The typed events :meth:`QVQClient.events` yields, in the order a chat produces them:

``WakingUp``* → ``QueuePosition``* → ``ProcessingStarted``? →
(``ReasoningUpdate`` | ``TextUpdate`` | ``SpaceLog`` | ``Progress``)* → ``Done``

``WakingUp`` comes from the client itself, while it waits for a sleeping or starting Space.
Only the queue protocol reports queue position, start, the Space's log messages and its
progress; only the OpenAI-compatible protocol reports reasoning apart from the answer
(:class:`ReasoningUpdate`) and ``Usage``; every protocol reports text and completion.
"""

from __future__ import annotations

import logging
from dataclasses import FrozenInstanceError, dataclass
from typing import Any, List, Optional, Tuple, Union

__all__ = [
    "Done",
    "Event",
    "ProcessingStarted",
    "Progress",
    "QueuePosition",
    "ReasoningUpdate",
    "SpaceLog",
    "TextUpdate",
    "Usage",
    "WakingUp",
]


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


class _Update:
    """What text and reasoning updates share: a ``delta``, the text so far (joined from the
    chat's :class:`TextBuffer` only when asked for), and immutability."""

    __slots__ = ("_buffer", "_count", "delta")
    delta: str
    _buffer: TextBuffer
    _count: int

    @property
    def text(self) -> str:
        """The whole text so far: of the answer (``TextUpdate``), of the reasoning (``ReasoningUpdate``)."""
        return self._buffer.text(self._count)

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}: a {type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}: a {type(self).__name__} is immutable")


class TextUpdate(_Update):
    """New text from the Space. Immutable, like the other events.

    Attributes:
        delta: What to add to the text received so far; when ``replaced``, the whole new
            text, which replaces everything before it.
        replaced: True when the Space rewrote text it had already sent.
    """

    __slots__ = ("replaced",)
    replaced: bool

    def __init__(self, delta: str, *, replaced: bool = False, buffer: Optional[TextBuffer] = None) -> None:
        if buffer is None:
            buffer = TextBuffer(delta)
        set_slot = object.__setattr__
        set_slot(self, "delta", delta)
        set_slot(self, "replaced", replaced)
        set_slot(self, "_buffer", buffer)
        set_slot(self, "_count", buffer.count)

    def __reduce__(self) -> Tuple[Any, Tuple[str, bool, str]]:  # copy and pickle keep the text
        return _restore_text_update, (self.delta, self.replaced, self.text)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TextUpdate):
            return NotImplemented
        return (self.delta, self.replaced, self.text) == (other.delta, other.replaced, other.text)

    def __hash__(self) -> int:
        return hash((self.delta, self.replaced))

    def __repr__(self) -> str:
        return f"TextUpdate(delta={self.delta!r}, replaced={self.replaced!r})"


def _restore_text_update(delta: str, replaced: bool, text: str) -> TextUpdate:
    return TextUpdate(delta, replaced=replaced, buffer=TextBuffer(text))


class _NewTextUpdate(TextUpdate):
    """Makes a TextUpdate the fast way, for the decoders (once per update of an answer):
    plain slot stores, then the instance becomes a (frozen) TextUpdate."""

    __slots__ = ()
    __setattr__ = object.__setattr__  # type: ignore[assignment]

    def __init__(self, delta: str, replaced: bool, buffer: TextBuffer) -> None:
        self.delta = delta
        self.replaced = replaced
        self._buffer = buffer
        self._count = len(buffer._pieces)
        self.__class__ = TextUpdate  # type: ignore[assignment]


def new_text_update(delta: str, replaced: bool, buffer: TextBuffer) -> TextUpdate:
    """``TextUpdate(delta, replaced=replaced, buffer=buffer)``, in half the time."""
    return _NewTextUpdate(delta, replaced, buffer)


class ReasoningUpdate(_Update):
    """New reasoning from the model, apart from the answer (the OpenAI-compatible protocol
    only: ``delta.reasoning_content`` or ``delta.reasoning``). Immutable, like the other events.

    Attributes:
        delta: What to add to the reasoning received so far.
    """

    __slots__ = ()

    def __init__(self, delta: str, *, buffer: Optional[TextBuffer] = None) -> None:
        if buffer is None:
            buffer = TextBuffer(delta)
        set_slot = object.__setattr__
        set_slot(self, "delta", delta)
        set_slot(self, "_buffer", buffer)
        set_slot(self, "_count", buffer.count)

    def __reduce__(self) -> Tuple[Any, Tuple[str, str]]:  # copy and pickle keep the text
        return _restore_reasoning_update, (self.delta, self.text)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReasoningUpdate):
            return NotImplemented
        return (self.delta, self.text) == (other.delta, other.text)

    def __hash__(self) -> int:
        return hash(self.delta)

    def __repr__(self) -> str:
        return f"ReasoningUpdate(delta={self.delta!r})"


def _restore_reasoning_update(delta: str, text: str) -> ReasoningUpdate:
    return ReasoningUpdate(delta, buffer=TextBuffer(text))


@dataclass(frozen=True)
class Usage:
    """What the answer cost, as the server counted it (the OpenAI-compatible protocol).

    Attributes:
        prompt_tokens: Tokens of the request, or None.
        completion_tokens: Tokens generated (reasoning included), or None.
        total_tokens: Both, or None.
        reasoning_tokens: Tokens of reasoning, when the server says, or None.
    """

    prompt_tokens: Optional[int]
    completion_tokens: Optional[int]
    total_tokens: Optional[int]
    reasoning_tokens: Optional[int] = None


@dataclass(frozen=True)
class Done:
    """The answer is complete.

    Attributes:
        text: The answer: the Space's final output, exactly, or the model's answer apart
            from its reasoning.
        reasoning: The model's reasoning, when the server sent it apart (else ``""``).
        finish_reason: Why the model stopped, as the server said (``"stop"``, or
            ``"length"``: cut at ``max_tokens``); None from a Space.
        usage: The tokens counted (:class:`Usage`), or None when the server sent none.
    """

    text: str
    reasoning: str = ""
    finish_reason: Optional[str] = None
    usage: Optional[Usage] = None


_LOG_LEVELS = {"warning": logging.WARNING, "info": logging.INFO, "success": logging.INFO, "error": logging.ERROR}


@dataclass(frozen=True)
class SpaceLog:
    """A message the Space's app showed its users: ``gr.Warning``, ``gr.Info``,
    ``gr.Success`` (Gradio 5.10+) or an error-level log (Gradio 6).

    The answer goes on after it: a warning is not a failure. The queue protocol only.

    Attributes:
        level: ``"warning"``, ``"info"``, ``"success"`` or ``"error"``, as the Space said it
            (lower case; a newer Gradio may send other levels).
        message: The text of the message.
        title: The title the Space gave it (Gradio's default is the level, capitalised), or None.
    """

    level: str
    message: str
    title: Optional[str]

    @property
    def log_level(self) -> int:
        """The :mod:`logging` level it maps to: warning is ``WARNING``, info and success are
        ``INFO``, error is ``ERROR``; any other level is ``INFO``."""
        return _LOG_LEVELS.get(self.level, logging.INFO)


@dataclass(frozen=True)
class Progress:
    """A progress report from the Space's app (``gr.Progress``). The queue protocol only.

    Gradio sends a list of reports, one per nested progress bar; this event is the first
    (outermost) one. Either ``progress`` is set, or ``index`` and ``length`` are
    (tqdm-style steps), or only ``index`` (steps of unknown count).

    Attributes:
        progress: The fraction done, from 0 to 1, or None.
        index: The steps done, or None.
        length: The steps in all, or None.
        unit: What a step is (``"steps"``, ``"it"``, ...), or None.
        desc: What the Space is doing (``"Thinking"``), or None.
    """

    progress: Optional[float]
    index: Optional[int]
    length: Optional[int]
    unit: Optional[str]
    desc: Optional[str]

    @property
    def fraction(self) -> Optional[float]:
        """The fraction done, from ``progress`` or else ``index / length``; None when unknown."""
        if self.progress is not None:
            return self.progress
        if self.index is not None and self.length:
            return self.index / self.length
        return None


@dataclass(frozen=True)
class WakingUp:
    """The Space is asleep or starting, and the client is waiting for it to run.

    Yielded by the client (not sent by the Space) each time it looks at the Space's state
    on Hugging Face while it waits, before anything else of the chat.

    Attributes:
        stage: The Space's runtime stage on Hugging Face: ``"SLEEPING"``, ``"BUILDING"``,
            ``"APP_STARTING"``, ...
        waited: The seconds waited so far.
    """

    stage: str
    waited: float


Event = Union[WakingUp, QueuePosition, ProcessingStarted, ReasoningUpdate, TextUpdate, SpaceLog, Progress, Done]
