"""What went wrong on the network, told from the exceptions ``requests`` and ``urllib3``
raise, and the one table that turns them into :mod:`qvq_sdk.errors` exceptions.

- :func:`request_error`: the error for a request that failed (:data:`_REQUEST_ERRORS`, the
  table: connect timeout, read timeout, TLS, proxy, anything else).
- :func:`read_error`: the error for a response body whose read failed mid-answer.
- :func:`reason`: the innermost cause, in words ("the connection was refused ...").
- :func:`is_read_timeout`: the failure was a read that waited too long.
- :func:`before_sending`: the request failed while its connection was being made (DNS,
  refused, connect timeout, TLS handshake, proxy tunnel), so no byte of it reached the server
  and sending it again cannot start a second job.
- :func:`certificate_rejected`: the server's certificate was not trusted (retrying cannot help).
- :data:`READ_ERRORS`: what reading a response body can raise, and nothing broader.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from typing import Callable, Iterator, List, Set, Tuple, Type
from urllib.parse import urlsplit

import requests
import urllib3

from .._text import excerpt
from ..errors import APIConnectionError, APITimeoutError

#: What reading a streamed body can raise: urllib3's and http.client's errors, socket and TLS
#: errors (OSError), and ValueError from a file closed under the read.
READ_ERRORS: Tuple[Type[BaseException], ...] = (
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
    ValueError,
)

# Failures that only happen before a request is sent.
_CONNECTING_ERRORS = (
    urllib3.exceptions.NewConnectionError,  # refused, DNS (NameResolutionError), unreachable
    urllib3.exceptions.ConnectTimeoutError,
    requests.exceptions.ConnectTimeout,
    socket.gaierror,
    ConnectionRefusedError,
    ssl.CertificateError,  # also ssl.SSLCertVerificationError
)
# Functions of http.client, urllib3 and ssl that run only while a connection is being made: a
# failure raised inside one of them happened before the request was written.
_CONNECTING_FRAMES = frozenset(
    {
        "connect",  # http.client / urllib3 HTTP(S)Connection.connect, also when send() connects
        "_new_conn",
        "create_connection",
        "_tunnel",  # CONNECT through a proxy
        "_connect_tls_proxy",
        "_prepare_proxy",
        "do_handshake",
        "wrap_socket",
        "ssl_wrap_socket",
        "_ssl_wrap_socket_and_match_hostname",
        "_ssl_wrap_socket_impl",
    }
)


def causes(exc: BaseException) -> Iterator[BaseException]:
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


def reason(exc: BaseException) -> str:
    """What went wrong, in words, from the innermost cause that says it."""
    found = list(causes(exc))
    if any(isinstance(c, ConnectionRefusedError) for c in found):
        return "the connection was refused (is the server running and the address right?)"
    if any(isinstance(c, socket.gaierror) or type(c).__name__ == "NameResolutionError" for c in found):
        return "the host name could not be resolved"
    if any(isinstance(c, ConnectionResetError) for c in found):
        return "the connection was reset by the other end"
    if any(isinstance(c, (http.client.IncompleteRead, urllib3.exceptions.IncompleteRead)) for c in found):
        return "the server closed the connection before the response was complete"
    text = str(found[-1]) or str(exc)
    return excerpt(text, 200) if text else type(exc).__name__


def is_read_timeout(exc: BaseException) -> bool:
    timeouts = (urllib3.exceptions.ReadTimeoutError, socket.timeout, requests.exceptions.ReadTimeout)
    return any(isinstance(cause, timeouts) for cause in causes(exc))


def _frames(exc: BaseException) -> List[str]:
    names = []
    tb = exc.__traceback__
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return names


def before_sending(exc: BaseException) -> bool:
    """True when the request failed while its connection was being made: nothing was sent."""
    for cause in causes(exc):
        if isinstance(cause, _CONNECTING_ERRORS):
            return True
        if any(name in _CONNECTING_FRAMES for name in _frames(cause)):
            return True
    return False


def certificate_rejected(exc: BaseException) -> bool:
    """True when the TLS handshake failed because the certificate was not trusted."""
    return any(isinstance(cause, ssl.CertificateError) for cause in causes(exc))


def _connect_timeout(host: str, who: str, connect: float, read: float, exc: BaseException) -> APIConnectionError:
    return APITimeoutError(f"Timed out connecting to {host} after {connect:g} s. Check the network, or raise timeout=.")


def _read_timeout(host: str, who: str, connect: float, read: float, exc: BaseException) -> APIConnectionError:
    return APITimeoutError(
        f"{host} sent nothing for {read:g} s (read timeout). {who.capitalize()} may be overloaded; retry, "
        "or raise timeout=."
    )


def _tls(host: str, who: str, connect: float, read: float, exc: BaseException) -> APIConnectionError:
    return APIConnectionError(f"The TLS handshake with {host} failed: {reason(exc)}.")


def _proxy(host: str, who: str, connect: float, read: float, exc: BaseException) -> APIConnectionError:
    return APIConnectionError(f"The proxy refused or failed the connection to {host}: {reason(exc)}.")


def _other(host: str, who: str, connect: float, read: float, exc: BaseException) -> APIConnectionError:
    return APIConnectionError(
        f"Could not talk to {host}: {reason(exc)}. Check the network and the address of {who}, then retry."
    )


_Translate = Callable[[str, str, float, float, BaseException], APIConnectionError]

#: requests' exceptions → qvq-sdk's, first match wins (a read timeout may also be hidden in
#: the causes of a ConnectionError: :func:`is_read_timeout`).
_REQUEST_ERRORS: Tuple[Tuple[Callable[[BaseException], bool], _Translate], ...] = (
    (lambda exc: isinstance(exc, requests.exceptions.ConnectTimeout), _connect_timeout),
    (lambda exc: isinstance(exc, requests.exceptions.ReadTimeout) or is_read_timeout(exc), _read_timeout),
    (lambda exc: isinstance(exc, requests.exceptions.SSLError), _tls),
    (lambda exc: isinstance(exc, requests.exceptions.ProxyError), _proxy),
    (lambda exc: True, _other),
)


def request_error(exc: BaseException, url: str, timeout: Tuple[float, float], who: str) -> APIConnectionError:
    """The error for a request that failed on the network; ``timeout`` is the (connect, read)
    pair it was sent with; ``who`` names the server ("the Space", "the server")."""
    host = urlsplit(url).netloc
    for matches, translate in _REQUEST_ERRORS:
        if matches(exc):
            return translate(host, who, timeout[0], timeout[1], exc)
    raise AssertionError("the table ends with a catch-all")  # pragma: no cover


def read_error(exc: BaseException, url: str, read_timeout: float, timed_out: bool) -> APIConnectionError:
    """The error for a response body whose read failed in the middle of the answer."""
    host = urlsplit(url).netloc
    if timed_out or is_read_timeout(exc):
        return APITimeoutError(
            f"{host} sent nothing for {read_timeout:g} s in the middle of the answer (read timeout). "
            "Retry, or raise timeout=."
        )
    return APIConnectionError(
        f"The connection to {host} broke in the middle of the answer: {reason(exc)}. Retry the request."
    )
