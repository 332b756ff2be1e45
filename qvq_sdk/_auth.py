"""Which Hugging Face token to send, resolved in one place.

The argument wins; then ``HF_TOKEN``, then ``HUGGING_FACE_HUB_TOKEN``, then the token
file ``huggingface-cli login`` saves (``$HF_TOKEN_PATH``, else ``$HF_HOME/token`` with
``HF_HOME`` defaulting to ``~/.cache/huggingface``); else none, which a public Space
accepts. ``token=False`` sends none whatever the environment says.
"""

from __future__ import annotations

import os
from typing import Optional, Union

from .errors import InputError


def _token_file() -> str:
    path = os.environ.get("HF_TOKEN_PATH")
    if path:
        return os.path.expanduser(path)
    home = os.environ.get("HF_HOME") or os.path.join("~", ".cache", "huggingface")
    return os.path.join(os.path.expanduser(home), "token")


def _read_token_file() -> Optional[str]:
    try:
        with open(_token_file(), encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError):
        return None


def resolve_token(token: Union[str, bool, None]) -> Optional[str]:
    """The token to send, or None; a malformed token is an InputError (never quoted)."""
    if token is False:
        return None
    if token is True:
        raise InputError("token must be a str, None or False, not True.", input="token")
    if token is not None and not isinstance(token, str):
        raise InputError(f"token must be a str, None or False, not a {type(token).__name__}.", input="token")
    source = "the token argument"
    if token is None:
        for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            if os.environ.get(variable, "").strip():
                token, source = os.environ[variable], f"${variable}"
                break
        else:
            token, source = _read_token_file(), f"the token file {_token_file()}"
    if token is None:
        return None
    token = token.strip()
    if not token:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        raise InputError(
            f"The Hugging Face token from {source} contains whitespace or control characters "
            "(a newline?); it cannot be sent in a header. Check how it was set.",
            input="token",
        )
    return token
