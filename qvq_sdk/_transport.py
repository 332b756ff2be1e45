"""HTTP for the client: the only module that knows ``requests`` and ``urllib3``.

It sends requests with the token (to the Space's origin only), the timeout and the
proxies; retries what :mod:`qvq_sdk._retry` allows; follows redirects itself so that
no token header ever reaches another host; maps every failure to a
:mod:`qvq_sdk.errors` exception; and reads a streaming body chunk by chunk, as soon as
bytes arrive, whatever urllib3 version is installed.
"""

from __future__ import annotations

import functools
import http.client
import io
import json
import logging
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from ._constants import (
    BODY_EXCERPT_CHARS,
    ERROR_BODY_READ_LIMIT,
    MAX_REDIRECTS,
    POOL_MAXSIZE,
    STREAM_READ_SIZE,
)
from ._protocol import excerpt
from ._retry import parse_retry_after, retry_delay, should_retry_status
from ._version import __version__
from ._watchdog import WATCHDOG, Watch
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
)

logger = logging.getLogger("qvq_sdk")

USER_AGENT = f"qvq-sdk/{__version__} python-requests/{requests.__version__}"
_BODY_KEYS = ("detail", "error", "message")
_REDIRECTS = (301, 302, 303, 307, 308)
HUB_ORIGIN = ("https", "huggingface.co", 443)


def origin_of(url: str) -> Tuple[str, str, Optional[int]]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


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
                value = document[key]
                text = value if isinstance(value, str) else json.dumps(value)
                break
    elif "<" in text:
        text = _html_words(text)
    return excerpt(text, BODY_EXCERPT_CHARS)


