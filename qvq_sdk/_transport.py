"""Sending requests through one ``requests.Session``: the token, timeouts, redirects, retries.

The token goes to the Space's origin only (and, for its runtime lookups, the Hub's); redirects
are followed here, so no token header reaches another host. What :mod:`qvq_sdk._retry` allows
is retried, but a request that starts a job only when it cannot have reached the Space.
Every failure becomes a :mod:`qvq_sdk.errors` exception (:mod:`qvq_sdk._failures` reads the
network's, :mod:`qvq_sdk._statuses` words the HTTP statuses). Event streams are opened here
and owned by :class:`~qvq_sdk._stream.Stream`.

The session the client makes keeps up to ``POOL_MAXSIZE`` idle connections per host, and
closes a connection it has no room for quietly, instead of urllib3's "Connection pool is
full" warning (many threads may finish their streams at once).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, Optional, Set, Tuple
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.__version__ import __version__ as requests_version

from ._constants import MAX_REDIRECTS, POOL_MAXSIZE
from ._deadline import NO_DEADLINE, Deadline
from ._failures import before_sending, certificate_rejected, is_read_timeout, reason
from ._protocol import excerpt
from ._retry import parse_retry_after, retry_delay, should_retry_status
from ._statuses import status_error
from ._stream import Stream
from ._version import __version__
from .errors import APIConnectionError, APITimeoutError, StreamError

logger = logging.getLogger("qvq_sdk")

USER_AGENT = f"qvq-sdk/{__version__} python-requests/{requests_version}"
_REDIRECTS = (301, 302, 303, 307, 308)
CLOSED = "This QVQClient was closed (close()); it sends nothing more. Create a new client."

#: Retry policies of :meth:`Transport.request`.
ALWAYS = "always"  # any connection failure or retryable status (a request that starts no job)
UNSENT = "unsent"  # only what cannot have reached the server (a request that starts a job)
NEVER = "never"


def origin_of(url: str) -> Tuple[str, str, Optional[int]]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


_PUT_LOCK = threading.Lock()


class _RoomyPoolMixin:
    """A connection pool that closes a returned connection it has no room for, quietly."""

    pool: Any

    def _put_conn(self, conn: Any) -> None:
        with _PUT_LOCK:  # check and put as one step: threads return connections at once
            if conn is not None and self.pool is not None and self.pool.full():
                conn.close()
                return
            super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_RoomyPoolMixin, urllib3.HTTPConnectionPool):
    pass


class _HTTPSPool(_RoomyPoolMixin, urllib3.HTTPSConnectionPool):
    pass


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter, with :class:`_RoomyPoolMixin` pools, direct and through proxies."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme.get("https") is urllib3.HTTPSConnectionPool:  # not SOCKS
            manager.pool_classes_by_scheme = _POOLS
        return manager


def new_session() -> requests.Session:
    """The session a client makes when it is given none."""
    session = requests.Session()
    adapter = _Adapter(pool_connections=4, pool_maxsize=POOL_MAXSIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class Transport:
    """One ``requests.Session`` and the rules for using it; safe to share between threads.

    ``timeout`` and ``max_retries`` are read at each request: setting them takes effect.
    """

    def __init__(
        self,
        *,
        origin: str,
        hub: str,
        token: Optional[str],
        session: Optional[requests.Session],
        proxies: Optional[Dict[str, str]],
        timeout: Tuple[float, float],
        max_retries: int,
    ) -> None:
        self._owns_session = session is None
        self._session = session if session is not None else self._new_session()
        self._origin = origin_of(origin)
        self._hub = origin_of(hub)
        self._token = token
        self._proxies = proxies
        self.timeout = timeout
        self.max_retries = max_retries
        self._streams: Set[Stream] = set()
        self._lock = threading.Lock()
        self._closed = False

    _new_session = staticmethod(new_session)

    def redact(self, error: BaseException) -> None:
        """Removes the token from an error whose text came from the server (which may echo it)."""
        token = self._token
        if not token:
            return
        error.args = tuple(arg.replace(token, "hf_***") if isinstance(arg, str) else arg for arg in error.args)
        for name in ("body", "message", "url"):
            value = getattr(error, name, None)
            if isinstance(value, str):
                setattr(error, name, value.replace(token, "hf_***"))

    @property
    def authenticated(self) -> bool:
        return self._token is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def _credentials_for(self, url: str, credentials: str) -> Dict[str, str]:
        if self._token is None:
            return {}
        origin = origin_of(url)
        bearer = f"Bearer {self._token}"
        if credentials == "space" and origin == self._origin:
            return {"Authorization": bearer, "X-HF-Authorization": bearer}
        if credentials == "hub" and origin == self._hub:
            return {"Authorization": bearer}
        return {}

    # -- sending -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        retry: str = ALWAYS,
        credentials: str = "space",
        stream: bool = False,
        headers: Optional[Dict[str, str]] = None,
        deadline: Deadline = NO_DEADLINE,
        **kwargs: Any,
    ) -> Tuple[requests.Response, Tuple[float, float]]:
        """Sends a request and returns its 2xx response and the timeout it was sent with,
        retrying what ``retry`` (:data:`ALWAYS`, :data:`UNSENT`, :data:`NEVER`) allows.

        ``credentials`` says which token headers may go with it: ``"space"`` (both, to the
        Space's origin only), ``"hub"`` (``Authorization`` to the Hub only) or ``"none"``.
        """
        attempt = 0
        while True:
            if self._closed:
                raise APIConnectionError(CLOSED)
            delay: Optional[float] = None
            retries_left = retry != NEVER and attempt < self.max_retries
            try:
                response, timeout = self._send(method, url, credentials, stream, headers or {}, deadline, kwargs)
            except APIConnectionError as exc:
                if exc.__cause__ is None:  # the deadline, or too many redirects: nothing to retry
                    raise
                unsent = before_sending(exc.__cause__)
                if retry == UNSENT and not unsent:
                    raise _maybe_started(exc) from exc.__cause__
                if retries_left and _worth_retrying(exc, unsent):
                    delay = retry_delay(attempt, None)
                if delay is None:
                    raise
                logger.debug("retrying %s %s in %.2fs after: %s", method, _loggable(url), delay, exc)
            else:
                if response.status_code < 300:
                    return response, timeout
                error = status_error(response, authenticated=self.authenticated, streamed=stream)
                response.close()
                if retries_left and should_retry_status(response.status_code, starts_job=retry == UNSENT):
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
    ) -> Tuple[requests.Response, Tuple[float, float]]:
        """One attempt, following redirects; the token goes to the Space's origin only."""
        verify = self._session.verify
        if verify is not True and verify is not None:
            # requests lets $REQUESTS_CA_BUNDLE override the session's own bundle (or False)
            # unless it is passed with the request (requests#3829).
            kwargs = {"verify": verify, **kwargs}
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
                _scrub(exc)
                if deadline.expired():
                    raise deadline.error() from None
                raise _connection_error(exc, url, timeout) from exc
            logger.debug(
                "%s %s -> %s in %.3fs", method, _loggable(url), response.status_code, time.perf_counter() - started
            )
            location = response.headers.get("Location")
            if response.status_code not in _REDIRECTS or not location:
                return response, timeout
            response.close()
            url = urljoin(url, location)
            if response.status_code in (301, 302, 303) and method not in ("GET", "HEAD"):
                method = "GET"
                kwargs = {k: v for k, v in kwargs.items() if k not in ("json", "data", "files")}
        raise APIConnectionError(f"Too many redirects (more than {MAX_REDIRECTS}), last to {_loggable(url)}.")

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """Sends a request (as :meth:`request`) and returns its JSON body."""
        response, _ = self.request(method, url, **kwargs)
        try:
            return response.json()
        except (ValueError, RecursionError):
            pass  # raised below, outside this block: the decode error (whose .doc is the body) is not its context
        raise StreamError(
            f"{_loggable(url)} answered with something that is not JSON ({excerpt(response.text)!r}); "
            "is the address a Gradio app?"
        )

    def content(self, method: str, url: str, **kwargs: Any) -> bytes:
        """Sends a request (as :meth:`request`) and returns its body."""
        return self.request(method, url, **kwargs)[0].content

    # -- streaming ---------------------------------------------------------------------

    def open_stream(self, url: str, deadline: Deadline = NO_DEADLINE, **kwargs: Any) -> Stream:
        """GETs an event stream (never retried) and registers it so close() can abort it."""
        response, timeout = self.request(
            "GET",
            url,
            retry=NEVER,
            stream=True,
            headers={"Accept": "text/event-stream", "Accept-Encoding": "identity", "Cache-Control": "no-cache"},
            deadline=deadline,
            **kwargs,
        )
        stream = Stream(self, response, deadline, read_timeout=timeout[1])
        with self._lock:
            if not self._closed:
                self._streams.add(stream)
                return stream
        response.close()
        raise APIConnectionError(CLOSED)

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


def _connection_error(exc: BaseException, url: str, timeout: Tuple[float, float]) -> APIConnectionError:
    """The error for a request that failed on the network; ``timeout`` is the one it was sent with."""
    host = urlsplit(url).netloc
    connect, read = timeout
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return APITimeoutError(
            f"Timed out connecting to {host} after {connect:g} s. Check the network, or raise timeout=."
        )
    if isinstance(exc, requests.exceptions.ReadTimeout) or is_read_timeout(exc):
        return APITimeoutError(
            f"{host} sent nothing for {read:g} s (read timeout). The Space may be overloaded; retry, or raise timeout=."
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return APIConnectionError(f"The TLS handshake with {host} failed: {reason(exc)}.")
    if isinstance(exc, requests.exceptions.ProxyError):
        return APIConnectionError(f"The proxy refused or failed the connection to {host}: {reason(exc)}.")
    return APIConnectionError(
        f"Could not talk to {host}: {reason(exc)}. Check the network and the Space's address, then retry."
    )


def _worth_retrying(exc: APIConnectionError, unsent: bool) -> bool:
    """A failed connection is worth another try unless the certificate was not trusted, or
    a read timed out after the request was sent (the Space may be working on it)."""
    if exc.__cause__ is not None and certificate_rejected(exc.__cause__):
        return False
    return unsent or not isinstance(exc, APITimeoutError)


def _maybe_started(exc: APIConnectionError) -> APIConnectionError:
    """The error for a request that starts a job and failed after it was sent."""
    return type(exc)(
        f"{exc} The request had been sent, so the job may have started on the Space; it was not "
        "sent again, to never start a job twice."
    )


def _scrub(exc: requests.RequestException) -> None:
    """Drops the request and response from ``exc``: their headers carry the token, and error
    trackers walk ``__cause__`` and ``__context__``."""
    exc.request = None
    exc.response = None


def _loggable(url: str) -> str:
    """A URL for the logs: no credentials (there are none in ours, but be sure)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}"
