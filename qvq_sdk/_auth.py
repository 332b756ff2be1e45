"""Which token to send, and to which hosts, resolved in one place.

The argument wins, and goes to the server at ``base_url`` (whatever it is). Without one, a
token is looked for: ``QVQ_API_KEY`` (for an OpenAI-compatible server), then the Hugging
Face token: ``HF_TOKEN``, then ``HUGGING_FACE_HUB_TOKEN``, then the token file
``huggingface-cli login`` saves (``$HF_TOKEN_PATH``, else ``$HF_HOME/token`` with
``HF_HOME`` defaulting to ``~/.cache/huggingface``). A Hugging Face token found that way
goes only to Hugging Face's hosts (:func:`is_hugging_face`): never to another server.
``token=False`` sends none whatever the environment says.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple, Union
from urllib.parse import urlsplit

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


_HF_DOMAINS = (".hf.space", ".huggingface.co", ".endpoints.huggingface.cloud")


def is_hugging_face(url: str) -> bool:
    """Whether ``url`` is on one of Hugging Face's hosts (Spaces, the Hub, the router,
    Inference Endpoints), over HTTPS."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (host == "huggingface.co" or host.endswith(_HF_DOMAINS))


def tokens_for(
    token: Union[str, bool, None], base_url: str, hub: str, openai: bool
) -> Tuple[Optional[str], Optional[str]]:
    """The token for the server at ``base_url`` and the Hugging Face token for the Hub
    (``hub``: Hugging Face's, or the mirror ``HF_ENDPOINT`` names), either None."""
    found = resolve_token(token)
    if token is not None:  # given (or False): it goes where it was given for
        return found, found
    api_key = _checked(os.environ.get("QVQ_API_KEY"), "$QVQ_API_KEY") if openai else None
    if api_key:
        return api_key, found
    return (found if is_hugging_face(base_url) else None), found


def resolve_token(token: Union[str, bool, None]) -> Optional[str]:
    """The token given, else the Hugging Face token found, or None; a malformed token is an
    InputError (never quoted)."""
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
    return _checked(token, source)


def _checked(token: Optional[str], source: str) -> Optional[str]:
    if token is None:
        return None
    token = token.strip()
    if not token:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        raise InputError(
            f"The token from {source} contains whitespace or control characters "
            "(a newline?); it cannot be sent in a header. Check how it was set.",
            input="token",
        )
    return token
