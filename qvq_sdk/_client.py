"""The public client: its options, and the three calls that run a chat.

A call checks everything first (:func:`qvq_sdk._request.prepare`: nothing goes on the wire
but an image URL's download), then hands the checked request to the protocol that runs it:
:class:`~qvq_sdk._gradio.Space` (the Space's ``queue`` and ``call`` protocols) or
:class:`~qvq_sdk._openai.OpenAICompatible`. Both send through one
:class:`~qvq_sdk._transport.Transport` and read their stream with the shared read loop; the
client turns the events into what each call returns.
"""

from __future__ import annotations

import functools
import os
import types
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Generator, Mapping, Optional, Sequence, Tuple, Union

from ._auth import tokens_for
from ._cancel import CLOSED, Cancelled, CancelToken
from ._chat_stream import ChatStream
from ._chunks import log_done, log_space_message, text_chunks
from ._constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HUB,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_SPACE,
    DEFAULT_WAKE_TIMEOUT,
    LABEL,
    MODEL_ALIASES,
)
from ._deadline import Deadline
from ._events import Done, Event, SpaceLog
from ._gradio import Space
from ._images import describe_url
from ._messages import Messages
from ._openai import SERVER, OpenAICompatible
from ._options import (
    check_deadline,
    check_max_retries,
    check_protocol,
    check_proxies,
    check_timeout,
    check_wake_timeout,
)
from ._request import ChatRequest, check_generation, prepare
from ._scrub import scrub
from ._space import normalize_base_url, space_url
from ._transport import CLOSED_MESSAGE, NONE, SPACE, Transport, check_session
from .errors import APIConnectionError, APIStatusError, InputError, QVQError, StreamError

if TYPE_CHECKING:
    import requests


class _DefaultSpace(str):
    """The default of ``space=``: equal to the default Space id, but its own object, so that
    an explicit ``space=`` (even the same id) is told from no argument at all."""

    __slots__ = ()


_NO_SPACE = _DefaultSpace(DEFAULT_SPACE)

Timeout = Union[float, Tuple[float, float]]
ImageSource = Any  # str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | PIL.Image.Image
Images = Union[None, ImageSource, Sequence[ImageSource]]


def _fixed(name: str) -> property:
    """A read-only attribute whose assignment says what to do instead."""

    def get(client: QVQClient) -> Any:
        return getattr(client, "_" + name)

    def refuse(client: QVQClient, value: Any) -> None:
        raise AttributeError(
            f"QVQClient.{name} cannot change once the client is made (the token goes to that server "
            f"only); create a new QVQClient({name}=...) instead."
        )

    return property(get, refuse, doc=f"The client's ``{name}`` (read-only: make a new client for another).")


