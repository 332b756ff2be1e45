"""The Space's two protocols: how a chat starts a job on a Gradio app, and which decoder
reads its stream.

A chat on a Space: its ``/config`` (fetched once per client, shared by every thread:
:class:`ConfigCache`), the image's upload, the job's start (``queue``: ``POST
{prefix}/queue/join``, then ``GET {prefix}/queue/data``; ``call``: ``POST
{prefix}/call/generate``, then ``GET {prefix}/call/generate/{event_id}``), then the shared
read loop with :class:`~qvq_sdk._gradio_decoders.QueueDecoder` or
:class:`~qvq_sdk._gradio_decoders.CallDecoder`. A Space id's sleeping or starting Space is
waited for (:mod:`qvq_sdk._waking`) before each request that starts the chat.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from typing import Any, Callable, Dict, Generator, List, Optional, Tuple, TypeVar

from ._cancel import CancelToken
from ._constants import DEFAULT_MODEL, MAX_IMAGES, MODEL_ALIASES
from ._deadline import Deadline
from ._events import Event, WakingUp
from ._gradio_decoders import CallDecoder, QueueDecoder
from ._images import Image
from ._messages import ImagePart, flatten
from ._read_loop import read_events
from ._request import ChatRequest, Rules
from ._space import QUEUE_PROTOCOLS, SpaceConfig, parse_config
from ._text import excerpt
from ._transport import HUB, JOB_START, ONCE, SPACE, StreamedBody, Transport
from ._waking import STAGE, Lookup, explained, is_down, wait_for_space
from .errors import APIStatusError, InputError, QVQError, StreamError

T = TypeVar("T")
PROTOCOLS = ("queue", "call")
MODELS = (DEFAULT_MODEL, *MODEL_ALIASES)


def _model(model: Optional[str]) -> str:
    if model is not None and model not in MODELS:
        raise InputError(f"model must be one of {', '.join(MODELS)}, not {model!r}.", input="model")
    return DEFAULT_MODEL


RULES = Rules(max_images=MAX_IMAGES, model=_model, generation_options=False, name="the Space")


class ConfigCache:
    """The Space's ``/config``, fetched once for every thread of a client.

    One thread fetches; the others wait for it, each within its own deadline and
    cancellation, and take its result (or, if it failed, the next of them fetches).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._config: Optional[SpaceConfig] = None
        self._waiters: Optional[List[threading.Event]] = None  # while a fetch is under way

    def get(self, fetch: Callable[[], SpaceConfig], cancel: CancelToken, deadline: Deadline) -> SpaceConfig:
        while True:
            with self._lock:
                if self._config is not None:
                    return self._config
                fetching = self._waiters is None
                if fetching:
                    self._waiters = []
                else:
                    woken = threading.Event()
                    self._waiters.append(woken)  # type: ignore[union-attr]
            if fetching:
                return self._fetch(fetch)
            key = cancel.register(woken.set)
            try:
                if not woken.wait(deadline.remaining()):
                    raise deadline.error()
            finally:
                cancel.unregister(key)
            cancel.check()

    def _fetch(self, fetch: Callable[[], SpaceConfig]) -> SpaceConfig:
        config = None
        try:
            config = fetch()
            return config
        finally:
            with self._lock:
                self._config = config
                waiters, self._waiters = self._waiters or [], None
            for woken in waiters:
                woken.set()


