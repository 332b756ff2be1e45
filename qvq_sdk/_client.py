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
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Generator, List, Optional, Sequence, Tuple, Union

import requests

from ._auth import resolve_token
from ._constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HUB,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_SPACE,
    LABEL,
    MAX_IMAGES,
    MODEL_ALIASES,
)
from ._deadline import Deadline
from ._events import Done, Event, TextUpdate
from ._images import Image, describe_url, load_image
from ._messages import Messages, parse_messages
from ._protocol import CallDecoder, QueueDecoder, excerpt
from ._space import QUEUE_PROTOCOLS, SpaceConfig, normalize_base_url, parse_config, space_url, stage_advice
from ._sse import events as sse_events
from ._sse import not_utf8
from ._stream import Stream
from ._transport import NEVER, UNSENT, Transport
from .errors import APIStatusError, InputError, QVQError, StreamError

PROTOCOLS = ("queue", "call")
_STAGE = re.compile(r"[A-Z][A-Z_]{0,39}")  # a runtime stage as Hugging Face names them
logger = logging.getLogger("qvq_sdk")

Timeout = Union[float, Tuple[float, float]]
ImageSource = Any  # str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | PIL.Image.Image
Images = Union[None, ImageSource, Sequence[ImageSource]]


@dataclass(frozen=True)
class _Chat:
    """A checked request: the prompt and at most one image, ready to send."""

    prompt: str
    image: Optional[Image]
    image_input: Optional[str]
    deadline: Deadline


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


def _image_list(images: Images) -> List[Any]:
    if images is None:
        return []
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]  # one image given on its own


