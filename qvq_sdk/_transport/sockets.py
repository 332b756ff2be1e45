"""The operating system's socket under a connection or a response, and shutting it down from
another thread."""

from __future__ import annotations

import socket
from typing import Any, Optional


def raw_socket(candidate: Any) -> Optional[socket.socket]:
    """The operating system's socket under a connection's ``sock``, or None.

    Over TLS in TLS (HTTPS through an HTTPS proxy: urllib3's ``SSLTransport``) or
    pyOpenSSL's ``WrappedSocket``, the TLS object is not a socket; the one it reads from,
    ``.socket``, is.
    """
    for _ in range(3):
        if isinstance(candidate, socket.socket):
            return candidate
        candidate = getattr(candidate, "socket", None)
    return None


def socket_of(raw: Any) -> Optional[socket.socket]:
    """The socket under a urllib3 response (``response.raw``), or None (a test double has none)."""
    connection = getattr(raw, "_connection", None)
    candidate = getattr(connection, "sock", None)
    if candidate is None:  # reach it through the body's file instead
        candidate = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
    return raw_socket(candidate)


def shut_down(sock: Optional[socket.socket]) -> None:
    """Shuts a socket down for both directions, from any thread: a read or write blocked on
    it returns at once. ``socket.socket.shutdown`` even for a TLS socket: its own
    ``shutdown`` would write a TLS close record, racing the thread that uses it."""
    if sock is None:
        return
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # not connected yet, or already closed
        pass
