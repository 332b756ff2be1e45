"""Sending requests through one ``requests.Session``: the token, timeouts, redirects,
retries and cancellation.

The token goes to the server's origin only (and, for a Space's runtime lookups, the Hub's);
redirects are followed here, so no token header reaches another host. What
:mod:`~qvq_sdk._transport.retry` allows is retried. Every request belongs to a chat's
:class:`~qvq_sdk._cancel.CancelToken`: the connection it holds is registered with the token
while it is in flight (:class:`~qvq_sdk._transport.pools.Flight`), a wait between attempts
is cut short by it, and nothing is sent once it is cancelled. :meth:`Transport.close`
cancels every chat's token and closes every connection. Every failure becomes a
:mod:`qvq_sdk.errors` exception (:mod:`~qvq_sdk._transport.failures` reads the network's,
:mod:`~qvq_sdk._transport.statuses` words the HTTP statuses).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urljoin, urlsplit

import requests
from requests.__version__ import __version__ as requests_version

from .._cancel import CLOSED, Cancelled, CancelToken
from .._constants import MAX_REDIRECTS
from .._deadline import Deadline
from .._text import excerpt, redact
from .._version import __version__
from ..errors import APIConnectionError, StreamError
from . import retry
from .failures import before_sending, certificate_rejected, request_error
from .pools import Flight, close_session, flying, new_session
from .statuses import SPACE, Server, status_error
from .streamed_body import StreamedBody

logger = logging.getLogger("qvq_sdk")

USER_AGENT = f"qvq-sdk/{__version__} python-requests/{requests_version}"
_REDIRECTS = (301, 302, 303, 307, 308)
CLOSED_MESSAGE = "This QVQClient was closed (close()); it sends nothing more. Create a new client."

#: Which credentials a request may carry: the server's token (to its origin only), the
#: Hub's (to the Hub only), or none.
ORIGIN = "origin"
HUB = "hub"
NONE = "none"


def origin_of(url: str) -> Tuple[str, str, Optional[int]]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class Transport:
    """One ``requests.Session`` and the rules for using it; safe to share between threads.

    ``token`` goes to ``origin`` in the ``auth_headers``; ``hub_token`` to ``hub`` as
    ``Authorization``. ``server`` words the errors. ``timeout`` and ``max_retries`` are read
    at each request: setting them takes effect.
    """

    def __init__(
        self,
        *,
        origin: str,
        token: Optional[str],
        auth_headers: Tuple[str, ...] = ("Authorization",),
        hub: str = "",
        hub_token: Optional[str] = None,
        session: Optional[requests.Session],
        proxies: Optional[Dict[str, str]],
        timeout: Tuple[float, float],
        max_retries: int,
        server: Server = SPACE,
    ) -> None:
        self._owns_session = session is None
        self._session = session if session is not None else self._new_session()
        self._origin = origin_of(origin)
        self._hub = origin_of(hub) if hub else None
        self._token = token
        self._auth_headers = auth_headers
        self._hub_token = hub_token
        self._proxies = proxies
        self.server = server
        self.timeout = timeout
        self.max_retries = max_retries
        self._chats: weakref.WeakSet[CancelToken] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False

    _new_session = staticmethod(new_session)  # qvq_sdk.testing.FakeSpace.patch() mounts its fake on it

    # -- the token ---------------------------------------------------------------------

    def redact(self, error: BaseException) -> None:
        """Removes the tokens from an error whose text came from the server (which may echo them)."""
        for token in (self._token, self._hub_token):
            if not token:
                continue
            error.args = tuple(redact(arg, token) if isinstance(arg, str) else arg for arg in error.args)
            for name in ("body", "message", "url"):
                value = getattr(error, name, None)
                if isinstance(value, str):
                    setattr(error, name, redact(value, token))

    def redact_text(self, text: str) -> str:
        """``text`` without the tokens (for the logs)."""
        return redact(redact(text, self._token), self._hub_token)

    @property
    def authenticated(self) -> bool:
        return self._token is not None

    def _credentials_for(self, url: str, credentials: str) -> Dict[str, str]:
        if credentials == ORIGIN and self._token is not None and origin_of(url) == self._origin:
            bearer = f"Bearer {self._token}"
            return dict.fromkeys(self._auth_headers, bearer)
        if credentials == HUB and self._hub_token is not None and origin_of(url) == self._hub:
            return {"Authorization": f"Bearer {self._hub_token}"}
        return {}

    # -- chats and closing -------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def track(self, cancel: CancelToken) -> None:
        """Counts a chat among those :meth:`close` cancels; raises if the client is closed."""
        with self._lock:
            if self._closed:
                raise APIConnectionError(CLOSED_MESSAGE)
            self._chats.add(cancel)

    def untrack(self, cancel: CancelToken) -> None:
        with self._lock:
            self._chats.discard(cancel)

    def close(self) -> None:
        """Cancels every chat under way (their connections close at once) and closes every
        connection of the session if this client made it."""
        with self._lock:
            self._closed = True
            chats = list(self._chats)
            self._chats.clear()
        for cancel in chats:
            cancel.cancel(CLOSED)
        if self._owns_session:
            close_session(self._session)

    # -- sending -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        cancel: CancelToken,
        deadline: Deadline,
        kind: str = retry.PREPARE,
        credentials: str = ORIGIN,
        stream: bool = False,
        headers: Optional[Dict[str, str]] = None,
        **kwargs: Any,
    ) -> Tuple[requests.Response, Tuple[float, float]]:
        """Sends a request and returns its 2xx response and the timeout it was sent with,
        sending it again as :mod:`~qvq_sdk._transport.retry` allows for its ``kind``.

        ``credentials``: :data:`ORIGIN`, :data:`HUB` or :data:`NONE`. Raises
        :class:`~qvq_sdk._cancel.Cancelled` once ``cancel`` is cancelled.
        """
        attempt = 0
        while True:
            self._check(cancel)
            try:
                response, timeout = self._send(
                    method, url, credentials, stream, headers or {}, deadline, cancel, kwargs
                )
            except APIConnectionError as exc:
                self._check(cancel)
                cause = exc.__cause__
                if cause is None:  # the deadline, or too many redirects: nothing to retry
                    raise
                unsent = before_sending(cause)
                delay = retry.after_failure(kind, unsent=unsent, untrusted=certificate_rejected(cause), attempt=attempt)
                if delay is None or attempt >= self.max_retries:
                    if kind == retry.JOB_START and not unsent:
                        raise self._maybe_started(exc) from cause
                    raise
                said = self.redact_text(str(exc))
                logger.debug("retrying %s %s in %.2fs after: %s", method, loggable(url), delay, said)
            else:
                if response.status_code < 300:
                    return response, timeout
                error = status_error(response, authenticated=self.authenticated, streamed=stream, server=self.server)
                response.close()
                delay = retry.after_status(
                    kind, response.status_code, retry.parse_retry_after(response.headers), attempt
                )
                if delay is None or attempt >= self.max_retries:
                    raise error
                logger.debug(
                    "retrying %s %s in %.2fs after HTTP %s", method, loggable(url), delay, response.status_code
                )
            remaining = deadline.remaining()
            if remaining is not None and delay >= remaining:
                raise deadline.error()
            pause(cancel, delay)
            attempt += 1

    def _check(self, cancel: CancelToken) -> None:
        if self._closed:
            raise Cancelled(CLOSED)
        cancel.check()

    def _send(
        self,
        method: str,
        url: str,
        credentials: str,
        stream: bool,
        headers: Dict[str, str],
        deadline: Deadline,
        cancel: CancelToken,
        kwargs: Dict[str, Any],
    ) -> Tuple[requests.Response, Tuple[float, float]]:
        """One attempt, following redirects; the token goes to the origin only."""
        verify = self._session.verify
        if verify is not True and verify is not None:
            # requests lets $REQUESTS_CA_BUNDLE override the session's own bundle (or False)
            # unless it is passed with the request (requests#3829).
            kwargs = {"verify": verify, **kwargs}
        for _ in range(MAX_REDIRECTS + 1):
            timeout = deadline.bound(self.timeout)
            response = self._attempt(method, url, credentials, stream, headers, timeout, deadline, cancel, kwargs)
            location = response.headers.get("Location")
            if response.status_code not in _REDIRECTS or not location:
                return response, timeout
            response.close()
            url = urljoin(url, location)
            if response.status_code in (301, 302, 303) and method not in ("GET", "HEAD"):
                method = "GET"
                kwargs = {k: v for k, v in kwargs.items() if k not in ("json", "data", "files")}
        raise APIConnectionError(f"Too many redirects (more than {MAX_REDIRECTS}), last to {loggable(url)}.")

    def _attempt(
        self,
        method: str,
        url: str,
        credentials: str,
        stream: bool,
        headers: Dict[str, str],
        timeout: Tuple[float, float],
        deadline: Deadline,
        cancel: CancelToken,
        kwargs: Dict[str, Any],
    ) -> requests.Response:
        """One request, its connection registered with ``cancel`` while it is in flight."""
        started = time.perf_counter()
        flight = Flight()
        key = cancel.register(flight.abort)
        try:
            with flying(flight):
                response = self._session.request(
                    method,
                    url,
                    headers={"User-Agent": USER_AGENT, **headers, **self._credentials_for(url, credentials)},
                    timeout=timeout,
                    proxies=self._proxies,
                    allow_redirects=False,
                    stream=stream,
                    **kwargs,
                )
        except requests.RequestException as exc:
            seconds = time.perf_counter() - started
            logger.debug("%s %s failed after %.3fs: %s", method, loggable(url), seconds, self.redact_text(str(exc)))
            exc.request = exc.response = None  # their headers carry the token
            self._check(cancel)
            if deadline.expired():
                raise deadline.error() from None
            raise request_error(exc, url, timeout, self.server.name) from exc
        finally:
            cancel.unregister(key)
        logger.debug("%s %s -> %s in %.3fs", method, loggable(url), response.status_code, time.perf_counter() - started)
        return response

    def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """Sends a request (as :meth:`request`) and returns its JSON body."""
        response, _ = self.request(method, url, **kwargs)
        try:
            return response.json()
        except (ValueError, RecursionError):
            pass  # raised below, outside this block: the decode error (whose .doc is the body) is not its context
        raise StreamError(
            f"{loggable(url)} answered with something that is not JSON ({excerpt(response.text)!r}); "
            "is the address right?"
        )

    def content(self, method: str, url: str, **kwargs: Any) -> bytes:
        """Sends a request (as :meth:`request`) and returns its body."""
        return self.request(method, url, **kwargs)[0].content

    def stream(
        self, method: str, url: str, *, cancel: CancelToken, deadline: Deadline, kind: str = retry.ONCE, **kwargs: Any
    ) -> StreamedBody:
        """Sends a request for an event stream and returns its body, unread."""
        headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity", "Cache-Control": "no-cache"}
        response, _ = self.request(
            method, url, cancel=cancel, deadline=deadline, kind=kind, stream=True, headers=headers, **kwargs
        )
        return StreamedBody(response, deadline, read_timeout=self.timeout[1])

    def _maybe_started(self, exc: APIConnectionError) -> APIConnectionError:
        """The error for a request that starts a job and failed after it was sent."""
        return type(exc)(
            f"{exc} The request had been sent, so the job may have started on {self.server.name}; it was "
            "not sent again, to never start a job twice."
        )


def pause(cancel: CancelToken, seconds: float) -> None:
    """The wait before a retry, cut short by a cancel."""
    cancel.sleep(seconds)


def loggable(url: str) -> str:
    """A URL for the logs: no credentials (there are none in ours, but be sure)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}"
