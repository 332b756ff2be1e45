"""Where a Space lives, and what its ``/config`` says about the ``generate`` endpoint."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, List, Optional
from urllib.parse import urlsplit

from ._constants import ENDPOINT_NAME
from .errors import InputError, NotFoundError, StreamError

_SPACE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
QUEUE_PROTOCOLS = ("sse_v2", "sse_v2.1", "sse_v3")


def space_url(space: str) -> str:
    """``Qwen/QVQ-72B-preview`` → ``https://qwen-qvq-72b-preview.hf.space``, as Hugging Face does."""
    if not isinstance(space, str) or not _SPACE_ID.fullmatch(space) or ".." in space or "--" in space:
        raise InputError(
            f"space must be a Space id like 'Qwen/QVQ-72B-preview' (owner/name), not {space!r}.",
            input="space",
        )
    host = re.sub(r"[^a-z0-9]", "-", space.lower())
    return f"https://{host}.hf.space"


def normalize_base_url(base_url: str) -> str:
    """Checks a base URL (``http(s)://host[:port][/path]``) and drops a trailing slash."""
    if not isinstance(base_url, str):
        raise InputError(f"base_url must be a str, not a {type(base_url).__name__}.", input="base_url")
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(
            f"base_url must be an http(s) URL such as 'http://127.0.0.1:7860', not {base_url!r}.",
            input="base_url",
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InputError(
            "base_url must not carry a query, a fragment or credentials (pass token= instead).",
            input="base_url",
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise InputError(f"base_url has an invalid port: {base_url!r}.", input="base_url")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class SpaceConfig:
    """What the client needs from ``GET /config``."""

    api_prefix: str
    fn_index: int
    api_name: str
    queue_protocol: Optional[str]
    max_file_size: Optional[int]
    version: Optional[str]


def _endpoint_names(dependencies: List[Any]) -> List[str]:
    names = []
    for dependency in dependencies:
        name = dependency.get("api_name") if isinstance(dependency, dict) else None
        if isinstance(name, str) and name:
            names.append("/" + name.lstrip("/"))
    return names


def parse_config(config: Any, url: str) -> SpaceConfig:
    """Finds the ``generate`` endpoint in a Gradio ``/config`` document."""
    if not isinstance(config, dict) or not isinstance(config.get("dependencies"), list):
        raise StreamError(f"{url} is not a Gradio app's config (no 'dependencies' list); is base_url right?")
    dependencies = config["dependencies"]
    for index, dependency in enumerate(dependencies):
        if not isinstance(dependency, dict):
            continue
        name = dependency.get("api_name")
        if isinstance(name, str) and name.lstrip("/") == ENDPOINT_NAME:
            fn_index = dependency.get("id", index)
            prefix = config.get("api_prefix") or ""
            max_size = config.get("max_file_size")
            version = config.get("version")
            protocol = config.get("protocol")
            return SpaceConfig(
                api_prefix="/" + prefix.strip("/") if prefix.strip("/") else "",
                fn_index=fn_index if isinstance(fn_index, int) else index,
                api_name=name.lstrip("/"),
                queue_protocol=protocol if isinstance(protocol, str) else None,
                max_file_size=max_size if isinstance(max_size, int) and max_size > 0 else None,
                version=version if isinstance(version, str) else None,
            )
    names = _endpoint_names(dependencies)
    raise NotFoundError(
        f"This Space has no '/{ENDPOINT_NAME}' endpoint (it has: {', '.join(names) or 'none'}); "
        "is it the QVQ Space, or a copy with another API?",
        status_code=404,
        url=url,
    )
