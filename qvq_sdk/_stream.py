"""An open event stream: its bytes as they arrive, its socket, and what becomes of its connection.

While an answer streams, its socket blocks without a timeout and the process's
:data:`~qvq_sdk._watchdog.WATCHDOG` enforces the read timeout and the deadline (a socket
timeout would cost a ``poll()`` per read; see :mod:`qvq_sdk._watchdog`).

A stream ends one of two ways:

- :meth:`Stream.finish`, after the completion message: the rest of the body (Gradio sends
  ``close_stream`` and the last chunk at once) is read, for at most ``DRAIN_SECONDS`` and
  ``DRAIN_BYTES``, and the connection goes back to the pool with its socket timeout
  restored, for the next request to reuse. A body that does not end by then is closed.
- :meth:`Stream.close` (cancelled, failed, timed out, past the deadline) or
  :meth:`Stream.abort` (from another thread): the connection is closed, never reused, and
  the Space sees the disconnect and stops the job.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import TYPE_CHECKING, Any, Iterator, Optional, Tuple, Type
from urllib.parse import urlsplit

import requests

from ._body import body_chunks
from ._constants import DRAIN_BYTES, DRAIN_SECONDS
from ._deadline import Deadline
from ._failures import READ_ERRORS, is_read_timeout, reason
from ._statuses import body_excerpt
from ._watchdog import WATCHDOG, Watch
from .errors import APIConnectionError, APITimeoutError

if TYPE_CHECKING:
    from ._transport import Transport

logger = logging.getLogger("qvq_sdk")
_UNSET = object()
_DRAIN_ERRORS: Tuple[Type[BaseException], ...] = (*READ_ERRORS, APIConnectionError)


class Stream:
    """An open event stream: its content type, its bytes as they arrive, and closing it."""

    def __init__(self, transport: Transport, response: requests.Response, deadline: Deadline, read_timeout: float):
        self._transport = transport
        self._response = response
        self._deadline = deadline
        self._read_timeout = read_timeout  # the socket's, as sent (the deadline may have cut it)
        self._watch: Optional[Watch] = None
        self._sock: Optional[socket.socket] = None
        self._sock_timeout: Any = _UNSET  # the socket's timeout before the stream made it block
        self._body: Optional[Iterator[bytes]] = None
        self._ended = False  # the body was read to its end
        self._aborted = False
        self.url = response.url.split("?", 1)[0]
        self.content_type = response.headers.get("Content-Type", "")
        self.received = 0  # bytes read so far by chunks()

    def excerpt(self) -> str:
        """A short piece of the body (for a reply that is not an event stream)."""
        return body_excerpt(self._response, streamed=True)

    def chunks(self) -> Iterator[bytes]:
        """The body's bytes, each piece handed on as soon as it arrives. No read waits
        longer than the read timeout, or past the deadline."""
        deadline = self._deadline
        watch = None
        clock = time.monotonic
        try:
            body = self._body = body_chunks(self._response.raw)
            watch = self._watch_socket(self._transport.timeout[1], deadline.expires)
            if watch is None:  # a test double has no socket: the deadline is checked between chunks
                for chunk in body:
                    self.received += len(chunk)
                    yield chunk
                    deadline.check()
                self._ended = True
                return
            watch.since = clock()
            for chunk in body:  # the hot loop: it runs once per event
                watch.since = None
                self.received += len(chunk)
                yield chunk
                if deadline.expires is not None:
                    deadline.check()
                watch.since = clock()
            self._ended = True
        except READ_ERRORS as exc:
            raise self._failure(exc, watch) from exc
        finally:
            WATCHDOG.unwatch(watch)

    def _watch_socket(self, read_timeout: float, expires: Optional[float]) -> Optional[Watch]:
        """Makes the socket block and has the watchdog keep its limits; None without a socket."""
        if self._aborted:
            raise APIConnectionError("The stream was closed by the client.")
        sock = self._sock = socket_of(self._response)
        if sock is None:
            return None
        if self._sock_timeout is _UNSET:
            self._sock_timeout = sock.gettimeout()
        sock.settimeout(None)
        watch = self._watch = WATCHDOG.watch(sock, read_timeout, expires)
        return watch

    def _failure(self, exc: BaseException, watch: Optional[Watch]) -> APIConnectionError:
        """The error for a read that failed."""
        host = urlsplit(self._response.url).netloc
        if self._aborted or not self._transport.is_open(self):
            return APIConnectionError("The stream was closed by the client.")
        expired = watch.expired if watch is not None else None
        if expired == "deadline" or self._deadline.expired():
            return self._deadline.error()
        if expired == "read timeout" or is_read_timeout(exc):
            waited = watch.read_timeout if watch is not None else self._read_timeout
            return APITimeoutError(
                f"{host} sent nothing for {waited:g} s in the middle of the answer "
                "(read timeout). Retry, or raise timeout=."
            )
        return APIConnectionError(
            f"The connection to {host} broke in the middle of the answer: {reason(exc)}. Retry the request."
        )

    def finish(self) -> None:
        """After the completion: reads the rest of the body, briefly, and gives the connection
        back to the pool if the body ended; else closes it. Never raises."""
        WATCHDOG.unwatch(self._watch)
        try:
            if not self._ended and not self._aborted and self._body is not None:
                self._drain(self._body)
            if self._ended and not self._aborted:
                self._give_back()
        except _DRAIN_ERRORS as exc:
            logger.debug("stream %s: not reused (%s)", self.url, exc)
        self.close()

    def _drain(self, body: Iterator[bytes]) -> None:
        watch = self._watch_socket(DRAIN_SECONDS, time.monotonic() + DRAIN_SECONDS)
        left = DRAIN_BYTES
        try:
            if watch is not None:
                watch.since = time.monotonic()
            for chunk in body:
                left -= len(chunk)
                if left < 0:
                    return
            self._ended = True
        finally:
            WATCHDOG.unwatch(watch)
            self._watch = None

    def _give_back(self) -> None:
        """Returns the connection to its pool, its socket as urllib3 left it."""
        raw = self._response.raw
        sock = self._sock
        if sock is not None and self._sock_timeout is not _UNSET:
            sock.settimeout(self._sock_timeout)
        original = getattr(raw, "_fp", None)  # the http.client response: mark it complete
        if original is not None and hasattr(original, "isclosed") and not original.isclosed():
            original.close()
        if getattr(raw, "_connection", None) is not None:
            raw.release_conn()

    def close(self) -> None:
        """Closes the connection at once, unless :meth:`finish` gave it back (the Space cancels
        a job whose stream closes)."""
        self._transport.release(self)
        WATCHDOG.unwatch(self._watch)  # before the socket closes: its descriptor may be reused
        self._response.close()

    def abort(self) -> None:
        """Ends the stream at once, even while another thread is blocked reading it."""
        self._aborted = True
        WATCHDOG.unwatch(self._watch)
        sock = socket_of(self._response)
        if sock is None:
            self._response.close()
            return
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the blocked read returns at once
        except OSError:
            pass


def socket_of(response: requests.Response) -> Optional[socket.socket]:
    """The operating system's socket under a response, or None (a test double has none).

    Over TLS in TLS (HTTPS through an HTTPS proxy: urllib3's ``SSLTransport``) or
    pyOpenSSL's ``WrappedSocket``, the TLS object is not a socket; the one it reads
    from, ``.socket``, is.
    """
    raw = response.raw
    connection = getattr(raw, "_connection", None)
    candidate = getattr(connection, "sock", None)
    if candidate is None:  # reach it through the body's file instead
        candidate = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
    for _ in range(3):
        if isinstance(candidate, socket.socket):
            return candidate
        candidate = getattr(candidate, "socket", None)
    return None