class Space:
    """A Gradio app with the QVQ Space's API (``space`` is its id on Hugging Face, if known)."""

    rules = RULES

    def __init__(self, transport: Transport, base_url: str, space: Optional[str], hub: str) -> None:
        self._transport = transport
        self._base_url = base_url
        self._space = space
        self._hub = hub
        self._config = ConfigCache()

    def events(
        self, request: ChatRequest, protocol: str, wake_timeout: Optional[float]
    ) -> Generator[Event, None, None]:
        """The chat's events; nothing is sent until the first is asked for."""
        cancel = request.cancel
        cancel.check()
        config = yield from self._start(request, wake_timeout, functools.partial(self._get_config, request))
        prompt, _ = flatten(request.messages)
        parts = request.image_parts
        image = None
        if parts:
            cancel.check()
            upload = functools.partial(self._upload, config, parts[0], request)
            image = yield from self._start(request, wake_timeout, upload)
        cancel.check()
        data = [image, prompt]
        start = self._queue_job if protocol == "queue" else self._call_job
        body, decoder = yield from start(config, data, request, wake_timeout)
        yield from read_events(body, decoder, cancel, SPACE.name)

    # -- the requests before the job ---------------------------------------------------

    def _get_config(self, request: ChatRequest) -> SpaceConfig:
        def fetch() -> SpaceConfig:
            url = f"{self._base_url}/config"
            body = self._transport.json("GET", url, cancel=request.cancel, deadline=request.deadline)
            return parse_config(body, url)

        return self._config.get(fetch, request.cancel, request.deadline)

    def _upload(self, config: SpaceConfig, part: ImagePart, request: ChatRequest) -> Dict[str, Any]:
        image: Image = part.source
        if config.max_file_size is not None and len(image.data) > config.max_file_size:
            raise InputError(
                f"{part.where} is {len(image.data)} bytes; this Space accepts files of at most "
                f"{config.max_file_size} bytes. Send a smaller image.",
                input=part.where,
            )
        url = f"{self._base_url}{config.api_prefix}/upload"
        files = [("files", (image.filename, image.data, image.mime_type))]
        paths = self._transport.json("POST", url, files=files, cancel=request.cancel, deadline=request.deadline)
        if not isinstance(paths, list) or len(paths) != 1 or not isinstance(paths[0], str):
            raise StreamError(
                f"The Space's upload answered {excerpt(json.dumps(paths))!r} instead of one file path; "
                "the image was not stored. Retry the request."
            )
        return {"path": paths[0], "orig_name": image.filename, "meta": {"_type": "gradio.FileData"}}

    def _start(
        self, request: ChatRequest, wake_timeout: Optional[float], send: Callable[[], T]
    ) -> Generator[WakingUp, None, T]:
        """``send()`` (a request that starts the chat); a sleeping or starting Space is waited for."""
        space = self._space
        if space is None:
            return send()
        return (
            yield from wait_for_space(
                send,
                lookup=functools.partial(self._runtime, space, request),
                space=space,
                deadline=request.deadline,
                wake_timeout=wake_timeout,
                cancel=request.cancel,
            )
        )

    def _runtime(self, space: str, request: ChatRequest) -> Lookup:
        """What Hugging Face says of the Space: its stage, and whether it knows no such Space.
        A lookup that fails says nothing: it is a courtesy, the Space's own error stands."""
        url = f"{self._hub}/api/spaces/{space}/runtime"
        try:
            body = self._transport.json(
                "GET", url, kind=ONCE, credentials=HUB, cancel=request.cancel, deadline=request.deadline
            )
        except APIStatusError as lookup_error:
            return None, lookup_error.status_code in (401, 404)
        except (QVQError, ValueError, RecursionError):
            return None, False
        stage = body.get("stage") if isinstance(body, dict) else None
        if isinstance(stage, str) and STAGE.fullmatch(stage):
            return stage, False
        return None, False

    # -- the job -------------------------------------------------------------------------

    def _open_stream(self, url: str, request: ChatRequest, **kwargs: Any) -> StreamedBody:
        """Opens the job's event stream; a 404 or 503 there is explained, never waited for
        (the job was started)."""
        try:
            return self._transport.stream("GET", url, cancel=request.cancel, deadline=request.deadline, **kwargs)
        except APIStatusError as error:
            if self._space is None or not is_down(error):
                raise
            raise explained(error, self._runtime(self._space, request), self._space) from None

    def _queue_job(
        self, config: SpaceConfig, data: List[Any], request: ChatRequest, wake_timeout: Optional[float]
    ) -> Generator[WakingUp, None, Tuple[StreamedBody, QueueDecoder]]:
        if config.queue_protocol is not None and config.queue_protocol not in QUEUE_PROTOCOLS:
            raise StreamError(
                f"This Space runs Gradio {config.version or '(unknown version)'} with the "
                f"{config.queue_protocol!r} queue protocol, which this client does not speak."
            )
        prefix = f"{self._base_url}{config.api_prefix}"
        session_hash = os.urandom(8).hex()  # what secrets.token_hex does, without importing hmac and hashlib
        url = f"{prefix}/queue/join"
        payload = {
            "data": data,
            "fn_index": config.fn_index,
            "session_hash": session_hash,
            "event_data": None,
            "trigger_id": None,
        }
        join = functools.partial(
            self._transport.json,
            "POST",
            url,
            json=payload,
            kind=JOB_START,
            cancel=request.cancel,
            deadline=request.deadline,
        )
        event_id = _event_id((yield from self._start(request, wake_timeout, join)), url)
        decoder = QueueDecoder(event_id, redact=self._transport.redact_text)
        body = self._open_stream(f"{prefix}/queue/data", request, params={"session_hash": session_hash})
        return body, decoder

    def _call_job(
        self, config: SpaceConfig, data: List[Any], request: ChatRequest, wake_timeout: Optional[float]
    ) -> Generator[WakingUp, None, Tuple[StreamedBody, CallDecoder]]:
        url = f"{self._base_url}{config.api_prefix}/call/{config.api_name}"
        call = functools.partial(
            self._transport.json,
            "POST",
            url,
            json={"data": data},
            kind=JOB_START,
            cancel=request.cancel,
            deadline=request.deadline,
        )
        event_id = _event_id((yield from self._start(request, wake_timeout, call)), url)
        return self._open_stream(f"{url}/{event_id}", request), CallDecoder()


def _event_id(body: Any, url: str) -> str:
    event_id = body.get("event_id") if isinstance(body, dict) else None
    if not isinstance(event_id, str) or not event_id:
        raise StreamError(f"{url} answered {excerpt(json.dumps(body))!r} without an event_id. Retry the request.")
    return event_id
