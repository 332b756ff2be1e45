"""The public client: checks a chat, uploads its image, starts the job, streams the answer.

Data flows one way: messages and images → a checked :class:`_Chat` (before anything goes
on the wire) → the Space's config, upload and job (:mod:`qvq_sdk._transport`) → server-sent
events (:mod:`qvq_sdk._sse`) → typed events (:mod:`qvq_sdk._protocol`) → text.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import threading
import time
import types
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Generator, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import requests

from ._auth import resolve_token
from ._chat import ChatStream, Rewrite, Stopped, StopSignal
from ._constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HUB,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_SPACE,
    DEFAULT_WAKE_TIMEOUT,
    LABEL,
    MAX_IMAGES,
    MODEL_ALIASES,
)
from ._deadline import Deadline
from ._events import Done, Event, SpaceLog, TextUpdate, WakingUp
from ._images import Image, describe_url, load_image
from ._messages import Messages, parse_messages
from ._protocol import CallDecoder, QueueDecoder, excerpt
from ._space import QUEUE_PROTOCOLS, SpaceConfig, normalize_base_url, parse_config, space_url
from ._sse import events as sse_events
from ._sse import not_utf8
from ._stream import Stream
from ._transport import CLOSED, NEVER, UNSENT, Transport
from ._waking import STAGE, Lookup, explained, is_down, wait_for_space
from .errors import APIConnectionError, APIStatusError, InputError, QVQError, StreamError

PROTOCOLS = ("queue", "call")
logger = logging.getLogger("qvq_sdk")
T = TypeVar("T")


class _DefaultSpace(str):
    """The default of ``space=``: equal to the default Space id, but its own object, so that
    an explicit ``space=`` (even the same id) is told from no argument at all."""

    __slots__ = ()


_NO_SPACE = _DefaultSpace(DEFAULT_SPACE)

Timeout = Union[float, Tuple[float, float]]
ImageSource = Any  # str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | PIL.Image.Image
Images = Union[None, ImageSource, Sequence[ImageSource]]


@dataclass(frozen=True)
class _Chat:
    """A checked request: the prompt and at most one image, ready to send; and its stop signal."""

    prompt: str
    image: Optional[Image]
    image_input: Optional[str]
    deadline: Deadline
    signal: StopSignal


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_timeout(timeout: Any) -> Tuple[float, float]:
    if _is_number(timeout):
        pair: Tuple[Any, ...] = (timeout, timeout)
    elif isinstance(timeout, tuple) and len(timeout) == 2:
        pair = timeout
    else:
        raise InputError(
            f"timeout must be seconds, or a (connect, read) pair of seconds, not {timeout!r}.", input="timeout"
        )
    if not all(_is_number(value) and 0 < value < float("inf") for value in pair):
        raise InputError(f"timeout values must be positive numbers of seconds, not {timeout!r}.", input="timeout")
    return float(pair[0]), float(pair[1])


def _check_deadline(deadline: Any) -> Optional[float]:
    if deadline is None:
        return None
    if not (_is_number(deadline) and 0 < deadline < float("inf")):
        raise InputError(f"deadline must be a positive number of seconds or None, not {deadline!r}.", input="deadline")
    return float(deadline)


def _check_wake_timeout(wake_timeout: Any) -> Optional[float]:
    if wake_timeout is None:
        return None
    if not (_is_number(wake_timeout) and 0 <= wake_timeout < float("inf")):
        raise InputError(
            f"wake_timeout must be a number of seconds >= 0 (0: do not wait), or None (no limit but the "
            f"deadline), not {wake_timeout!r}.",
            input="wake_timeout",
        )
    return float(wake_timeout)


def _check_max_retries(max_retries: Any) -> int:
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise InputError(f"max_retries must be a whole number >= 0, not {max_retries!r}.", input="max_retries")
    return max_retries


def _check_protocol(protocol: Any) -> str:
    if protocol not in PROTOCOLS:
        raise InputError(f"protocol must be 'queue' or 'call', not {protocol!r}.", input="protocol")
    return str(protocol)


def _image_list(images: Images) -> List[Any]:
    if images is None:
        return []
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]  # one image given on its own


def _fixed(name: str) -> property:
    """A read-only attribute whose assignment says what to do instead."""

    def get(client: QVQClient) -> Any:
        return getattr(client, "_" + name)

    def refuse(client: QVQClient, value: Any) -> None:
        raise AttributeError(
            f"QVQClient.{name} cannot change once the client is made (the token goes to that Space "
            f"only); create a new QVQClient({name}=...) instead."
        )

    return property(get, refuse, doc=f"The client's ``{name}`` (read-only: make a new client for another).")


def _drop_hidden_contexts(error: BaseException) -> None:
    """Forgets the context of every error in the chain raised ``from None``: it was hidden on
    purpose, and it may hold what the server sent (a JSON decoder's ``.doc``, a line of bytes),
    which error trackers walking ``__context__`` would still find."""
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__suppress_context__:
            current.__context__ = None
        current = current.__cause__ or current.__context__


def _log_space_message(event: SpaceLog, redact: Callable[[str], str]) -> None:
    """A Space's gr.Warning / gr.Info / ... for chat() and complete() users, on the qvq_sdk logger."""
    if logger.isEnabledFor(event.log_level):
        title = event.title if event.title and event.title.lower() != event.level else None
        said = redact(event.message if title is None else f"{title}: {event.message}")
        logger.log(event.log_level, "the Space's %s: %s", event.level, said, extra={"qvq_event": event})


class QVQClient:
    """A blocking client of the QVQ-72B-preview Space (or any Space with its API).

    ``token`` is a Hugging Face token (else ``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN``, the
    saved token file; ``False`` sends none). ``space`` is a Space id; ``base_url`` points at
    any Gradio server instead (with ``space`` too: the Space's state is asked about
    ``space``); ``$QVQ_BASE_URL`` applies only when neither is given. ``protocol`` is
    ``"queue"`` (diffs, keeps error messages) or ``"call"``. ``timeout`` is seconds to
    connect and seconds between reads. ``max_retries`` applies to the requests that start a
    chat, never to a stream already under way. ``proxies`` apply to every request;
    ``session`` is a ``requests.Session`` of your own, which the client uses but does not
    close. ``deadline`` is the default limit, in seconds, on a whole chat. ``wake_timeout``
    is how long, in seconds, a chat waits for a sleeping or starting Space (``0``: not at
    all; ``None``: as long as the deadline allows).

    ``timeout``, ``max_retries``, ``deadline``, ``wake_timeout`` and ``protocol`` may be set
    on the client later (checked as in the constructor; they apply to the next request, or
    the next chat); ``base_url`` and ``space`` are fixed.

    Nothing goes on the wire until the first chat. One client may be shared by threads.
    """

    label = LABEL
    default_model = DEFAULT_MODEL
    default_vision_model = DEFAULT_MODEL
    model_aliases: ClassVar[Mapping[str, str]] = types.MappingProxyType(dict(MODEL_ALIASES))
    models: ClassVar[Tuple[str, ...]] = (DEFAULT_MODEL, *MODEL_ALIASES)
    vision_models: ClassVar[Tuple[str, ...]] = models

    base_url = _fixed("base_url")
    space = _fixed("space")

    def __init__(
        self,
        token: Union[str, bool, None] = None,
        *,
        space: str = _NO_SPACE,
        base_url: Optional[str] = None,
        protocol: str = "queue",
        timeout: Timeout = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT),
        max_retries: int = DEFAULT_MAX_RETRIES,
        proxies: Optional[Dict[str, str]] = None,
        session: Optional[requests.Session] = None,
        deadline: Optional[float] = None,
        wake_timeout: Optional[float] = DEFAULT_WAKE_TIMEOUT,
    ) -> None:
        self._protocol = _check_protocol(protocol)
        retries = _check_max_retries(max_retries)
        if proxies is not None and not (
            isinstance(proxies, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in proxies.items())
        ):
            raise InputError("proxies must be a dict like {'https': 'http://proxy:3128'}.", input="proxies")
        if session is not None and not isinstance(session, requests.Session):
            raise InputError(f"session must be a requests.Session, not a {type(session).__name__}.", input="session")
        checked_timeout = _check_timeout(timeout)
        self._deadline = _check_deadline(deadline)
        self._wake_timeout = _check_wake_timeout(wake_timeout)
        explicit_space = space is not _NO_SPACE
        if base_url is None and not explicit_space and os.environ.get("QVQ_BASE_URL"):
            base_url = os.environ["QVQ_BASE_URL"]  # the environment applies only when neither was passed
        space_address = space_url(space)  # checks the id, also when base_url is given
        self._space: Optional[str]
        if base_url is not None:
            self._base_url = normalize_base_url(base_url)
            self._space = str(space) if explicit_space else None
        else:
            self._base_url = space_address
            self._space = str(space)
        self._hub = (os.environ.get("HF_ENDPOINT") or "").strip().rstrip("/") or DEFAULT_HUB
        resolved = resolve_token(token)
        self._redact = (lambda text: text.replace(resolved, "hf_***")) if resolved else (lambda text: text)
        self._transport = Transport(
            origin=self._base_url,
            hub=self._hub,
            token=resolved,
            session=session,
            proxies=proxies,
            timeout=checked_timeout,
            max_retries=retries,
        )
        self._config: Optional[SpaceConfig] = None
        self._config_lock = threading.Lock()

    # -- settings that may change: checked, and read at each request or chat ---------------

    @property
    def timeout(self) -> Tuple[float, float]:
        """Seconds to connect, and seconds between two reads; applies to the next request."""
        return self._transport.timeout

    @timeout.setter
    def timeout(self, value: Timeout) -> None:
        self._transport.timeout = _check_timeout(value)

    @property
    def max_retries(self) -> int:
        """How many times a request that starts a chat is retried; applies to the next request."""
        return self._transport.max_retries

    @max_retries.setter
    def max_retries(self, value: int) -> None:
        self._transport.max_retries = _check_max_retries(value)

    @property
    def deadline(self) -> Optional[float]:
        """The default limit in seconds on a whole chat (``None``: none); applies to the next chat."""
        return self._deadline

    @deadline.setter
    def deadline(self, value: Optional[float]) -> None:
        self._deadline = _check_deadline(value)

    @property
    def wake_timeout(self) -> Optional[float]:
        """How long a chat waits for a sleeping or starting Space; applies to the next wait."""
        return self._wake_timeout

    @wake_timeout.setter
    def wake_timeout(self, value: Optional[float]) -> None:
        self._wake_timeout = _check_wake_timeout(value)

    @property
    def protocol(self) -> str:
        """``"queue"`` or ``"call"``; applies to the next chat."""
        return self._protocol

    @protocol.setter
    def protocol(self, value: str) -> None:
        self._protocol = _check_protocol(value)

    def __repr__(self) -> str:
        return f"QVQClient(base_url={self._base_url!r}, protocol={self._protocol!r})"

    def __enter__(self) -> QVQClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Aborts the chats under way (their connections close at once) and frees the session.
        The client sends nothing more: a chat on it raises :class:`APIConnectionError`."""
        self._transport.close()

    # -- the public calls ----------------------------------------------------------------

    def chat(
        self,
        messages: Messages,
        images: Images = None,
        model: Optional[str] = None,
        *,
        deadline: Optional[float] = None,
    ) -> ChatStream[str]:
        """Streams the answer as ``str`` chunks.

        Everything is checked now, before any request; the returned generator
        (a :class:`ChatStream`) does the work as it is iterated. Each chunk extends the text
        so far, except a :class:`Rewrite` chunk: the Space rewrote its text, and the chunk
        is the whole new text, replacing everything before it. So ``"".join(chunks)`` is
        the answer when no chunk is a ``Rewrite``; in general the answer is the last
        ``Rewrite`` joined with the chunks after it. The Space's warnings and messages go
        to the ``qvq_sdk`` logger. Close the generator, or break out of the loop, to cancel;
        :meth:`ChatStream.stop` stops it from another thread. Either way the connection
        closes and the Space stops.
        """
        chat = self._prepare(messages, images, model, deadline)
        return ChatStream(self._texts(self._stream(chat), self._redact), chat.signal)

    def complete(
        self,
        messages: Messages,
        images: Images = None,
        model: Optional[str] = None,
        *,
        deadline: Optional[float] = None,
    ) -> str:
        """Waits for the whole answer and returns exactly the Space's final output. The
        Space's warnings and messages go to the ``qvq_sdk`` logger."""
        events = self._stream(self._prepare(messages, images, model, deadline))
        try:
            for event in events:
                if isinstance(event, Done):
                    return event.text
                if isinstance(event, SpaceLog):
                    _log_space_message(event, self._redact)
        finally:
            events.close()
        raise StreamError("The Space's stream ended without an answer.")  # the decoder raises first

    def events(
        self,
        messages: Messages,
        images: Images = None,
        model: Optional[str] = None,
        *,
        deadline: Optional[float] = None,
    ) -> ChatStream[Event]:
        """Streams typed events: :class:`WakingUp` while a sleeping Space starts,
        :class:`QueuePosition`, :class:`ProcessingStarted`, :class:`TextUpdate` (``delta``,
        ``text``, ``replaced``), :class:`SpaceLog` and :class:`Progress` from the Space, and
        finally :class:`Done`. A :class:`ChatStream`: :meth:`ChatStream.stop` stops it from
        any thread."""
        chat = self._prepare(messages, images, model, deadline)
        return ChatStream(self._stream(chat), chat.signal)

    # -- checking a chat (no request to the Space) ---------------------------------------

    def _prepare(self, messages: Messages, images: Images, model: Optional[str], deadline: Optional[float]) -> _Chat:
        if self._transport.closed:
            raise APIConnectionError(CLOSED)
        seconds = _check_deadline(deadline)
        limit = Deadline(seconds if seconds is not None else self._deadline)
        if model is not None and model not in self.models:
            raise InputError(f"model must be one of {', '.join(self.models)}, not {model!r}.", input="model")
        prompt, message_images = parse_messages(messages)
        sources: List[Tuple[str, Any]] = [(f"images[{i}]", image) for i, image in enumerate(_image_list(images))]
        sources += [("messages (image part)", image) for image in message_images]
        if len(sources) > MAX_IMAGES:
            raise InputError(
                f"The Space takes one image per request; got {len(sources)} "
                f"({', '.join(where for where, _ in sources)}).",
                input="images",
            )
        if not sources:
            return _Chat(prompt=prompt, image=None, image_input=None, deadline=limit, signal=StopSignal())
        where, source = sources[0]
        fetch = functools.partial(self._download, deadline=limit)
        image = load_image(source, where, fetch)
        return _Chat(prompt=prompt, image=image, image_input=where, deadline=limit, signal=StopSignal())

    def _download(self, url: str, where: str, deadline: Deadline) -> bytes:
        """Fetches an image URL through the client's session, without the token."""
        try:
            return self._transport.content(
                "GET", url, credentials="none", headers={"Accept": "image/*"}, deadline=deadline
            )
        except APIStatusError as exc:
            status = exc.status_code
        except QVQError as error:
            _drop_hidden_contexts(error)
            raise
        raise InputError(f"{where}: the image URL {describe_url(url)} answered HTTP {status}.", input=where)

    # -- talking to the Space ------------------------------------------------------------

    def _space_config(self, deadline: Deadline) -> SpaceConfig:
        config = self._config
        if config is None:
            with self._config_lock:
                if self._config is None:
                    url = f"{self._base_url}/config"
                    self._config = parse_config(self._transport.json("GET", url, deadline=deadline), url)
                config = self._config
        return config

    def _upload(self, config: SpaceConfig, chat: _Chat) -> Dict[str, Any]:
        image = chat.image
        assert image is not None
        if config.max_file_size is not None and len(image.data) > config.max_file_size:
            raise InputError(
                f"{chat.image_input} is {len(image.data)} bytes; this Space accepts files of at most "
                f"{config.max_file_size} bytes. Send a smaller image.",
                input=chat.image_input,
            )
        url = f"{self._base_url}{config.api_prefix}/upload"
        files = [("files", (image.filename, image.data, image.mime_type))]
        paths = self._transport.json("POST", url, files=files, deadline=chat.deadline)
        if not isinstance(paths, list) or len(paths) != 1 or not isinstance(paths[0], str):
            raise StreamError(
                f"The Space's upload answered {excerpt(json.dumps(paths))!r} instead of one file path; "
                "the image was not stored. Retry the request."
            )
        return {"path": paths[0], "orig_name": image.filename, "meta": {"_type": "gradio.FileData"}}

    def _stream(self, chat: _Chat) -> Generator[Event, None, None]:
        """The chat's events; nothing is sent until the first is asked for."""
        signal = chat.signal
        try:
            signal.check()
            config = yield from self._start(chat, functools.partial(self._space_config, chat.deadline))
            image = None
            if chat.image is not None:
                signal.check()
                image = yield from self._start(chat, functools.partial(self._upload, config, chat))
            signal.check()
            if self._protocol == "queue":
                yield from self._queue_job(config, [image, chat.prompt], chat)
            else:
                yield from self._call_job(config, [image, chat.prompt], chat)
        except Stopped:
            return
        except QVQError as error:
            self._transport.redact(error)
            _drop_hidden_contexts(error)
            raise

    def _start(self, chat: _Chat, request: Callable[[], T]) -> Generator[WakingUp, None, T]:
        """``request()`` (one that starts the chat); a sleeping or starting Space is waited for."""
        space = self._space
        if space is None:
            return request()
        return (
            yield from wait_for_space(
                request,
                lookup=functools.partial(self._runtime, space, chat.deadline),
                space=space,
                deadline=chat.deadline,
                wake_timeout=self._wake_timeout,
                signal=chat.signal,
            )
        )

    def _runtime(self, space: str, deadline: Deadline) -> Lookup:
        """What Hugging Face says of the Space: its stage, and whether it knows no such Space.
        A lookup that fails says nothing: it is a courtesy, the Space's own error stands."""
        url = f"{self._hub}/api/spaces/{space}/runtime"
        try:
            body = self._transport.json("GET", url, retry=NEVER, credentials="hub", deadline=deadline)
        except APIStatusError as lookup_error:
            return None, lookup_error.status_code in (401, 404)
        except (QVQError, ValueError, RecursionError):
            return None, False
        stage = body.get("stage") if isinstance(body, dict) else None
        if isinstance(stage, str) and STAGE.fullmatch(stage):
            return stage, False
        return None, False

    def _open_stream(self, url: str, chat: _Chat, **kwargs: Any) -> Stream:
        """Opens the job's event stream; a 404 or 503 there is explained, never waited for
        (the job was started)."""
        try:
            return self._transport.open_stream(url, deadline=chat.deadline, **kwargs)
        except APIStatusError as error:
            if self._space is None or not is_down(error):
                raise
            raise explained(error, self._runtime(self._space, chat.deadline), self._space) from None

    def _queue_job(self, config: SpaceConfig, data: List[Any], chat: _Chat) -> Generator[Event, None, None]:
        if config.queue_protocol is not None and config.queue_protocol not in QUEUE_PROTOCOLS:
            raise StreamError(
                f"This Space runs Gradio {config.version or '(unknown version)'} with the "
                f"{config.queue_protocol!r} queue protocol, which this client does not speak."
            )
        prefix = f"{self._base_url}{config.api_prefix}"
        session_hash = secrets.token_hex(8)
        url = f"{prefix}/queue/join"
        payload = {
            "data": data,
            "fn_index": config.fn_index,
            "session_hash": session_hash,
            "event_data": None,
            "trigger_id": None,
        }
        join = functools.partial(self._transport.json, "POST", url, json=payload, retry=UNSENT, deadline=chat.deadline)
        event_id = self._event_id((yield from self._start(chat, join)), url)
        decoder = QueueDecoder(event_id)
        stream = self._open_stream(f"{prefix}/queue/data", chat, params={"session_hash": session_hash})
        yield from self._read(stream, decoder, chat.signal)

    def _call_job(self, config: SpaceConfig, data: List[Any], chat: _Chat) -> Generator[Event, None, None]:
        url = f"{self._base_url}{config.api_prefix}/call/{config.api_name}"
        call = functools.partial(
            self._transport.json, "POST", url, json={"data": data}, retry=UNSENT, deadline=chat.deadline
        )
        event_id = self._event_id((yield from self._start(chat, call)), url)
        decoder = CallDecoder()
        stream = self._open_stream(f"{url}/{event_id}", chat)
        yield from self._read(stream, decoder, chat.signal)

    @staticmethod
    def _event_id(body: Any, url: str) -> str:
        event_id = body.get("event_id") if isinstance(body, dict) else None
        if not isinstance(event_id, str) or not event_id:
            raise StreamError(f"{url} answered {excerpt(json.dumps(body))!r} without an event_id. Retry the request.")
        return event_id

    def _read(
        self, stream: Stream, decoder: Union[QueueDecoder, CallDecoder], signal: StopSignal
    ) -> Generator[Event, None, None]:
        started = time.perf_counter()
        events = 0
        outcome = "ended early"
        signal.attach(stream)  # from now on a stop() aborts the stream, at once
        try:
            if not stream.content_type.startswith("text/event-stream"):
                raise StreamError(
                    f"The Space answered with {stream.content_type or 'no content type'} instead of an event "
                    f"stream ({stream.excerpt()!r})."
                )
            if isinstance(decoder, QueueDecoder):  # its messages are unnamed: one loop each, no call between
                feed = decoder.feed
                for event in sse_events(stream.chunks()):
                    events += 1
                    yield from feed(event.data)
                    if decoder.done:
                        outcome = "complete"
                        return
                    if signal.stopped:  # stopped while the caller held an event: end at this step
                        outcome = "stopped"
                        return
            else:
                for event in sse_events(stream.chunks()):
                    events += 1
                    yield from decoder.feed(event.event, event.data)
                    if decoder.done:
                        outcome = "complete"
                        return
                    if signal.stopped:
                        outcome = "stopped"
                        return
            decoder.end_of_stream()
        except UnicodeDecodeError as exc:
            if signal.stopped:
                outcome = "stopped"
                return
            outcome = "failed (StreamError)"
            raise not_utf8(exc) from None
        except GeneratorExit:
            outcome = "complete" if decoder.done else "cancelled"
            raise
        except QVQError as error:
            if signal.stopped:  # the stop aborted the read under way: the chat ends quietly
                outcome = "stopped"
                return
            outcome = f"failed ({type(error).__name__})"
            raise
        finally:
            signal.detach()  # before the connection can go back to the pool
            if decoder.done:
                stream.finish()  # the connection goes back to the pool
            else:
                stream.close()
            logger.debug(
                "stream %s %s: %d events, %d bytes in %.3fs",
                stream.url,
                outcome,
                events,
                stream.received,
                time.perf_counter() - started,
            )

    @staticmethod
    def _texts(events: Generator[Event, None, None], redact: Callable[[str], str]) -> Generator[str, None, None]:
        try:
            for event in events:
                if isinstance(event, TextUpdate):
                    if event.replaced:
                        yield Rewrite(event.delta)
                    elif event.delta:
                        yield event.delta
                elif isinstance(event, SpaceLog):
                    _log_space_message(event, redact)
        finally:
            events.close()