class QVQClient:
    """A blocking client of the QVQ-72B-preview Space (or any Space with its API).

    ``token`` is a Hugging Face token (else ``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN``, the
    saved token file; ``False`` sends none). ``space`` is a Space id; ``base_url`` (or
    ``$QVQ_BASE_URL`` when neither is given) points at any Gradio server instead.
    ``protocol`` is ``"queue"`` (diffs, keeps error messages) or ``"call"``. ``timeout`` is
    seconds to connect and seconds between reads. ``max_retries`` applies to the requests
    that start a chat, never to a stream already under way. ``proxies`` apply to every
    request; ``session`` is a ``requests.Session`` of your own, which the client uses
    but does not close. ``deadline`` is the default limit, in seconds, on a whole chat.

    Nothing goes on the wire until the first chat. One client may be shared by threads.
    """

    label = LABEL
    default_model = DEFAULT_MODEL
    default_vision_model = DEFAULT_MODEL
    model_aliases: ClassVar[Dict[str, str]] = dict(MODEL_ALIASES)
    models: ClassVar[List[str]] = [DEFAULT_MODEL, *MODEL_ALIASES]
    vision_models: ClassVar[List[str]] = list(models)

    def __init__(
        self,
        token: Union[str, bool, None] = None,
        *,
        space: str = DEFAULT_SPACE,
        base_url: Optional[str] = None,
        protocol: str = "queue",
        timeout: Timeout = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT),
        max_retries: int = DEFAULT_MAX_RETRIES,
        proxies: Optional[Dict[str, str]] = None,
        session: Optional[requests.Session] = None,
        deadline: Optional[float] = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise InputError(f"protocol must be 'queue' or 'call', not {protocol!r}.", input="protocol")
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise InputError(f"max_retries must be a whole number >= 0, not {max_retries!r}.", input="max_retries")
        if proxies is not None and not (
            isinstance(proxies, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in proxies.items())
        ):
            raise InputError("proxies must be a dict like {'https': 'http://proxy:3128'}.", input="proxies")
        if session is not None and not isinstance(session, requests.Session):
            raise InputError(f"session must be a requests.Session, not a {type(session).__name__}.", input="session")
        self.timeout = _check_timeout(timeout)
        self.deadline = _check_deadline(deadline)
        if base_url is None and space == DEFAULT_SPACE and os.environ.get("QVQ_BASE_URL"):
            base_url = os.environ["QVQ_BASE_URL"]
        if base_url is not None:
            self.base_url = normalize_base_url(base_url)
            self.space: Optional[str] = None
        else:
            self.base_url = space_url(space)
            self.space = space
        self.protocol = protocol
        self.max_retries = max_retries
        self._hub = (os.environ.get("HF_ENDPOINT") or "").strip().rstrip("/") or DEFAULT_HUB
        self._transport = Transport(
            origin=self.base_url,
            hub=self._hub,
            token=resolve_token(token),
            session=session,
            proxies=proxies,
            timeout=self.timeout,
            max_retries=max_retries,
        )
        self._config: Optional[SpaceConfig] = None
        self._config_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"QVQClient(base_url={self.base_url!r}, protocol={self.protocol!r})"

    def __enter__(self) -> QVQClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Aborts the chats under way (their connections close at once) and frees the session."""
        self._closed = True
        self._transport.close()

    # -- the public calls ----------------------------------------------------------------

    def chat(
        self,
        messages: Messages,
        images: Images = None,
        model: Optional[str] = None,
        *,
        deadline: Optional[float] = None,
    ) -> Generator[str, None, None]:
        """Streams the answer as ``str`` chunks; ``"".join(chunks)`` is the answer.

        Everything is checked now, before any request; the returned generator does the
        work as it is iterated. If the Space rewrites text it already sent, the next chunk
        is the whole rewritten text (use :meth:`events` to tell). Close the generator, or
        break out of the loop, to cancel: the connection closes and the Space stops.
        """
        return self._texts(self._stream(self._prepare(messages, images, model, deadline)))

    def complete(
        self,
        messages: Messages,
        images: Images = None,
        model: Optional[str] = None,
        *,
        deadline: Optional[float] = None,
    ) -> str:
        """Waits for the whole answer and returns exactly the Space's final output."""
        events = self._stream(self._prepare(messages, images, model, deadline))
        try:
            for event in events:
                if isinstance(event, Done):
                    return event.text
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
    ) -> Generator[Event, None, None]:
        """Streams typed events: :class:`QueuePosition`, :class:`ProcessingStarted`,
        :class:`TextUpdate` (``delta``, ``text``, ``replaced``) and finally :class:`Done`."""
        return self._stream(self._prepare(messages, images, model, deadline))

    # -- checking a chat (no request to the Space) ---------------------------------------

    def _prepare(self, messages: Messages, images: Images, model: Optional[str], deadline: Optional[float]) -> _Chat:
        if self._closed:
            raise QVQError("This QVQClient is closed; create a new one.")
        seconds = _check_deadline(deadline)
        limit = Deadline(seconds if seconds is not None else self.deadline)
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
            return _Chat(prompt=prompt, image=None, image_input=None, deadline=limit)
        where, source = sources[0]
        fetch = functools.partial(self._download, deadline=limit)
        return _Chat(prompt=prompt, image=load_image(source, where, fetch), image_input=where, deadline=limit)

    def _download(self, url: str, where: str, deadline: Deadline) -> bytes:
        """Fetches an image URL through the client's session, without the token."""
        try:
            return self._transport.content(
                "GET", url, credentials="none", headers={"Accept": "image/*"}, deadline=deadline
            )
        except APIStatusError as exc:
            raise InputError(
                f"{where}: the image URL {describe_url(url)} answered HTTP {exc.status_code}.", input=where
            ) from None

    # -- talking to the Space ------------------------------------------------------------

    def _space_config(self, deadline: Deadline) -> SpaceConfig:
        config = self._config
        if config is None:
            with self._config_lock:
                if self._config is None:
                    url = f"{self.base_url}/config"
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
        url = f"{self.base_url}{config.api_prefix}/upload"
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
        try:
            config = self._space_config(chat.deadline)
            data = [self._upload(config, chat) if chat.image is not None else None, chat.prompt]
            if self.protocol == "queue":
                yield from self._queue_job(config, data, chat.deadline)
            else:
                yield from self._call_job(config, data, chat.deadline)
        except APIStatusError as error:
            if self.space is not None and error.status_code in (404, 503):
                self._explain_outage(error, chat.deadline)
            self._transport.redact(error)
            raise
        except QVQError as error:
            self._transport.redact(error)
            raise

    def _explain_outage(self, error: APIStatusError, deadline: Deadline) -> None:
        """Adds what Hugging Face says of the Space's state to a 404 or 503 error."""
        url = f"{self._hub}/api/spaces/{self.space}/runtime"
        try:
            stage = self._transport.json("GET", url, retry=NEVER, credentials="hub", deadline=deadline).get("stage")
        except APIStatusError as lookup_error:
            if lookup_error.status_code in (401, 404):
                error.args = (f"{error} Hugging Face knows no Space {self.space!r} (or it is private: pass a token).",)
            return
        except (QVQError, ValueError, AttributeError, RecursionError):
            return  # the lookup is a courtesy: the original error stands
        if isinstance(stage, str) and _STAGE.fullmatch(stage):
            error.space_stage = stage
            error.args = (f"{error} {stage_advice(stage)}",)

    def _queue_job(self, config: SpaceConfig, data: List[Any], deadline: Deadline) -> Generator[Event, None, None]:
        if config.queue_protocol is not None and config.queue_protocol not in QUEUE_PROTOCOLS:
            raise StreamError(
                f"This Space runs Gradio {config.version or '(unknown version)'} with the "
                f"{config.queue_protocol!r} queue protocol, which this client does not speak."
            )
        prefix = f"{self.base_url}{config.api_prefix}"
        session_hash = secrets.token_hex(8)
        url = f"{prefix}/queue/join"
        payload = {
            "data": data,
            "fn_index": config.fn_index,
            "session_hash": session_hash,
            "event_data": None,
            "trigger_id": None,
        }
        event_id = self._event_id(self._transport.json("POST", url, json=payload, retry=UNSENT, deadline=deadline), url)
        decoder = QueueDecoder(event_id)
        stream = self._transport.open_stream(
            f"{prefix}/queue/data", deadline=deadline, params={"session_hash": session_hash}
        )
        yield from self._read(stream, decoder)

    def _call_job(self, config: SpaceConfig, data: List[Any], deadline: Deadline) -> Generator[Event, None, None]:
        url = f"{self.base_url}{config.api_prefix}/call/{config.api_name}"
        job = self._transport.json("POST", url, json={"data": data}, retry=UNSENT, deadline=deadline)
        event_id = self._event_id(job, url)
        decoder = CallDecoder()
        stream = self._transport.open_stream(f"{url}/{event_id}", deadline=deadline)
        yield from self._read(stream, decoder)

    @staticmethod
    def _event_id(body: Any, url: str) -> str:
        event_id = body.get("event_id") if isinstance(body, dict) else None
        if not isinstance(event_id, str) or not event_id:
            raise StreamError(f"{url} answered {excerpt(json.dumps(body))!r} without an event_id. Retry the request.")
        return event_id

    def _read(self, stream: Stream, decoder: Union[QueueDecoder, CallDecoder]) -> Generator[Event, None, None]:
        started = time.perf_counter()
        events = 0
        outcome = "ended early"
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
            else:
                for event in sse_events(stream.chunks()):
                    events += 1
                    yield from decoder.feed(event.event, event.data)
                    if decoder.done:
                        outcome = "complete"
                        return
            decoder.end_of_stream()
        except UnicodeDecodeError as exc:
            outcome = "failed (StreamError)"
            raise not_utf8(exc) from None
        except GeneratorExit:
            outcome = "complete" if decoder.done else "cancelled"
            raise
        except QVQError as error:
            outcome = f"failed ({type(error).__name__})"
            raise
        finally:
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
    def _texts(events: Generator[Event, None, None]) -> Generator[str, None, None]:
        try:
            for event in events:
                if isinstance(event, TextUpdate) and (event.delta or event.replaced):
                    yield event.delta
        finally:
            events.close()
