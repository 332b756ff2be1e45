"""The ``str`` chunks of :meth:`QVQClient.chat`, made from a chat's events.

Each chunk extends the text so far, except two kinds, both ``str`` subclasses, so that
``isinstance`` tells them apart and every chunk is still a ``str``:

- :class:`Rewrite`: the Space rewrote its text; the chunk is the whole new text.
- :class:`Reasoning`: the model's reasoning, sent apart from the answer by an
  OpenAI-compatible server; it comes before the answer, so ``"".join(chunks)`` is the
  reasoning then the answer, and a caller who wants the answer alone drops these.

The Space's log messages go to the ``qvq_sdk`` logger; an answer cut at ``max_tokens`` is
logged as a warning.
"""

from __future__ import annotations

import logging
from typing import Callable, Generator

from ._events import Done, Event, ReasoningUpdate, SpaceLog, TextUpdate

logger = logging.getLogger("qvq_sdk")


class Rewrite(str):
    """A chunk of :meth:`QVQClient.chat` that replaces the text so far, instead of extending it.

    The Space rewrote text it had already sent (``"Thinking..."`` then ``"Answer: 42"``): this
    chunk is the whole new text. It is a ``str`` like every chunk; ``isinstance(chunk,
    Rewrite)`` tells it apart. ``repr()`` shows it: ``Rewrite('Answer: 42')``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Rewrite({str.__repr__(self)})"


class Reasoning(str):
    """A chunk of :meth:`QVQClient.chat` that is the model's reasoning, not its answer.

    OpenAI-compatible servers (vLLM, DashScope, OpenRouter) send QVQ's reasoning apart from
    the answer; it comes first. It is a ``str`` like every chunk, so ``"".join(chunks)``
    holds reasoning then answer; ``isinstance(chunk, Reasoning)`` tells it apart. ``repr()``
    shows it: ``Reasoning('Let me look...')``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Reasoning({str.__repr__(self)})"


def log_space_message(event: SpaceLog, redact: Callable[[str], str]) -> None:
    """A Space's gr.Warning / gr.Info / ... for chat() and complete() users, on the qvq_sdk logger."""
    if logger.isEnabledFor(event.log_level):
        title = event.title if event.title and event.title.lower() != event.level else None
        said = redact(event.message if title is None else f"{title}: {event.message}")
        logger.log(event.log_level, "the Space's %s: %s", event.level, said, extra={"qvq_event": event})


def log_done(event: Done) -> None:
    """Warns when the answer was cut at ``max_tokens``: it is whole as far as the server goes,
    but not what the model would have said."""
    if event.finish_reason == "length":
        logger.warning(
            "the answer was cut at max_tokens (finish_reason 'length'): %d characters; raise max_tokens for all of it",
            len(event.text),
        )


def text_chunks(events: Generator[Event, None, None], redact: Callable[[str], str]) -> Generator[str, None, None]:
    """The chunks of :meth:`QVQClient.chat`; see the module."""
    try:
        for event in events:
            if type(event) is TextUpdate:
                if event.replaced:
                    yield Rewrite(event.delta)
                elif event.delta:
                    yield event.delta
            elif type(event) is ReasoningUpdate:
                if event.delta:
                    yield Reasoning(event.delta)
            elif type(event) is SpaceLog:
                log_space_message(event, redact)
            elif type(event) is Done:
                log_done(event)
    finally:
        events.close()
