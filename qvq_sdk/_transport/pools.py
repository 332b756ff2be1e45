"""The session a client makes, its connection pools, and the hooks that let a cancel reach a
request in flight.

- :func:`new_session`: a ``requests.Session`` whose pools keep up to ``POOL_MAXSIZE`` idle
  connections per host and close a returned connection they have no room for quietly
  (instead of urllib3's "Connection pool is full" warning: many threads may finish their
  streams at once).
- :class:`Flight`: the request this thread is sending. While it is set
  (:func:`flying`), the pools record on it the connection the request holds, from the moment
  the pool hands it out until it goes back; :meth:`Flight.abort` shuts that connection's
  socket down, so a connect, send or read blocked on it returns at once, and a connection
  that finishes connecting after the abort is shut down before anything is sent on it.
- :func:`close_session`: closes every pooled connection at once. (urllib3 2's
  ``PoolManager.clear()`` forgets its pools without closing their idle connections, which
  then stay open until the garbage collector runs.)

A session of the caller's own (``session=``) has urllib3's pools, without these hooks: its
requests stop at their timeout rather than at once.
"""

from __future__ import annotations

import threading
from typing import Any, Iterator, Optional

import requests
import urllib3
import urllib3.connection

from .._constants import POOL_MAXSIZE
from ..errors import InputError
from .sockets import raw_socket, shut_down

_local = threading.local()
_PUT_LOCK = threading.Lock()


class Flight:
    """The request one thread is sending, and the connection it holds (see the module)."""

    __slots__ = ("_lock", "aborted", "connection")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.connection: Any = None
        self.aborted = False

    def hold(self, connection: Any) -> None:
        with self._lock:
            self.connection = connection
            if self.aborted:
                shut_down(raw_socket(getattr(connection, "sock", None)))

    def release(self, connection: Any) -> None:
        with self._lock:
            if self.connection is connection:
                self.connection = None

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            if self.connection is not None:
                shut_down(raw_socket(getattr(self.connection, "sock", None)))


class flying:
    """``with flying(flight):`` the requests this thread sends meanwhile are ``flight``."""

    __slots__ = ("_flight",)

    def __init__(self, flight: Flight) -> None:
        self._flight = flight

    def __enter__(self) -> Flight:
        _local.flight = self._flight
        return self._flight

    def __exit__(self, *exc_info: object) -> None:
        _local.flight = None


def _current() -> Optional[Flight]:
    return getattr(_local, "flight", None)


class _AbortableConnectionMixin:
    """A connection that, once connected, is shut down if its flight was aborted meanwhile."""

    sock: Any

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        flight = _current()
        if flight is not None and flight.aborted:
            shut_down(raw_socket(self.sock))


class _HTTPConnection(_AbortableConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_AbortableConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _PoolMixin:
    """A pool that records the connection it hands out on this thread's :class:`Flight`, and
    closes a returned connection it has no room for, quietly."""

    pool: Any

    def _get_conn(self, timeout: Optional[float] = None) -> Any:
        connection = super()._get_conn(timeout)  # type: ignore[misc]
        flight = _current()
        if flight is not None:
            flight.hold(connection)
        return connection

    def _put_conn(self, conn: Any) -> None:
        flight = _current()
        if flight is not None:
            flight.release(conn)
        with _PUT_LOCK:  # check and put as one step: threads return connections at once
            if conn is not None and self.pool is not None and self.pool.full():
                conn.close()
                return
            super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_PoolMixin, urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_PoolMixin, urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter, with this module's pools, direct and through proxies."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme.get("https") is urllib3.HTTPSConnectionPool:  # not SOCKS
            manager.pool_classes_by_scheme = _POOLS
        return manager


def check_session(session: Any) -> Optional[requests.Session]:
    """A caller's ``session=``, checked."""
    if session is not None and not isinstance(session, requests.Session):
        raise InputError(f"session must be a requests.Session, not a {type(session).__name__}.", input="session")
    return session


def new_session() -> requests.Session:
    """The session a client makes when it is given none."""
    session = requests.Session()
    adapter = _Adapter(pool_connections=4, pool_maxsize=POOL_MAXSIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _pools(session: requests.Session) -> Iterator[Any]:
    for adapter in session.adapters.values():
        managers = [getattr(adapter, "poolmanager", None), *getattr(adapter, "proxy_manager", {}).values()]
        for manager in managers:
            pools = getattr(manager, "pools", None)
            if pools is None:
                continue
            for key in list(pools.keys()):
                pool = pools.get(key)
                if pool is not None:
                    yield pool


def close_session(session: requests.Session) -> None:
    """Closes the session and, at once, every idle connection of its pools."""
    for pool in list(_pools(session)):
        pool.close()
    session.close()