def status_error(response: requests.Response, *, authenticated: bool, streamed: bool = False) -> APIStatusError:
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
    if status in (401, 403):
        advice = (
            "Check that the Hugging Face token is valid and may use this Space."
            if authenticated
            else "The Space may be private or gated: pass token= or set HF_TOKEN."
        )
        return AuthenticationError(f"The Space refused access (HTTP {status}{said}). {advice}", **fields)
    if status == 404:
        return NotFoundError(
            f"Not found (HTTP 404) at {url}{said}. Check the Space id or base_url; the Space "
            "may not exist, or may be private (then pass a token).",
            **fields,
        )
    if status == 429:
        retry_after = parse_retry_after(response.headers)
        when = f"retry in {retry_after:.0f} s" if retry_after is not None else "retry later"
        return RateLimitError(
            f"The Space is rate-limiting requests (HTTP 429{said}); {when}.",
            retry_after=retry_after,
            **fields,
        )
    if status == 410 or status >= 500:
        if "queue is full" in body.lower():
            what = "The Space's queue is full"
        elif status == 410:
            what = "The Space is gone or stopped"
        elif status == 503:
            what = "The Space is unavailable (asleep and waking up, paused, or overloaded)"
        else:
            what = "The Space failed"
        return ServiceUnavailableError(f"{what} (HTTP {status}{said}). Retry later.", **fields)
    return APIStatusError(f"The Space rejected the request (HTTP {status}{said}).", **fields)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (requests and urllib3 nest them in args)."""
    seen: Set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
        for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                todo.append(linked)


def _reason(exc: BaseException) -> str:
    """What went wrong, in words, from the innermost cause that says it."""
    causes = list(_causes(exc))
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "the connection was refused (is the server running and the address right?)"
    if any(isinstance(c, socket.gaierror) or type(c).__name__ == "NameResolutionError" for c in causes):
        return "the host name could not be resolved"
    if any(isinstance(c, ConnectionResetError) for c in causes):
        return "the connection was reset by the other end"
    if any(isinstance(c, (http.client.IncompleteRead, urllib3.exceptions.IncompleteRead)) for c in causes):
        return "the server closed the connection before the response was complete"
    text = str(causes[-1]) or str(exc)
    return excerpt(text, 200) if text else type(exc).__name__


class Deadline:
    """A chat's total time limit in seconds, counted from the call; ``None`` is no limit."""

    __slots__ = ("expires", "seconds")

    def __init__(self, seconds: Optional[float]) -> None:
        self.seconds = seconds
        self.expires = None if seconds is None else time.monotonic() + seconds  # on time.monotonic()'s clock

    def remaining(self) -> Optional[float]:
        return None if self.expires is None else self.expires - time.monotonic()

    def expired(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    def error(self) -> APITimeoutError:
        return APITimeoutError(
            f"The chat did not finish within its deadline of {self.seconds:g} s (deadline=); what had "
            "arrived was not returned as an answer. Retry, or raise deadline=."
        )

    def check(self) -> None:
        if self.expired():
            raise self.error()

    def bound(self, timeout: Tuple[float, float]) -> Tuple[float, float]:
        """The (connect, read) timeout, cut short so that no wait outlasts the deadline."""
        remaining = self.remaining()
        if remaining is None:
            return timeout
        if remaining <= 0:
            raise self.error()
        return min(timeout[0], remaining), min(timeout[1], remaining)


NO_DEADLINE = Deadline(None)


class Transport:
    """One ``requests.Session`` and the rules for using it; safe to share between threads."""

    def __init__(
        self,
        *,
        origin: str,
        token: Optional[str],
        session: Optional[requests.Session],
        proxies: Optional[Dict[str, str]],
        timeout: Tuple[float, float],
        max_retries: int,
    ) -> None:
        self._owns_session = session is None
        self._session = session if session is not None else self._new_session()
        self._origin = origin_of(origin)
        self._auth_headers = (
            {"Authorization": f"Bearer {token}", "X-HF-Authorization": f"Bearer {token}"} if token else {}
        )
        self._proxies = proxies
        self.timeout = timeout
        self.max_retries = max_retries
        self._streams: Set[Stream] = set()
        self._lock = threading.Lock()
        self._closed = False

    def redact(self, error: BaseException) -> None:
        """Removes the token from an error whose text came from the server (which may echo it)."""
        token = self._auth_headers.get("Authorization", "")[len("Bearer ") :]
        if not token:
            return
        error.args = tuple(arg.replace(token, "hf_***") if isinstance(arg, str) else arg for arg in error.args)
        for name in ("body", "message", "url"):
            value = getattr(error, name, None)
            if isinstance(value, str):
                setattr(error, name, value.replace(token, "hf_***"))

    @property
    def authenticated(self) -> bool:
        return bool(self._auth_headers)

    def _credentials_for(self, url: str, credentials: str) -> Dict[str, str]:
        origin = origin_of(url)
        if credentials == "space" and origin == self._origin:
            return self._auth_headers
        if credentials == "hub" and origin == HUB_ORIGIN and self._auth_headers:
            return {"Authorization": self._auth_headers["Authorization"]}
        return {}

    @staticmethod
    def _new_session() -> requests.Session:
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_MAXSIZE)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    # -- sending -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        retry: bool = True,
        credentials: str = "space",
        stream: bool = False,
        headers: Optional[Dict[str, str]] = None,
        deadline: Deadline = NO_DEADLINE,
        **kwargs: Any,
    ) -> requests.Response:
        """Sends a request and returns its 2xx response, retrying what may be retried.

        ``credentials`` says which token headers may go with it: ``"space"`` (both, to the
        Space's origin only), ``"hub"`` (``Authorization`` to huggingface.co only) or ``"none"``.
        """
        attempt = 0
        while True:
            if self._closed:
                raise APIConnectionError("The client was closed; nothing more is sent.")
            delay: Optional[float] = None
            try:
                response = self._send(method, url, credentials, stream, headers or {}, deadline, kwargs)
            except APIConnectionError as exc:
                if retry and attempt < self.max_retries and _may_retry(exc):
                    delay = retry_delay(attempt, None)
                if delay is None:
                    raise
                logger.debug("retrying %s %s in %.2fs after: %s", method, _loggable(url), delay, exc)
            else:
                if response.status_code < 300:
                    return response
                error = status_error(response, authenticated=self.authenticated, streamed=stream)
                response.close()
                if retry and attempt < self.max_retries and should_retry_status(response.status_code):
                    delay = retry_delay(attempt, parse_retry_after(response.headers))
                if delay is None:
                    raise error
                logger.debug(
                    "retrying %s %s in %.2fs after HTTP %s", method, _loggable(url), delay, response.status_code
                )
            remaining = deadline.remaining()
            if remaining is not None and delay >= remaining:
                raise deadline.error()
            time.sleep(delay)
            attempt += 1

    def _send(
        self,
        method: str,
        url: str,
        credentials: str,
        stream: bool,
        headers: Dict[str, str],
        deadline: Deadline,
        kwargs: Dict[str, Any],
    ) -> requests.Response:
        """One attempt, following redirects; the token goes to the Space's origin only."""
        for _ in range(MAX_REDIRECTS + 1):
            timeout = deadline.bound(self.timeout)
            sent_headers = {"User-Agent": USER_AGENT, **headers}
            sent_headers.update(self._credentials_for(url, credentials))
            started = time.perf_counter()
            try:
                response = self._session.request(
                    method,
                    url,
                    headers=sent_headers,
                    timeout=timeout,
                    proxies=self._proxies,
                    allow_redirects=False,
                    stream=stream,
                    **kwargs,
                )
            except requests.RequestException as exc:
                logger.debug("%s %s failed after %.3fs: %s", method, _loggable(url), time.perf_counter() - started, exc)
                if deadline.expired():
                    raise deadline.error() from exc
                raise self._connection_error(exc, url) from exc
            logger.debug(
                "%s %s -> %s in %.3fs", method, _loggable(url), response.status_code, time.perf_counter() - started
            )
            location = response.headers.get("Location")
            if response.status_code not in _REDIRECTS or not location:
                return response
            response.close()
            url = urljoin(url, location)
            if response.status_code in (301, 302, 303) and method not in ("GET", "HEAD"):
                method = "GET"
                kwargs = {k: v for k, v in kwargs.items() if k not in ("json", "data", "files")}
        raise APIConnectionError(f"Too many redirects (more than {MAX_REDIRECTS}), last to {_loggable(url)}.")

    def _connection_error(self, exc: BaseException, url: str) -> APIConnectionError:
        host = urlsplit(url).netloc
        connect, read = self.timeout
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return APITimeoutError(
                f"Timed out connecting to {host} after {connect:g} s. Check the network, or raise timeout=."
            )
        if isinstance(exc, requests.exceptions.ReadTimeout) or _is_read_timeout(exc):
            return APITimeoutError(
                f"{host} sent nothing for {read:g} s (read timeout). The Space may be overloaded; "
                "retry, or raise timeout=."
            )
        if isinstance(exc, requests.exceptions.SSLError):
            return APIConnectionError(f"The TLS handshake with {host} failed: {_reason(exc)}.")
        if isinstance(exc, requests.exceptions.ProxyError):
            return APIConnectionError(f"The proxy refused or failed the connection to {host}: {_reason(exc)}.")
        return APIConnectionError(
            f"Could not talk to {host}: {_reason(exc)}. Check the network and the Space's address, then retry."
        )

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """Sends a request (as :meth:`request`) and returns its JSON body."""
        response = self.request(method, url, **kwargs)
        try:
            return response.json()
        except (ValueError, RecursionError):
            raise StreamError(
                f"{_loggable(url)} answered with something that is not JSON ({excerpt(response.text)!r}); "
                "is the address a Gradio app?"
            ) from None

    def content(self, method: str, url: str, **kwargs: Any) -> bytes:
        """Sends a request (as :meth:`request`) and returns its body."""
        return self.request(method, url, **kwargs).content

    # -- streaming ---------------------------------------------------------------------

    def open_stream(self, url: str, deadline: Deadline = NO_DEADLINE, **kwargs: Any) -> Stream:
        """GETs an event stream (never retried) and registers it so close() can abort it."""
        response = self.request(
            "GET",
            url,
            retry=False,
            stream=True,
            headers={"Accept": "text/event-stream", "Accept-Encoding": "identity", "Cache-Control": "no-cache"},
            deadline=deadline,
            **kwargs,
        )
        stream = Stream(self, response, deadline)
        with self._lock:
            if not self._closed:
                self._streams.add(stream)
                return stream
        response.close()
        raise APIConnectionError("The client was closed; nothing more is sent.")

    def is_open(self, stream: Stream) -> bool:
        return stream in self._streams

    def release(self, stream: Stream) -> None:
        with self._lock:
            self._streams.discard(stream)

    def close(self) -> None:
        """Aborts every open stream and closes the session if this client made it."""
        with self._lock:
            self._closed = True
            streams, self._streams = list(self._streams), set()
        for stream in streams:
            stream.abort()
        if self._owns_session:
            self._session.close()


