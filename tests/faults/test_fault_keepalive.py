"""Connection reuse on a server that keeps connections alive (FaultSpace(keep_alive=True)):
one connection for sequential chats, timeouts restored on a reused connection, no reuse after
a stream that did not complete, a body held open after the completion, idle connections the
server closed, and many threads sharing one client's pool.

The FaultSpace closes a connection whose request says ``Connection: close``, as a real server
does, so a client that sent it would fail these tests (on the number of connections); the
first also checks that no request said it."""

from __future__ import annotations

import logging
import threading

import pytest
from faultspace import TOKEN, WIRES, FaultSpace, event_stream, gate

from qvq_sdk import AppError, Done, QVQClient, TextUpdate
from qvq_sdk._constants import POOL_MAXSIZE

PROTOCOLS = ["queue", "call"]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"


@pytest.fixture
def alive():
    """A FaultSpace that keeps its connections alive, as Gradio does."""
    with FaultSpace(keep_alive=True) as server:
        yield server
    assert server.errors == [], server.errors


@pytest.fixture
def client_of():
    clients = []

    def make(space, protocol="queue", **options):
        client = QVQClient(token=TOKEN, base_url=space.base_url, protocol=protocol, timeout=(2, 5), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def idle_connections(client):
    """The connections the client's pools hold for reuse, with a live socket."""
    adapter = client._transport._session.get_adapter("http://")
    found = []
    for manager in [adapter.poolmanager, *adapter.proxy_manager.values()]:
        for key in list(manager.pools.keys()):
            pool = manager.pools[key]
            found += [conn for conn in list(pool.pool.queue) if conn is not None and conn.sock is not None]
    return found


@pytest.mark.parametrize("image", [False, True], ids=["text", "image"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sequential_chats_use_one_connection(alive, client_of, protocol, image):
    client = client_of(alive, protocol)
    for _ in range(5):
        assert client.complete("hi", images=PNG if image else None) == "Hello world"
        assert "".join(client.chat("hi", images=PNG if image else None)) == "Hello world"
    asked_to_close = [(r.method, r.path, r.headers.get("connection")) for r in alive.requests if r.wants_close]
    assert asked_to_close == []  # the client never asks the server to close a connection
    assert alive.connections == 1
    assert {r.connection for r in alive.requests} == {1}
    assert len(alive.requests_to(WIRES[protocol].stream)) == 10


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_reused_connection_gets_its_socket_timeout_back(alive, client_of, protocol):
    client = client_of(alive, protocol)
    assert client.complete("hi") == "Hello world"
    (connection,) = idle_connections(client)
    assert connection.sock.gettimeout() == 5  # the stream's blocking socket did not carry over


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_chat_closed_after_its_answer_keeps_its_connection(alive, client_of, protocol):
    client = client_of(alive, protocol)
    events = client.events("hi")
    for event in events:
        if isinstance(event, Done):
            break
    events.close()  # the answer is whole: closing it is not a cancel
    with client.chat("hi") as chunks:
        assert "".join(chunks) == "Hello world"
    assert client.complete("hi") == "Hello world"
    assert alive.connections == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_cancelled_stream_is_closed_not_reused(alive, client_of, protocol):
    client = client_of(alive, protocol)
    events = client.events("hi")
    for event in events:
        if isinstance(event, TextUpdate):
            break
    events.close()
    assert idle_connections(client) == []
    assert client.complete("hi") == "Hello world"
    assert alive.connections == 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_failed_stream_is_closed_not_reused(alive, client_of, protocol):
    wire = WIRES[protocol]
    failure = {"msg": "process_completed", "event_id": "fa17" * 8, "output": {"error": "Boom"}, "success": False}
    alive.on(wire.stream, event_stream(wire.event(failure if protocol == "queue" else {"error": "Boom"}, "error")), 1)
    client = client_of(alive, protocol)
    with pytest.raises(AppError):
        client.complete("hi")
    assert idle_connections(client) == []
    assert client.complete("hi") == "Hello world"
    assert alive.connections == 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_body_held_open_after_the_completion_is_closed_not_waited_for(alive, client_of, protocol):
    wire = WIRES[protocol]
    release = threading.Event()
    alive.on(wire.stream, event_stream(wire.text_event("Hi"), *wire.completion("Hi"), gate(release)), times=1)
    client = client_of(alive, protocol)
    try:
        assert client.complete("hi") == "Hi"
        assert not release.is_set()  # the answer came back while the server still held the body
        assert idle_connections(client) == []  # and its connection was closed, not pooled
        assert client.complete("hi") == "Hello world"
    finally:
        release.set()
    assert alive.connections == 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_idle_connections_the_server_closed_are_not_errors(alive, client_of, protocol):
    client = client_of(alive, protocol)
    for round_number in range(1, 4):
        assert client.complete("hi") == "Hello world"
        assert alive.wait_for(lambda: alive.idle_connections == 1)  # the server waits for a next request
        assert alive.close_idle() == 1
        assert alive.wait_idle()  # the server's side is closed for good
        assert alive.connections == round_number
    assert client.complete("hi") == "Hello world"


def test_many_threads_share_one_client_without_pool_warnings(alive, client_of, caplog):
    """100 threads stream at once through one client; afterwards its pool keeps a bounded
    number of idle connections, and urllib3 never warns that the pool is full."""
    threads_count = 100
    all_streaming = threading.Event()
    wire = WIRES["queue"]
    alive.on(wire.stream, event_stream(gate(all_streaming), *wire.events()))
    client = client_of(alive, "queue")
    answers = []

    def chat():
        answers.append(client.complete("hi"))

    caplog.set_level(logging.WARNING, logger="urllib3")
    threads = [threading.Thread(target=chat) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    assert alive.wait_stalled(wire.stream, count=threads_count, timeout=20)  # every stream open at once
    assert len(alive.requests_to(wire.stream)) == threads_count
    all_streaming.set()
    for thread in threads:
        thread.join(20)
    assert answers == ["Hello world"] * threads_count
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    assert 0 < len(idle_connections(client)) <= POOL_MAXSIZE
    assert client.complete("hi") == "Hello world"