class QVQClient:
    """A blocking client of QVQ: the QVQ-72B-preview Space (or any Space with its API), or an
    OpenAI-compatible server (vLLM, SGLang, llama.cpp, DashScope, OpenRouter, ...).

    ``token``: given, it goes to the server at ``base_url`` (or the Space); else
    ``QVQ_API_KEY`` (``protocol="openai"``), else the Hugging Face token (``HF_TOKEN``,
    ``HUGGING_FACE_HUB_TOKEN``, the saved token file), which goes to Hugging Face's hosts
    only; ``False`` sends none. ``space`` is a Space id; ``base_url`` points at any Gradio
    server instead (with ``space`` too: the Space's state is asked about ``space``), or at
    an OpenAI-compatible server's ``/v1``; ``$QVQ_BASE_URL`` and ``$QVQ_PROTOCOL`` apply
    only when neither is given. ``protocol`` is ``"queue"`` (the Space's default: diffs,
    keeps error messages), ``"call"`` (the Space's other), or ``"openai"``. ``model`` is the
    model to ask for (``protocol="openai"``: sent as is, default
    ``"Qwen/QVQ-72B-Preview"``). ``timeout`` is seconds to connect and seconds between
    reads. ``max_retries`` applies to the requests that start a chat, never to a stream
    already under way. ``proxies`` apply to every request; ``session`` is a
    ``requests.Session`` of your own, which the client uses but does not close.
    ``deadline`` is the default limit, in seconds, on a whole chat. ``wake_timeout`` is how
    long, in seconds, a chat waits for a sleeping or starting Space (``0``: not at all;
    ``None``: as long as the deadline allows).

    ``timeout``, ``max_retries``, ``deadline``, ``wake_timeout`` and ``protocol`` (between
    ``"queue"`` and ``"call"``) may be set on the client later (checked as in the
    constructor; they apply to the next request, or the next chat); ``base_url``, ``space``
    and ``model`` are fixed.

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
    model = _fixed("model")

    def __init__(
        self,
        token: Union[str, bool, None] = None,
        *,
        space: str = _NO_SPACE,
        base_url: Optional[str] = None,
        protocol: Optional[str] = None,
        model: Optional[str] = None,
        timeout: Timeout = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT),
        max_retries: int = DEFAULT_MAX_RETRIES,
        proxies: Optional[Dict[str, str]] = None,
        session: Optional[requests.Session] = None,
        deadline: Optional[float] = None,
        wake_timeout: Optional[float] = DEFAULT_WAKE_TIMEOUT,
    ) -> None:
        explicit_space = space is not _NO_SPACE
        if base_url is None and not explicit_space and os.environ.get("QVQ_BASE_URL"):
            base_url = os.environ["QVQ_BASE_URL"]  # the environment applies only when neither was passed
            if protocol is None and os.environ.get("QVQ_PROTOCOL"):
                protocol = os.environ["QVQ_PROTOCOL"].strip()
        self._protocol = check_protocol("queue" if protocol is None else protocol)
        retries = check_max_retries(max_retries)
        checked_proxies = check_proxies(proxies)
        checked_session = check_session(session)
        checked_timeout = check_timeout(timeout)
        self._deadline = check_deadline(deadline)
        self._wake_timeout = check_wake_timeout(wake_timeout)
        openai = self._protocol == "openai"
        space_address = space_url(space)  # checks the id, also when base_url is given
        self._space: Optional[str]
        if openai:
            if base_url is None or explicit_space:
                raise InputError(
                    'protocol="openai" needs base_url= (the server\'s API root, e.g. "http://127.0.0.1:8000/v1"), '
                    "and takes no space=.",
                    input="base_url",
                )
            self._base_url = normalize_base_url(base_url)
            self._space = None
        elif base_url is not None:
            self._base_url = normalize_base_url(base_url)
            self._space = str(space) if explicit_space else None
        else:
            self._base_url = space_address
            self._space = str(space)
        hub = (os.environ.get("HF_ENDPOINT") or "").strip().rstrip("/") or DEFAULT_HUB
        server_token, hub_token = tokens_for(token, self._base_url, hub, openai)
        self._transport = Transport(
            origin=self._base_url,
            token=server_token,
            auth_headers=("Authorization",) if openai else ("Authorization", "X-HF-Authorization"),
            hub=hub,
            hub_token=hub_token,
            session=checked_session,
            proxies=checked_proxies,
            timeout=checked_timeout,
            max_retries=retries,
            server=SERVER if openai else SPACE,
        )
        self._runner: Union[OpenAICompatible, Space]
        if openai:
            self._runner = OpenAICompatible(self._transport, self._base_url)
        else:
            self._runner = Space(self._transport, self._base_url, self._space, hub)
        self._model = model
        self._runner.rules.model(model)  # checked now

    # -- settings that may change: checked, and read at each request or chat ---------------

    @property
    def timeout(self) -> Tuple[float, float]:
        """Seconds to connect, and seconds between two reads; applies to the next request."""
        return self._transport.timeout

    @timeout.setter
    def timeout(self, value: Timeout) -> None:
        self._transport.timeout = check_timeout(value)

    @property
    def max_retries(self) -> int:
        """How many times a request that starts a chat is retried; applies to the next request."""
        return self._transport.max_retries

    @max_retries.setter
    def max_retries(self, value: int) -> None:
        self._transport.max_retries = check_max_retries(value)

    @property
    def deadline(self) -> Optional[float]:
        """The default limit in seconds on a whole chat (``None``: none); applies to the next chat."""
        return self._deadline

    @deadline.setter
    def deadline(self, value: Optional[float]) -> None:
        self._deadline = check_deadline(value)

    @property
    def wake_timeout(self) -> Optional[float]:
        """How long a chat waits for a sleeping or starting Space; applies to the next wait."""
        return self._wake_timeout

    @wake_timeout.setter
    def wake_timeout(self, value: Optional[float]) -> None:
        self._wake_timeout = check_wake_timeout(value)

    @property
    def protocol(self) -> str:
        """``"queue"``, ``"call"`` or ``"openai"``; a Space's client may switch between
        ``"queue"`` and ``"call"`` (for the next chat)."""
        return self._protocol

    @protocol.setter
    def protocol(self, value: str) -> None:
        protocol = check_protocol(value)
        if (protocol == "openai") != (self._protocol == "openai"):
            raise InputError(
                f"protocol cannot change from {self._protocol!r} to {protocol!r}: they speak to different "
                "servers; create a new QVQClient(protocol=..., base_url=...) instead.",
                input="protocol",
            )
        self._protocol = protocol

    def __repr__(self) -> str:
        return f"QVQClient(base_url={self._base_url!r}, protocol={self._protocol!r})"

    def __enter__(self) -> QVQClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Ends the chats under way (each raises :class:`APIConnectionError`; whatever they
        were sending or reading is aborted at once) and closes every connection. The client
        sends nothing more: a chat on it raises :class:`APIConnectionError`."""
        self._transport.close()

    # -- the public calls ----------------------------------------------------------------

    def chat(
        self,
        messages: Messages,
        images: Images = None,
        model: Optional[str] = None,
        *,
        deadline: Optional[float] = None,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
    ) -> ChatStream[str]:
        """Streams the answer as ``str`` chunks.

        Everything is checked now, before any request; the returned generator
        (a :class:`ChatStream`) does the work as it is iterated. Each chunk extends the text
        so far, except a :class:`Rewrite` chunk: the Space rewrote its text, and the chunk
        is the whole new text, replacing everything before it. So ``"".join(chunks)`` is
        the answer when no chunk is a ``Rewrite``; in general the answer is the last
        ``Rewrite`` joined with the chunks after it. From an OpenAI-compatible server, the
        model's reasoning comes first as :class:`Reasoning` chunks. The Space's warnings and
        messages go to the ``qvq_sdk`` logger. Close the generator, or break out of the
        loop, to cancel; :meth:`ChatStream.stop` stops it from another thread. Either way the
        connection closes and the server stops.

        ``max_tokens``, ``temperature`` and ``extra_body`` (merged into the request's JSON)
        apply with ``protocol="openai"`` only.
        """
        request = self._prepare(messages, images, model, deadline, max_tokens, temperature, extra_body)
        return ChatStream(text_chunks(self._run(request), self._transport.redact_text), request.cancel)

    def complete(
        self,
        messages: Messages,
        images: Images = None,
        model: Optional[str] = None,
        *,
        deadline: Optional[float] = None,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
    ) -> str:
        """Waits for the whole answer and returns it: exactly the Space's final output, or the
        model's answer without its reasoning. The Space's warnings and messages go to the
        ``qvq_sdk`` logger."""
        events = self._run(self._prepare(messages, images, model, deadline, max_tokens, temperature, extra_body))
        try:
            for event in events:
                if isinstance(event, Done):
                    log_done(event)
                    return event.text
                if isinstance(event, SpaceLog):
                    log_space_message(event, self._transport.redact_text)
        finally:
            events.close()
        raise StreamError("The chat ended without an answer.")  # the decoder raises first

    def events(
        self,
        messages: Messages,
        images: Images = None,
        model: Optional[str] = None,
        *,
        deadline: Optional[float] = None,
        max_tokens: Optional[int] = None,
        temperature: Optional[float] = None,
        extra_body: Optional[Mapping[str, Any]] = None,
    ) -> ChatStream[Event]:
        """Streams typed events: :class:`WakingUp` while a sleeping Space starts,
        :class:`QueuePosition`, :class:`ProcessingStarted`, :class:`ReasoningUpdate`
        (``delta``, ``text``; OpenAI-compatible servers), :class:`TextUpdate` (``delta``,
        ``text``, ``replaced``), :class:`SpaceLog` and :class:`Progress` from the Space, and
        finally :class:`Done`. A :class:`ChatStream`: :meth:`ChatStream.stop` stops it from
        any thread."""
        request = self._prepare(messages, images, model, deadline, max_tokens, temperature, extra_body)
        return ChatStream(self._run(request), request.cancel)

    # -- running a chat ------------------------------------------------------------------

    def _prepare(
        self,
        messages: Messages,
        images: Images,
        model: Optional[str],
        deadline: Optional[float],
        max_tokens: Optional[int],
        temperature: Optional[float],
        extra_body: Optional[Mapping[str, Any]],
    ) -> ChatRequest:
        cancel = CancelToken()
        self._transport.track(cancel)  # from now on close() reaches it
        try:
            seconds = check_deadline(deadline)
            limit = Deadline(seconds if seconds is not None else self._deadline)
            fetch = functools.partial(self._download, cancel=cancel, deadline=limit)
            generation = check_generation(max_tokens, temperature, extra_body)
            chosen = model if model is not None else self._model
            return prepare(self._runner.rules, messages, images, chosen, generation, limit, cancel, fetch)
        except Cancelled:  # close() reached the download of an image
            self._transport.untrack(cancel)
        except QVQError as error:
            self._transport.untrack(cancel)
            scrub(error)
            raise
        raise APIConnectionError(CLOSED_MESSAGE)  # outside the except: no context to hide

    def _download(self, url: str, where: str, cancel: CancelToken, deadline: Deadline) -> bytes:
        """Fetches an image URL through the client's session, without the token."""
        try:
            return self._transport.content(
                "GET", url, credentials=NONE, headers={"Accept": "image/*"}, cancel=cancel, deadline=deadline
            )
        except APIStatusError as exc:
            status = exc.status_code
        raise InputError(f"{where}: the image URL {describe_url(url)} answered HTTP {status}.", input=where)

    def _run(self, request: ChatRequest) -> Generator[Event, None, None]:
        """The chat's events, from its protocol; a stop ends them quietly, the client's close
        with an :class:`APIConnectionError`; an error reaches the caller scrubbed."""
        closed = False
        try:
            if isinstance(self._runner, Space):
                yield from self._runner.events(request, self._protocol, self._wake_timeout)
            else:
                yield from self._runner.events(request)
        except Cancelled as cancelled:
            closed = cancelled.reason == CLOSED
        except QVQError as error:
            self._transport.redact(error)
            scrub(error)
            raise
        finally:
            self._transport.untrack(request.cancel)
        if closed:
            raise APIConnectionError(CLOSED_MESSAGE)
