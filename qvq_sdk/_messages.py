"""Chat messages, checked: their roles, and their text and image parts in order.

Accepted: a ``str`` (one user message), or OpenAI-style dicts ``{"role", "content"}``
with ``role`` in system/user/assistant and ``content`` a ``str`` or a list of parts
``{"type": "text", "text": ...}`` / ``{"type": "image_url", "image_url": {"url": ...}}``.

:func:`parse_messages` keeps the conversation as it is (what an OpenAI-compatible server
takes); :func:`flatten` makes the Space's one text prompt of it: a single message becomes
its text, a conversation ``Role: text`` lines followed by ``Assistant:``, as the reference
provider did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Sequence, Tuple, Union

from .errors import InputError

ROLES = ("system", "user", "assistant")

Message = Mapping[str, Any]
Messages = Union[str, Sequence[Message]]


def _type_name(value: Any) -> str:
    return type(value).__name__


@dataclass(frozen=True)
class ImagePart:
    """An image where a message has it: its source (loaded or not), and where it was given."""

    source: Any
    where: str = "messages (image part)"


Part = Union[str, ImagePart]


@dataclass(frozen=True)
class ChatMessage:
    """One checked message: its role, and its content as given (a ``str``) or as parts."""

    role: str
    content: Union[str, Tuple[Part, ...]]

    @property
    def text(self) -> str:
        """Its text parts, one per line."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part for part in self.content if isinstance(part, str))

    @property
    def image_parts(self) -> List[ImagePart]:
        """Its image parts, in order."""
        if isinstance(self.content, str):
            return []
        return [part for part in self.content if isinstance(part, ImagePart)]

    @property
    def images(self) -> List[Any]:
        """The sources of its image parts, in order."""
        return [part.source for part in self.image_parts]


def _parts(content: List[Any], where: str) -> Tuple[Part, ...]:
    parts: List[Part] = []
    for index, part in enumerate(content):
        here = f"{where}[{index}]"
        if not isinstance(part, Mapping):
            raise InputError(f"{here} must be a dict content part, not a {_type_name(part)}.", input=here)
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise InputError(f'{here} is a text part, so its "text" must be a str.', input=here)
            parts.append(text)
        elif kind == "image_url":
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, Mapping) else image_url
            if not isinstance(url, str) or not url:
                raise InputError(f'{here} is an image part, so it needs "image_url": {{"url": "..."}}.', input=here)
            parts.append(ImagePart(url))
        else:
            raise InputError(f'{here} has type {kind!r}; content parts are "text" or "image_url".', input=here)
    return tuple(parts)


def parse_messages(messages: Messages) -> List[ChatMessage]:
    """The checked messages; an :class:`InputError` names the first that is not acceptable."""
    if isinstance(messages, str):
        if not messages.strip():
            raise InputError("messages is an empty string: there is nothing to ask.", input="messages")
        return [ChatMessage("user", messages)]
    if isinstance(messages, (Mapping, bytes, bytearray)) or not isinstance(messages, Sequence):
        raise InputError(
            f"messages must be a str or a list of {{'role': ..., 'content': ...}} dicts, not a {_type_name(messages)}.",
            input="messages",
        )
    if not messages:
        raise InputError("messages is empty: there is nothing to ask.", input="messages")
    checked: List[ChatMessage] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, Mapping):
            raise InputError(f"{where} must be a dict, not a {_type_name(message)}.", input=where)
        role = message.get("role")
        if role not in ROLES:
            raise InputError(f"{where} has role {role!r}; the roles are {', '.join(ROLES)}.", input=where)
        if "content" not in message:
            raise InputError(f'{where} has no "content".', input=where)
        content = message["content"]
        if isinstance(content, str):
            checked_message = ChatMessage(role, content)
        elif isinstance(content, list):
            checked_message = ChatMessage(role, _parts(content, f"{where}.content"))
        else:
            raise InputError(
                f"{where}.content must be a str or a list of parts, not a {_type_name(content)}.",
                input=f"{where}.content",
            )
        if not checked_message.text.strip() and not checked_message.images:
            raise InputError(f"{where} has no text and no image.", input=f"{where}.content")
        checked.append(checked_message)
    return checked


def flatten(messages: Sequence[ChatMessage]) -> Tuple[str, List[Any]]:
    """The Space's one prompt, and the image sources of every message in order."""
    images = [source for message in messages for source in message.images]
    if len(messages) == 1:
        return messages[0].text, images
    prompt = "\n".join(f"{m.role.capitalize()}: {m.text}" for m in messages if m.text.strip())
    return f"{prompt}\nAssistant:", images
