"""A checked chat request: messages, images and options in, what to send out; nothing goes on
the wire here but the download of an image given by URL.

:func:`prepare` checks everything a chat is given against the rules of the protocol that
will send it (:class:`Rules`: how many images, which models, whether generation options
apply) and returns a :class:`ChatRequest`: the messages with every image loaded and
checked, ``images=`` placed in the last user message, the model to send, the generation
options, the chat's deadline and its cancellation token.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from ._cancel import CancelToken
from ._deadline import Deadline
from ._images import Image, load_image
from ._messages import ChatMessage, ImagePart, Messages, parse_messages
from .errors import InputError

Fetch = Callable[[str, str], bytes]  # (url, where) -> the image's bytes


@dataclass(frozen=True)
class Rules:
    """What a protocol accepts."""

    #: The most images one request may carry, or None for no limit of the client's.
    max_images: Optional[int]
    #: ``model`` argument (None: the default) → the model to send; raises InputError.
    model: Callable[[Optional[str]], str]
    #: Whether ``max_tokens``, ``temperature`` and ``extra_body`` apply.
    generation_options: bool
    #: How errors name the protocol's option, e.g. 'protocol="openai"'.
    name: str


@dataclass(frozen=True)
class Generation:
    """The per-call generation options (None: the server's default)."""

    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    extra_body: Optional[Mapping[str, Any]] = None

    def __bool__(self) -> bool:
        return self.max_tokens is not None or self.temperature is not None or self.extra_body is not None


@dataclass(frozen=True)
class ChatRequest:
    """A checked chat, ready to send."""

    messages: Tuple[ChatMessage, ...]  # every ImagePart's source an Image
    model: str
    generation: Generation
    deadline: Deadline
    cancel: CancelToken

    @property
    def image_parts(self) -> List[ImagePart]:
        """Every image of the chat (each part's source an :class:`Image`), in order."""
        return [part for message in self.messages for part in message.image_parts]


def check_generation(max_tokens: Any, temperature: Any, extra_body: Any) -> Generation:
    """The generation options, checked."""
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise InputError(f"max_tokens must be a whole number >= 1 or None, not {max_tokens!r}.", input="max_tokens")
    if temperature is not None and not (
        isinstance(temperature, (int, float))
        and not isinstance(temperature, bool)
        and math.isfinite(temperature)
        and temperature >= 0
    ):
        raise InputError(f"temperature must be a number >= 0 or None, not {temperature!r}.", input="temperature")
    if extra_body is not None:
        if not isinstance(extra_body, Mapping) or not all(isinstance(key, str) for key in extra_body):
            raise InputError(
                "extra_body must be a dict with str keys, merged into the request body.", input="extra_body"
            )
        owned = sorted(set(extra_body) & {"messages", "stream"})
        if owned:
            raise InputError(
                f"extra_body cannot set {', '.join(owned)}: qvq-sdk sends the messages it was given, as a "
                "stream. Pass them as messages= (and model= for the model).",
                input="extra_body",
            )
        if "stream_options" in extra_body and not isinstance(extra_body["stream_options"], Mapping):
            raise InputError("extra_body's stream_options must be a dict.", input="extra_body")
        try:
            json.dumps(extra_body, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputError(f"extra_body must be JSON: {exc}.", input="extra_body") from None
        extra_body = dict(extra_body)
    return Generation(max_tokens, None if temperature is None else float(temperature), extra_body)


def _image_list(images: Any) -> List[Any]:
    if images is None:
        return []
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]  # one image given on its own


def _with_images(messages: List[ChatMessage], images: Sequence[Image]) -> List[ChatMessage]:
    """``images`` (of ``images=``) appended to the last user message (a new one if there is none)."""
    if not images:
        return messages
    parts = tuple(ImagePart(image, f"images[{i}]") for i, image in enumerate(images))
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.role == "user":
            content = (message.content,) if isinstance(message.content, str) else message.content
            messages[index] = ChatMessage("user", content + parts)
            return messages
    return [*messages, ChatMessage("user", parts)]


def prepare(
    rules: Rules,
    messages: Messages,
    images: Any,
    model: Optional[str],
    generation: Generation,
    deadline: Deadline,
    cancel: CancelToken,
    fetch: Fetch,
) -> ChatRequest:
    """The checked request; an :class:`InputError` for the first thing that is not acceptable."""
    model_to_send = rules.model(model)
    if generation and not rules.generation_options:
        given = [name for name in ("max_tokens", "temperature", "extra_body") if getattr(generation, name) is not None]
        raise InputError(
            f"{', '.join(given)}: {rules.name} takes no generation options (the Space sets its own); they "
            'apply with protocol="openai".',
            input=given[0],
        )
    parsed = parse_messages(messages)
    given_images = _image_list(images)
    sources: List[Tuple[str, Any]] = [(f"images[{i}]", image) for i, image in enumerate(given_images)]
    sources += [("messages (image part)", source) for message in parsed for source in message.images]
    if rules.max_images is not None and len(sources) > rules.max_images:
        raise InputError(
            f"The Space takes one image per request; got {len(sources)} "
            f"({', '.join(where for where, _ in sources)}). Several images go to an OpenAI-compatible "
            'server (protocol="openai").',
            input="images",
        )
    extra = [load_image(source, f"images[{i}]", fetch) for i, source in enumerate(given_images)]
    checked: List[ChatMessage] = []
    for message in parsed:
        if isinstance(message.content, str):
            checked.append(message)
            continue
        content = tuple(
            ImagePart(load_image(part.source, part.where, fetch), part.where) if isinstance(part, ImagePart) else part
            for part in message.content
        )
        checked.append(ChatMessage(message.role, content))
    return ChatRequest(
        messages=tuple(_with_images(checked, extra)),
        model=model_to_send,
        generation=generation,
        deadline=deadline,
        cancel=cancel,
    )
