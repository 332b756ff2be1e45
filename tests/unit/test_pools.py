"""qvq_sdk._transport.pools: Flight (hold, release, abort, in any order), the pools that record
a request's connection on it, an abort that ends a real request blocked on a stalling
127.0.0.1 server at once, close_session() closing idle pooled sockets, and a full pool that
closes a returned connection quietly. The only sockets are socket pairs and a server on
127.0.0.1 made here."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
import requests
from loopback import LoopbackServer

from qvq_sdk._constants import POOL_MAXSIZE
from qvq_sdk._transport import pools
from qvq_sdk._transport.pools import Flight, _current, close_session, flying, new_session

GUARD = 5.0  # the read timeout of these requests: a test that waits for it fails its < 1 s checks


class FakeConnection:
    """A urllib3 connection as Flight sees one: its ``sock``."""

    def __init__(self, sock):
        self.sock = sock


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    theirs.settimeout(GUARD)
    yield ours, theirs
    ours.close()
    theirs.close()


def is_shut_down(ours, theirs):
    """Whether ``ours`` was shut down: its peer then reads the end of the stream."""
    ours.setblocking(False)
    try:
        ours.recv(1)
    except BlockingIOError:
        pass
    except OSError:
        return True
    theirs.settimeout(0.2)
    try:
        return theirs.recv(1) == b""
    except socket.timeout:
        return False


# -- Flight --------------------------------------------------------------------------------


def test_an_abort_shuts_down_the_connection_held(pair):
    ours, theirs = pair
    flight = Flight()
    connection = FakeConnection(ours)
    flight.hold(connection)
    assert flight.connection is connection
    flight.abort()
    assert flight.aborted
    assert is_shut_down(ours, theirs)


def test_an_abort_after_release_does_nothing(pair):
    """The connection went back to the pool: it may serve another chat now."""
    ours, theirs = pair
    flight = Flight()
    connection = FakeConnection(ours)
    flight.hold(connection)
    flight.release(connection)
    assert flight.connection is None
    flight.abort()
    assert flight.aborted
    assert not is_shut_down(ours, theirs)


def test_an_abort_before_a_connection_is_held_shuts_it_down_once_held(pair):
    ours, theirs = pair
    flight = Flight()
    flight.abort()
    flight.hold(FakeConnection(ours))
    assert is_shut_down(ours, theirs)


def test_releasing_another_connection_keeps_the_one_held(pair):
    ours, theirs = pair
    flight = Flight()
    connection = FakeConnection(ours)
    flight.hold(connection)
    flight.release(FakeConnection(None))
    assert flight.connection is connection
    flight.abort()
    assert is_shut_down(ours, theirs)


def test_a_connection_not_yet_connected_is_no_trouble():
    flight = Flight()
    flight.hold(FakeConnection(None))
    flight.abort()
    flight.hold(FakeConnection(None))
    assert flight.aborted


def test_an_aborted_tls_connection_shuts_down_its_raw_socket(pair):
    """A TLS-in-TLS or pyOpenSSL socket is not a socket.socket: the one under it is."""
    ours, theirs = pair

    class Wrapped:
        socket = ours

    flight = Flight()
    flight.hold(FakeConnection(Wrapped()))
    flight.abort()
    assert is_shut_down(ours, theirs)


def test_flying_sets_the_flight_of_this_thread_only():
    flight = Flight()
    seen = []
    assert _current() is None
    with flying(flight) as entered:
        assert entered is flight
        assert _current() is flight
        thread = threading.Thread(target=lambda: seen.append(_current()))
        thread.start()
        thread.join()
    assert seen == [None]
    assert _current() is None


# -- a server on 127.0.0.1 ----------------------------------------------------------------


@pytest.fixture
def stalling():
    server = LoopbackServer()  # every request stalls: read on, to see the client go
    yield server
    server.close()


@pytest.fixture
def answering():
    server = LoopbackServer(then=[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"])
    yield server
    server.close()


@pytest.fixture
def session():
    made = new_session()
    made.trust_env = False  # no proxy from the environment between us and 127.0.0.1
    yield made
    close_session(made)


def request_in_thread(session, url, flight):
    """``session.get(url)`` as ``flight`` in another thread; returns (thread, outcome list)."""
    outcome = []

    def run():
        started = time.monotonic()
        try:
            with flying(flight):
                outcome.append(session.get(url, timeout=(GUARD, GUARD)))
        except BaseException as exc:
            outcome.append(exc)
        outcome.append(time.monotonic() - started)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_an_abort_ends_a_request_blocked_on_a_stalling_server_at_once(session, stalling):
    flight = Flight()
    thread, outcome = request_in_thread(session, stalling.url, flight)
    assert stalling.received.wait(GUARD)
    assert flight.connection is not None  # the pool recorded the connection on the flight
    time.sleep(0.05)  # into the blocked read
    aborted_at = time.monotonic()
    flight.abort()
    thread.join(GUARD * 2)
    assert isinstance(outcome[0], requests.exceptions.ConnectionError)
    assert time.monotonic() - aborted_at < 1.0  # well under the read timeout
    assert stalling.closed_by_client.wait(1.0)  # and the server saw the client go


def test_an_abort_before_connecting_shuts_the_connection_down_once_made(session, stalling):
    flight = Flight()
    flight.abort()
    thread, outcome = request_in_thread(session, stalling.url, flight)
    thread.join(GUARD * 2)
    assert isinstance(outcome[0], requests.exceptions.ConnectionError)
    assert outcome[1] < 1.0
    assert stalling.requests == 0  # nothing was sent on it


def test_a_complete_request_releases_its_connection_from_the_flight(session, answering):
    flight = Flight()
    with flying(flight):
        assert session.get(answering.url, timeout=(GUARD, GUARD)).text == "ok"
    assert flight.connection is None
    flight.abort()  # later: the connection, back in the pool, is left alone
    assert session.get(answering.url, timeout=(GUARD, GUARD)).text == "ok"
    assert answering.accepted == 1  # the same connection served both


def test_requests_without_a_flight_work_as_usual(session, answering):
    assert session.get(answering.url, timeout=(GUARD, GUARD)).text == "ok"
    assert session.get(answering.url, timeout=(GUARD, GUARD)).text == "ok"
    assert answering.accepted == 1


def idle_sockets(session):
    found = []
    for pool in {id(pool): pool for pool in pools._pools(session)}.values():  # one adapter for both schemes
        queue = getattr(pool, "pool", None)
        for connection in list(getattr(queue, "queue", ())):
            if connection is not None and connection.sock is not None:
                found.append(connection.sock)
    return found


def test_close_session_closes_the_idle_pooled_sockets(answering):
    """At once, even while something still holds the pool (here the last response does):
    urllib3 2 forgets its pools on clear() and closes their connections only when the
    garbage collector finalizes them."""
    session = new_session()
    session.trust_env = False
    response = session.get(answering.url, timeout=(GUARD, GUARD))
    assert response.text == "ok"
    idle = idle_sockets(session)
    assert len(idle) == 1 and idle[0].fileno() >= 0
    close_session(session)
    assert idle[0].fileno() == -1
    assert answering.closed_by_client.wait(1.0)  # the server sees the end at once
    assert response.raw._pool is not None  # (what held the pool)


def test_new_session_has_room_for_many_streams_and_these_pools():
    session = new_session()
    for prefix in ("http://", "https://"):
        adapter = session.get_adapter(prefix + "example.com")
        assert isinstance(adapter, pools._Adapter)
        assert adapter._pool_maxsize == POOL_MAXSIZE
        assert adapter.poolmanager.pool_classes_by_scheme == pools._POOLS
    close_session(session)


def test_proxied_requests_get_these_pools_too():
    session = new_session()
    adapter = session.get_adapter("http://example.com")
    manager = adapter.proxy_manager_for("http://127.0.0.1:9")
    assert manager.pool_classes_by_scheme == pools._POOLS
    close_session(session)


def test_a_full_pool_closes_a_returned_connection_quietly(answering, caplog):
    caplog.set_level(logging.DEBUG)
    pool = pools._HTTPPool("127.0.0.1", answering.port, maxsize=1)
    first, second = pool._get_conn(), pool._get_conn()
    first.connect()
    second.connect()
    flight = Flight()
    with flying(flight):
        pool._put_conn(first)
        flight.hold(second)
        pool._put_conn(second)  # no room: closed
        assert flight.connection is None  # and released from the flight
    assert first.sock is not None and second.sock is None
    assert not [record for record in caplog.records if "pool is full" in record.getMessage().lower()]
    assert answering.closed_by_client.wait(1.0)
    pool.close()


def test_the_pool_records_the_connection_it_hands_out(answering):
    pool = pools._HTTPPool("127.0.0.1", answering.port, maxsize=2)
    flight = Flight()
    with flying(flight):
        connection = pool._get_conn()
        assert flight.connection is connection
        pool._put_conn(connection)
        assert flight.connection is None
    pool.close()
