"""HTTP error statuses as :mod:`qvq_sdk.errors` exceptions that say what to do.

The body of an error reply is decoration: a short excerpt of it (a JSON ``detail``,
``error`` or ``error.message``, or the words of an HTML page) goes into the message, read
without reading megabytes of it. A :class:`Server` says how the messages name the server
and what they advise; each protocol has its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List

import requests

from .._constants import BODY_EXCERPT_CHARS, ERROR_BODY_READ_LIMIT
from .._text import excerpt
from ..errors import (
    APIStatusError,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
)
from .retry import parse_retry_after

_BODY_KEYS = ("detail", "error", "message")


@dataclass(frozen=True)
class Server:
    """How the errors of a protocol name its server, and what they advise."""

    name: str  # "the Space"
    bad_token: str  # advice on a 401/403 when a token was sent
    no_token: str  # advice on a 401/403 when none was
    not_found: str  # advice on a 404
    unavailable: str  # why it may answer 503


SPACE = Server(
    name="the Space",
    bad_token="Check that the Hugging Face token is valid and may use this Space.",
    no_token="The Space may be private or gated: pass token= or set HF_TOKEN.",
    not_found="Check the Space id or base_url; the Space may not exist, or may be private (then pass a token).",
    unavailable="asleep and waking up, paused, or overloaded",
)


def _said(value: Any) -> str:
    """What a JSON error value says: a string, an object's ``message``, or the JSON itself."""
    if isinstance(value, dict) and isinstance(value.get("message"), str) and value["message"]:
        return str(value["message"])
    return value if isinstance(value, str) else json.dumps(value)


def body_excerpt(response: requests.Response, streamed: bool) -> str:
    """A short, readable piece of an error body, without reading megabytes of it."""
    try:
        if streamed:
            raw = response.raw.read(ERROR_BODY_READ_LIMIT, decode_content=True) or b""
        else:
            raw = response.content[:ERROR_BODY_READ_LIMIT]
    except Exception:  # the body is decoration; a broken one must not hide the status
        raw = b""
    text = raw.decode("utf-8", errors="replace")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        document = None
    if isinstance(document, dict):
        for key in _BODY_KEYS:
            if document.get(key):
                text = _said(document[key])
                break
    elif "<" in text:
        text = html_words(text)
    return excerpt(text, BODY_EXCERPT_CHARS)


def status_error(
    response: requests.Response, *, authenticated: bool, streamed: bool = False, server: Server = SPACE
) -> APIStatusError:
    """The exception for an HTTP error status, with what to do about it."""
    status = response.status_code
    body = body_excerpt(response, streamed)
    url = response.url.split("?", 1)[0]
    fields: Dict[str, Any] = {
        "status_code": status,
        "body": body,
        "url": url,
        "request_id": response.headers.get("x-request-id"),
    }
    said = f": {body}" if body else ""
    name = server.name[0].upper() + server.name[1:]
    if status in (401, 403):
        advice = server.bad_token if authenticated else server.no_token
        return AuthenticationError(f"{name} refused access (HTTP {status}{said}). {advice}", **fields)
    if status == 404:
        end = "" if said.endswith((".", "!", "?")) else "."  # the server's words may end a sentence
        return NotFoundError(f"Not found (HTTP 404) at {url}{said}{end} {server.not_found}", **fields)
    if status == 429:
        retry_after = parse_retry_after(response.headers)
        when = f"retry in {retry_after:.0f} s" if retry_after is not None else "retry later"
        return RateLimitError(
            f"{name} is rate-limiting requests (HTTP 429{said}); {when}.",
            retry_after=retry_after,
            **fields,
        )
    if status == 410 or status >= 500:
        if "queue is full" in body.lower():
            what = f"{name}'s queue is full"
        elif status == 410:
            what = f"{name} is gone or stopped"
        elif status == 503:
            what = f"{name} is unavailable ({server.unavailable})"
        else:
            what = f"{name} failed"
        return ServiceUnavailableError(f"{what} (HTTP {status}{said}). Retry later.", **fields)
    return APIStatusError(f"{name} rejected the request (HTTP {status}{said}).", **fields)


def html_words(text: str) -> str:
    """The words of an HTML page without its markup, scripts and styles, in linear time.

    (A regular expression here rescans the page from every ``<``: seconds on 64 KB of them.)
    """
    lower = text.lower()
    words: List[str] = []
    i = 0
    while i < len(text):
        start = text.find("<", i)
        if start < 0:
            words.append(text[i:])
            break
        words.append(text[i:start])
        end = text.find(">", start)
        if end < 0:
            break  # an unclosed tag: the rest is markup
        tag = lower[start + 1 : end].split(None, 1)
        i = end + 1
        if tag and tag[0] in ("script", "style"):
            close = lower.find("</" + tag[0], i)
            if close < 0:
                break
            after = text.find(">", close)
            i = len(text) if after < 0 else after + 1
    return " ".join(words)
