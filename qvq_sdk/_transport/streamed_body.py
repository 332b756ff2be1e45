"""The body of a streamed response (an event stream): its bytes as they arrive, its socket,
and what becomes of its connection.

While an answer streams, its socket blocks without a timeout and the process's
:data:`~qvq_sdk._transport.watchdog.WATCHDOG` enforces the read timeout and the deadline (a
socket timeout would cost a ``poll()`` per read; see :mod:`qvq_sdk._transport.watchdog`).

A body ends one of two ways:

- :meth:`StreamedBody.finish`, after the answer's completion: the rest of the body (Gradio
  sends ``close_stream`` and the last chunk at once; an OpenAI-compatible server ``[DONE]``)
  is read, for at most ``DRAIN_SECONDS`` and ``DRAIN_BYTES``, and the connection goes back
  to the pool with its socket timeout restored, for the next request to reuse. A body that
  does not end by then is closed.
- :meth:`StreamedBody.close` (cancelled, failed, timed out, past the deadline) or
  :meth:`StreamedBody.abort` (from another thread): the connection is closed, never reused,
  and the server sees the disconnect and stops the job.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator, Optional, Tuple, Type

import requests

from .._constants import DRAIN_BYTES, DRAIN_SECONDS
from .._deadline import Deadline
from ..errors import APIConnectionError
from .body import body_chunks
from .failures import READ_ERRORS, read_error
from .sockets import shut_down, socket_of
from .statuses import body_excerpt
from .watchdog import WATCHDOG, Watch

logger = logging.getLogger("qvq_sdk")
_UNSET = object()
_DRAIN_ERRORS: Tuple[Type[BaseException], ...] = (*READ_ERRORS, APIConnectionError)
ABORTED = "The stream was closed by the client."


class StreamedBody:
    """A streamed response's content type, its bytes as they arrive, and closing it.

    ``read_timeout`` is the client's read timeout: the longest a read may wait.
    """

    def __init__(self, response: requests.Response, deadline: Deadline, read_timeout: float):
        self._response = response
        self._deadline = deadline
        self._read_timeout = read_timeout
        self._watch: Optional[Watch] = None
        self._sock_timeout: Any = _UNSET  # the socket's timeout before the stream made it block
        self._body: Optional[Iterator[bytes]] = None
        self._ended = False  # the body was read to its end
        self.aborted = False
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
            watch = self._watch_socket(self._read_timeout, deadline.expires)
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
        if self.aborted:
            raise APIConnectionError(ABORTED)
        sock = socket_of(self._response.raw)
        if sock is None:
            return None
        if self._sock_timeout is _UNSET:
            self._sock_timeout = sock.gettimeout()
        sock.settimeout(None)
        watch = self._watch = WATCHDOG.watch(sock, read_timeout, expires)
        return watch

    def _failure(self, exc: BaseException, watch: Optional[Watch]) -> APIConnectionError:
        """The error for a read that failed."""
        if self.aborted:
            return APIConnectionError(ABORTED)
        expired = watch.expired if watch is not None else None
        if expired == "deadline" or self._deadline.expired():
            return self._deadline.error()
        return read_error(exc, self._response.url, self._read_timeout, expired == "read timeout")

    def finish(self) -> None:
        """After the completion: reads the rest of the body, briefly, and gives the connection
        back to the pool if the body ended; else closes it. Never raises."""
        WATCHDOG.unwatch(self._watch)
        try:
            if not self._ended and not self.aborted and self._body is not None:
                self._drain(self._body)
            if self._ended and not self.aborted:
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
        sock = socket_of(raw)
        if sock is not None and self._sock_timeout is not _UNSET:
            sock.settimeout(self._sock_timeout)
        original = getattr(raw, "_fp", None)  # the http.client response: mark it complete
        if original is not None and hasattr(original, "isclosed") and not original.isclosed():
            original.close()
        if getattr(raw, "_connection", None) is not None:
            raw.release_conn()

    def close(self) -> None:
        """Closes the connection at once, unless :meth:`finish` gave it back (the server
        cancels a job whose stream closes)."""
        WATCHDOG.unwatch(self._watch)  # before the socket closes: its descriptor may be reused
        self._response.close()

    def abort(self) -> None:
        """Ends the stream at once, even while another thread is blocked reading it."""
        self.aborted = True
        WATCHDOG.unwatch(self._watch)
        sock = socket_of(self._response.raw)
        if sock is None:
            self._response.close()
            return
        shut_down(sock)  # the blocked read returns at once