class Stream:
    """An open event stream: its content type, its bytes as they arrive, and closing it.

    While its bytes are read the socket blocks without a timeout, and the process's
    :data:`~qvq_sdk._watchdog.WATCHDOG` enforces the read timeout and the deadline (a socket
    timeout would cost a ``poll()`` per read; see :mod:`qvq_sdk._watchdog`).
    """

    def __init__(self, transport: Transport, response: requests.Response, deadline: Deadline) -> None:
        self._transport = transport
        self._response = response
        self._deadline = deadline
        self._watch: Optional[Watch] = None
        self.url = response.url.split("?", 1)[0]
        self.content_type = response.headers.get("Content-Type", "")
        self.received = 0  # bytes read so far by chunks()

    def excerpt(self) -> str:
        """A short piece of the body (for a reply that is not an event stream)."""
        return body_excerpt(self._response, streamed=True)

    def chunks(self) -> Iterator[bytes]:
        """The body's bytes, each piece handed on as soon as it arrives. No read waits
        longer than the read timeout, or past the deadline."""
        response = self._response
        deadline = self._deadline
        chunks = _chunks(response.raw)
        sock = _socket_of(response)
        watch = None
        if sock is not None:  # a test double has no socket
            sock.settimeout(None)
            watch = self._watch = WATCHDOG.watch(sock, self._transport.timeout[1], deadline.expires)
        clock = time.monotonic
        try:
            if watch is None:
                for chunk in chunks:
                    self.received += len(chunk)
                    yield chunk
                    deadline.check()
                return
            watch.since = clock()
            for chunk in chunks:  # the hot loop: it runs once per event
                watch.since = None
                self.received += len(chunk)
                yield chunk
                if deadline.expires is not None:
                    deadline.check()
                watch.since = clock()
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError, AttributeError) as exc:
            raise self._failure(exc, watch) from exc
        finally:
            WATCHDOG.unwatch(watch)

    def _failure(self, exc: BaseException, watch: Optional[Watch]) -> APIConnectionError:
        """The error for a read that failed."""
        if not self._transport.is_open(self):
            return APIConnectionError("The stream was closed by the client.")
        expired = watch.expired if watch is not None else None
        if expired == "deadline" or self._deadline.expired():
            return self._deadline.error()
        if expired == "read timeout" or _is_read_timeout(exc):
            host = urlsplit(self._response.url).netloc
            return APITimeoutError(
                f"{host} sent nothing for {self._transport.timeout[1]:g} s in the middle of the answer "
                "(read timeout). Retry, or raise timeout=."
            )
        host = urlsplit(self._response.url).netloc
        return APIConnectionError(
            f"The connection to {host} broke in the middle of the answer: {_reason(exc)}. Retry the request."
        )

    def close(self) -> None:
        """Closes the connection at once (the Space then cancels the job)."""
        self._transport.release(self)
        WATCHDOG.unwatch(self._watch)  # before the socket closes: its descriptor may be reused
        self._response.close()

    def abort(self) -> None:
        """Closes the connection even while another thread is blocked reading it."""
        WATCHDOG.unwatch(self._watch)
        _abort(self._response)


