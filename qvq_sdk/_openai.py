"""The OpenAI-compatible protocol: how a chat starts on vLLM, SGLang, llama.cpp's server,
DashScope, OpenRouter or an Inference Endpoint, and which decoder reads its stream.

One request: ``POST {base_url}/chat/completions`` with ``"stream": true`` (and
``stream_options.include_usage``), whose reply is the event stream itself, read by the shared
read loop with :class:`~qvq_sdk._openai_decoder.OpenAIDecoder`. The messages go as they are
(roles kept), every image as an ``image_url`` part holding a ``data:`` URI, in its place.
The POST starts a job: it is sent again only when it cannot have reached the server, or was
refused (429, 503); closing its connection is how the server learns to stop generating.
"""

from __future__ import annotations

from typing import Any, Dict, Generator, List, Optional, Union

from ._constants import OPENAI_DEFAULT_MODEL, OPENAI_MODEL_ALIASES
from ._events import Event
from ._images import Image
from ._messages import ChatMessage, ImagePart
from ._openai_decoder import OpenAIDecoder
from ._read_loop import read_events
from ._request import ChatRequest, Rules
from ._transport import JOB_START, Server, Transport
from .errors import InputError

SERVER = Server(
    name="the server",
    bad_token="Check the API key (token= or QVQ_API_KEY).",
    no_token="The server wants an API key: pass token= or set QVQ_API_KEY.",
    not_found="Check base_url (for most servers it ends in /v1) and the model name (model=).",
    unavailable="overloaded, or still loading the model",
)


def model_to_send(model: Optional[str]) -> str:
    """The model named in the request: as given, the default for None, the seed's aliases
    (``"qvq-72b"``, ``"qwen-qvq-72b-preview"``) mapped to it."""
    if model is None:
        return OPENAI_DEFAULT_MODEL
    if not isinstance(model, str) or not model.strip():
        raise InputError(f"model must be a non-empty str, not {model!r}.", input="model")
    return OPENAI_MODEL_ALIASES.get(model, model)


RULES = Rules(max_images=None, model=model_to_send, generation_options=True, name='protocol="openai"')


def _content(message: ChatMessage) -> Union[str, List[Dict[str, Any]]]:
    if isinstance(message.content, str):
        return message.content
    parts: List[Dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, ImagePart):
            image: Image = part.source
            parts.append({"type": "image_url", "image_url": {"url": image.data_uri()}})
        else:
            parts.append({"type": "text", "text": part})
    return parts


def request_body(request: ChatRequest) -> Dict[str, Any]:
    """The JSON body of the chat's POST."""
    body: Dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": m.role, "content": _content(m)} for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    generation = request.generation
    if generation.max_tokens is not None:
        body["max_tokens"] = generation.max_tokens
    if generation.temperature is not None:
        body["temperature"] = generation.temperature
    if generation.extra_body:
        extra = dict(generation.extra_body)
        body["stream_options"] = {**body["stream_options"], **extra.pop("stream_options", {})}  # merged, not replaced
        body.update(extra)
    return body


class OpenAICompatible:
    """A server of the OpenAI chat-completions API at ``base_url`` (e.g. ``http://host:8000/v1``)."""

    rules = RULES

    def __init__(self, transport: Transport, base_url: str) -> None:
        self._transport = transport
        self._url = f"{base_url}/chat/completions"

    def events(self, request: ChatRequest) -> Generator[Event, None, None]:
        """The chat's events; nothing is sent until the first is asked for."""
        cancel = request.cancel
        cancel.check()
        body = self._transport.stream(
            "POST", self._url, json=request_body(request), kind=JOB_START, cancel=cancel, deadline=request.deadline
        )
        yield from read_events(body, OpenAIDecoder(), cancel, SERVER.name)
