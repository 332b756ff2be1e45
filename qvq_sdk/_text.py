"""Text for messages and logs: short excerpts of what a server sent, and the token hidden."""

from __future__ import annotations

from typing import Optional

_EXCERPT = 120
HIDDEN = "hf_***"


def excerpt(text: str, limit: int = _EXCERPT) -> str:
    """A short, single-line piece of ``text`` for an error message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact(text: str, token: Optional[str]) -> str:
    """``text`` with every occurrence of ``token`` hidden."""
    return text.replace(token, HIDDEN) if token else text