def _chunks(raw: Any) -> Iterator[bytes]:
    """A body's bytes, each piece as soon as it arrives, whatever the urllib3 version.

    A chunked body (what Gradio sends) is read HTTP chunk by chunk: the server writes an
    event as one chunk, so each arrives whole and at once, for the least work per event.
    When nothing needs decoding (we ask for ``identity``), :func:`_read_chunked` reads the
    chunks straight from the connection; else urllib3's ``read_chunked`` does. Any other body
    is read with ``read1``: urllib3 2 has it; under urllib3 1.26 the http.client response
    below does.
    """
    if raw.chunked and raw.supports_chunked_reads():
        fp = getattr(raw._fp, "fp", None)
        encoding = raw.headers.get("Content-Encoding", "identity").strip().lower()
        if isinstance(fp, io.BufferedReader) and encoding == "identity" and raw.chunk_left is None:
            return _read_chunked(fp)
        return iter(raw.read_chunked(decode_content=True))
    read1 = raw.read1 if hasattr(raw, "read1") else raw._fp.read1
    return iter(functools.partial(read1, STREAM_READ_SIZE), b"")


_MAX_CHUNK_LINE = 65536  # http.client's limit on a line
_MAX_CHUNK_READ = 1 << 20  # a larger chunk is read in pieces: memory only for bytes that came


