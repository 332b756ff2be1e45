"""Chat messages → the Space's one text prompt, and the images they carry.

Accepted: a ``str`` (one user message), or OpenAI-style dicts ``{"role", "content"}``
with ``role`` in system/user/assistant and ``content`` a ``str`` or a list of parts
``{"type": "text", "text": ...}`` / ``{"type": "image_url", "image_url": {"url": ...}}``.
A single message becomes its text; a conversation becomes ``Role: text`` lines followed
by ``Assistant:``, as the reference provider did.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Sequence, Tuple, Union

from .errors import InputError

ROLES = ("system", "user", "assistant")

Message = Mapping[str, Any]
Messages = Union[str, Sequence[Message]]


def _type_name(value: Any) -> str:
    return type(value).__name__


def _parts(content: List[Any], where: str) -> Tuple[str, List[Any]]:
    texts: List[str] = []
    images: List[Any] = []
    for index, part in enumerate(content):
        here = f"{where}[{index}]"
        if not isinstance(part, Mapping):
            raise InputError(f"{here} must be a dict content part, not a {_type_name(part)}.", input=here)
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise InputError(f'{here} is a text part, so its "text" must be a str.', input=here)
            texts.append(text)
        elif kind == "image_url":
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, Mapping) else image_url
            if not isinstance(url, str) or not url:
                raise InputError(f'{here} is an image part, so it needs "image_url": {{"url": "..."}}.', input=here)
            images.append(url)
        else:
            raise InputError(f'{here} has type {kind!r}; content parts are "text" or "image_url".', input=here)
    return "\n".join(texts), images


def parse_messages(messages: Messages) -> Tuple[str, List[Any]]:
    """Returns the prompt and the image sources found in the messages' image parts."""
    if isinstance(messages, str):
        if not messages.strip():
            raise InputError("messages is an empty string: there is nothing to ask.", input="messages")
        return messages, []
    if isinstance(messages, (Mapping, bytes, bytearray)) or not isinstance(messages, Sequence):
        raise InputError(
            f"messages must be a str or a list of {{'role': ..., 'content': ...}} dicts, not a {_type_name(messages)}.",
            input="messages",
        )
    if not messages:
        raise InputError("messages is empty: there is nothing to ask.", input="messages")
    lines: List[Tuple[str, str]] = []
    images: List[Any] = []
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
        found: List[Any]
        if isinstance(content, str):
            text, found = content, []
        elif isinstance(content, list):
            text, found = _parts(content, f"{where}.content")
        else:
            raise InputError(
                f"{where}.content must be a str or a list of parts, not a {_type_name(content)}.",
                input=f"{where}.content",
            )
        if not text.strip() and not found:
            raise InputError(f"{where} has no text and no image.", input=f"{where}.content")
        lines.append((role, text))
        images.extend(found)
    if len(lines) == 1:
        return lines[0][1], images
    prompt = "\n".join(f"{role.capitalize()}: {text}" for role, text in lines if text.strip())
    return f"{prompt}\nAssistant:", images