def _read_large(read: Callable[[int], bytes], size: int) -> bytes:
    pieces = []
    while size > 0:
        piece = read(min(size, _MAX_CHUNK_READ))
        if not piece:
            break
        pieces.append(piece)
        size -= len(piece)
    return b"".join(pieces)


def _read_chunked(fp: io.BufferedReader) -> Iterator[bytes]:
    """The data of each chunk of an HTTP/1.1 chunked body, read from the connection's file.

    It is urllib3's ``read_chunked`` for a body that needs no decoding, without its layers:
    on a stream of thousands of small events those cost more than parsing the events.
    A body that ends early or breaks the chunked format raises ``http.client.IncompleteRead``
    or ``urllib3.exceptions.ProtocolError``.
    """
    readline = fp.readline
    read = fp.read
    while True:
        line = readline(_MAX_CHUNK_LINE + 1)
        if line[-1:] != b"\n":  # the body ended inside the line, or the line is over the limit
            if len(line) <= _MAX_CHUNK_LINE:
                raise urllib3.exceptions.ProtocolError("Response ended prematurely")
            raise urllib3.exceptions.ProtocolError(f"invalid chunk size line {line[:40]!r}")
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            size = -1
        if size <= 0:
            if size < 0:
                raise urllib3.exceptions.ProtocolError(f"invalid chunk size line {line[:40]!r}")
            break
        data = read(size) if size <= _MAX_CHUNK_READ else _read_large(read, size)
        if len(data) < size:
            raise http.client.IncompleteRead(data, size - len(data))
        if read(2) != b"\r\n":
            raise urllib3.exceptions.ProtocolError("a chunk did not end with CRLF")
        yield data
    while True:  # the trailer section, up to its empty line
        line = readline(_MAX_CHUNK_LINE + 1)
        if line in (b"\r\n", b"\n", b""):
            return
        if len(line) > _MAX_CHUNK_LINE:
            raise urllib3.exceptions.ProtocolError("a trailer line is too long")


def _socket_of(response: requests.Response) -> Optional[socket.socket]:
    raw = response.raw
    connection = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if not isinstance(sock, socket.socket):  # reach it through the body's file instead
        sock = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _abort(response: requests.Response) -> None:
    """Closes a response even while another thread is blocked reading it.

    ``Response.close()`` alone waits for that read to return; shutting the socket down
    ends it at once, and the Space sees the disconnect and cancels the job.
    """
    sock = _socket_of(response)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    response.close()


def _is_read_timeout(exc: BaseException) -> bool:
    timeouts = (urllib3.exceptions.ReadTimeoutError, socket.timeout, requests.exceptions.ReadTimeout)
    return any(isinstance(cause, timeouts) for cause in _causes(exc))


def _may_retry(exc: APIConnectionError) -> bool:
    """A failed connection may be retried; a read timeout may not (the Space may be working on it)."""
    return not isinstance(exc, APITimeoutError) or isinstance(exc.__cause__, requests.exceptions.ConnectTimeout)


def _loggable(url: str) -> str:
    """A URL for the logs: no credentials (there are none in ours, but be sure)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}"


def _html_words(text: str) -> str:
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
