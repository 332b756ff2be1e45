"""qvq_sdk._transport.streamed_body.StreamedBody (and the body reader under it,
qvq_sdk._transport.body) over real responses from a 127.0.0.1 server made here: each chunk
handed on as it arrives, finish() giving the connection back only after a complete body,
close() and abort() (from another thread, while a read blocks), the read error, the read
timeout and the deadline; and the gzip/deflate decoder."""

from __future__ import annotations

import gzip
import threading
import time
import zlib

import pytest
from loopback import CLOSE, LoopbackServer

from qvq_sdk._deadline import Deadline
from qvq_sdk._transport import streamed_body
from qvq_sdk._transport.body import Decompressor
from qvq_sdk._transport.pools import close_session, new_session
from qvq_sdk._transport.streamed_body import ABORTED, StreamedBody
from qvq_sdk._transport.watchdog import WATCHDOG
from qvq_sdk.errors import APIConnectionError, APITimeoutError, StreamError

GUARD = 5.0  # the read timeout unless a test says otherwise: a test that waits for it fails

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
END = b"0\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
def serve():
    servers = []

    def make(*scripts):
        server = LoopbackServer(*scripts, then=[OK], path="/stream", wait_limit=GUARD * 2)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def session():
    made = new_session()
    made.trust_env = False
    yield made
    close_session(made)


def open_body(session, server, deadline=None, read_timeout=GUARD, query=""):
    response = session.get(server.url + query, stream=True, timeout=(GUARD, GUARD))
    return StreamedBody(response, deadline or Deadline(None), read_timeout=read_timeout)


def reused(session, server):
    """Whether the next request goes over the connection the stream had."""
    before = server.accepted
    assert session.get(server.url, timeout=(GUARD, GUARD)).text == "ok"
    return server.accepted == before


class Outcome(list):
    thread: threading.Thread


def in_thread(function):
    """Runs ``function`` in another thread; returns a list that gets what it returned or raised."""
    outcome = Outcome()

    def run():
        try:
            outcome.append(function())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome.thread = thread
    return outcome


# -- chunks() ------------------------------------------------------------------------------


def test_each_chunk_is_handed_on_as_soon_as_it_arrives(serve, session):
    more = threading.Event()
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n"), more, chunk(b"data: 2\n\n"), END])
    body = open_body(session, server, query="?session_hash=abc")
    assert body.url == server.url  # without the query
    assert body.content_type == "text/event-stream"
    chunks = body.chunks()
    assert next(chunks) == b"data: 1\n\n"  # while the server still holds the rest
    assert body.received == 9
    more.set()
    assert list(chunks) == [b"data: 2\n\n"]
    assert body.received == 18
    body.finish()


def test_a_body_with_a_length_is_handed_on_as_it_arrives(serve, session):
    more = threading.Event()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 18\r\n\r\n"
    server = serve([head, b"data: 1\n\n", more, b"data: 2\n\n"])
    body = open_body(session, server)
    chunks = body.chunks()
    assert next(chunks) == b"data: 1\n\n"
    more.set()
    assert b"".join(chunks) == b"data: 2\n\n"
    body.finish()
    assert reused(session, server)


def test_a_gzip_body_is_decoded(serve, session):
    compressed = gzip.compress(b"data: 1\n\ndata: 2\n\n")
    head = SSE_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n")
    server = serve([head, chunk(compressed[:10]), chunk(compressed[10:]), END])
    body = open_body(session, server)
    assert b"".join(body.chunks()) == b"data: 1\n\ndata: 2\n\n"
    body.finish()


def test_the_socket_blocks_while_it_streams_and_the_watchdog_keeps_its_limits(serve, session):
    more = threading.Event()
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n"), more, END])
    body = open_body(session, server, read_timeout=3.0)
    chunks = body.chunks()
    next(chunks)
    watch = body._watch
    assert watch in WATCHDOG.watched()
    assert watch.sock.gettimeout() is None and watch.read_timeout == 3.0
    more.set()
    list(chunks)
    assert watch not in WATCHDOG.watched()
    body.finish()


# -- finish(): the connection back to the pool only after a complete body -----------------


def test_finish_after_a_complete_body_gives_the_connection_back(serve, session):
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n"), END])
    body = open_body(session, server)
    assert list(body.chunks()) == [b"data: 1\n\n"]
    sock = body._watch.sock
    body.finish()
    assert sock.gettimeout() == GUARD  # as urllib3 left it, for the next request
    assert not server.closed_by_client.is_set()
    assert reused(session, server)


def test_finish_reads_the_rest_that_comes_at_once_and_gives_the_connection_back(serve, session):
    completion_read = threading.Event()
    server = serve([SSE_HEAD, chunk(b"data: done\n\n"), completion_read, chunk(b"data: close_stream\n\n"), END])
    body = open_body(session, server)
    chunks = body.chunks()  # held, unfinished, as the read loop holds it
    assert next(chunks) == b"data: done\n\n"  # the read loop stops at the completion
    sock = body._watch.sock
    completion_read.set()
    body.finish()
    assert all(watch.sock is not sock for watch in WATCHDOG.watched())  # no watch left on the pooled socket
    assert reused(session, server)


def idle_sockets(session):
    adapter = session.get_adapter("http://")
    return [
        connection.sock
        for pool in adapter.poolmanager.pools._container.values()
        for connection in list(pool.pool.queue)
        if connection is not None and connection.sock is not None
    ]


def test_finish_after_an_abort_does_not_give_the_connection_back(serve, session):
    """A stop that came after the last byte was read: the socket is shut down; the pool
    must not get it."""
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n"), END])
    body = open_body(session, server)
    list(body.chunks())
    body.abort()
    body.finish()
    assert idle_sockets(session) == []
    assert server.closed_by_client.wait(1.0)


def test_finish_reads_a_trickling_rest_for_a_limited_time(serve, session, monkeypatch):
    monkeypatch.setattr(streamed_body, "DRAIN_SECONDS", 0.2)
    first_read = threading.Event()
    trickle = [step for _ in range(40) for step in (chunk(b": ping\n\n"), 0.05)]
    server = serve([SSE_HEAD, chunk(b"data: done\n\n"), first_read, *trickle, END])
    body = open_body(session, server)
    next(body.chunks())
    first_read.set()
    started = time.monotonic()
    body.finish()
    assert time.monotonic() - started < 1.0  # the trickle goes on for 2 s
    assert idle_sockets(session) == []


def test_finish_closes_a_body_that_does_not_end_in_time(serve, session, monkeypatch):
    monkeypatch.setattr(streamed_body, "DRAIN_SECONDS", 0.1)
    server = serve([SSE_HEAD, chunk(b"data: done\n\n")])
    body = open_body(session, server)
    assert next(body.chunks()) == b"data: done\n\n"
    started = time.monotonic()
    body.finish()  # never raises
    assert time.monotonic() - started < 1.0
    assert server.closed_by_client.wait(1.0)
    assert not reused(session, server)


def test_finish_closes_a_body_with_too_much_left(serve, session, monkeypatch):
    monkeypatch.setattr(streamed_body, "DRAIN_BYTES", 100)
    server = serve([SSE_HEAD, chunk(b"data: done\n\n"), chunk(b"x" * 60), chunk(b"x" * 60)])
    body = open_body(session, server)
    next(body.chunks())
    started = time.monotonic()
    body.finish()
    assert time.monotonic() - started < 0.4  # not waiting for the drain's time limit (0.5 s)
    assert server.closed_by_client.wait(1.0)


def test_finish_of_a_body_never_read_closes_it(serve, session):
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n")])
    body = open_body(session, server)
    body.finish()
    assert server.closed_by_client.wait(1.0)


def test_finish_after_a_broken_body_does_not_raise(serve, session):
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n"), b"5\r\nab", CLOSE])
    body = open_body(session, server)
    with pytest.raises(APIConnectionError):
        list(body.chunks())
    body.finish()
    assert not reused(session, server)


# -- close() and abort() -------------------------------------------------------------------


def test_close_closes_the_connection(serve, session):
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n")])
    body = open_body(session, server)
    chunks = body.chunks()
    next(chunks)
    watch = body._watch
    body.close()
    assert watch not in WATCHDOG.watched()  # unwatched before its descriptor could be reused
    assert server.closed_by_client.wait(1.0)  # the server sees the disconnect: it stops the job
    assert not reused(session, server)


def test_close_after_a_complete_body_does_not_give_the_connection_back(serve, session):
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n"), END])
    body = open_body(session, server)
    list(body.chunks())
    body.close()
    assert not reused(session, server)


def test_abort_from_another_thread_ends_a_blocked_read_at_once(serve, session):
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n")])
    body = open_body(session, server)
    chunks = body.chunks()
    next(chunks)
    outcome = in_thread(lambda: next(chunks))
    time.sleep(0.05)  # into the blocked read
    started = time.monotonic()
    body.abort()
    outcome.thread.join(GUARD)
    assert time.monotonic() - started < 1.0
    assert isinstance(outcome[0], APIConnectionError) and str(outcome[0]) == ABORTED
    assert body.aborted
    body.finish()  # aborted: closed, never given back
    assert server.closed_by_client.wait(1.0)
    assert not reused(session, server)


def test_chunks_after_an_abort_end_at_once(serve, session):
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n")])
    body = open_body(session, server)
    body.abort()
    with pytest.raises(APIConnectionError, match=ABORTED):
        next(body.chunks())
    body.close()


def test_abort_of_a_body_without_a_socket_closes_it():
    class Raw:
        closed = False

    class Response:
        url = "https://space.example/x"
        headers = {}
        raw = Raw()

        def close(self):
            self.closed = True

    response = Response()
    body = StreamedBody(response, Deadline(None), read_timeout=1.0)
    body.abort()
    assert response.closed and body.aborted


# -- the errors ----------------------------------------------------------------------------


def test_a_body_cut_in_a_chunk_is_a_broken_connection(serve, session):
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n"), b"10\r\nonly a part", CLOSE])
    body = open_body(session, server)
    chunks = body.chunks()
    next(chunks)
    with pytest.raises(APIConnectionError) as caught:
        next(chunks)
    assert type(caught.value) is APIConnectionError
    assert str(caught.value) == (
        f"The connection to {server.host} broke in the middle of the answer: the server closed the "
        "connection before the response was complete. Retry the request."
    )
    body.close()


def test_a_body_that_ends_without_its_last_chunk_is_a_broken_connection(serve, session):
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n"), CLOSE])
    body = open_body(session, server)
    with pytest.raises(APIConnectionError, match=r"broke in the middle of the answer: Response ended prematurely"):
        list(body.chunks())
    body.close()


def test_a_read_waiting_past_the_read_timeout(serve, session):
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n")])
    body = open_body(session, server, read_timeout=0.2)
    chunks = body.chunks()
    next(chunks)
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as caught:
        next(chunks)
    assert 0.15 <= time.monotonic() - started < 1.0
    assert str(caught.value) == (
        f"{server.host} sent nothing for 0.2 s in the middle of the answer (read timeout). Retry, or raise timeout=."
    )
    body.close()


def test_a_read_waiting_past_the_deadline(serve, session):
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n")])
    body = open_body(session, server, deadline=Deadline(0.3))
    chunks = body.chunks()
    next(chunks)
    with pytest.raises(APITimeoutError) as caught:
        next(chunks)
    assert str(caught.value).startswith("The chat did not finish within its deadline of 0.3 s (deadline=)")
    body.close()


def test_the_deadline_is_checked_between_chunks(serve, session):
    server = serve([SSE_HEAD, chunk(b"data: 1\n\n"), chunk(b"data: 2\n\n"), END])
    body = open_body(session, server, deadline=Deadline(0.1))
    chunks = body.chunks()
    next(chunks)
    time.sleep(0.15)  # the caller holds the chunk past the deadline; the next one has come
    with pytest.raises(APITimeoutError, match=r"deadline of 0\.1 s"):
        next(chunks)
    body.close()


def test_the_deadline_without_a_socket_is_checked_between_chunks():
    class Raw:
        chunked = False
        headers = {}
        _connection = None

        def read1(self, size):
            return b"data: 1\n\n"

    class Response:
        url = "https://space.example/x"
        headers = {"Content-Type": "text/event-stream"}
        raw = Raw()

    body = StreamedBody(Response(), Deadline(0.05), read_timeout=1.0)
    chunks = body.chunks()
    assert next(chunks) == b"data: 1\n\n"
    time.sleep(0.06)
    with pytest.raises(APITimeoutError, match="deadline"):
        next(chunks)


def test_a_read_that_fails_past_the_deadline_is_the_deadline_error():
    class Raw:
        chunked = False
        headers = {}
        _connection = None

        def read1(self, size):
            time.sleep(0.06)
            raise ConnectionResetError(104, "Connection reset by peer")

    class Response:
        url = "https://space.example/x"
        headers = {"Content-Type": "text/event-stream"}
        raw = Raw()

    body = StreamedBody(Response(), Deadline(0.05), read_timeout=1.0)
    with pytest.raises(APITimeoutError, match="deadline"):
        next(body.chunks())


def test_excerpt_of_a_reply_that_is_not_an_event_stream(serve, session):
    page = b"<html><head><style>h1 {}</style></head><body><h1>Log in</h1></body></html>"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(page)
    server = serve([head, page])
    body = open_body(session, server)
    assert body.content_type == "text/html"
    assert body.excerpt() == "Log in"
    body.close()


def test_a_reply_without_a_content_type(serve, session):
    server = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    body = open_body(session, server)
    assert body.content_type == ""
    body.close()


# -- the decoder of a compressed body -----------------------------------------------------


def decode_all(decompressor, data, piece=7):
    return b"".join(b"".join(decompressor.decode(data[i : i + piece])) for i in range(0, len(data), piece))


def bare_deflate(data):
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    "encoding, compress",
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as the RFC says
        ("deflate", bare_deflate),  # as some servers send it
    ],
)
def test_compressed_bodies_are_decoded_piece_by_piece(encoding, compress):
    text = b"data: " + b"abc" * 5000 + b"\n\n"
    assert decode_all(Decompressor(encoding), compress(text)) == text


def test_gzip_members_one_after_another_are_all_decoded():
    data = gzip.compress(b"one ") + gzip.compress(b"two")
    assert decode_all(Decompressor("gzip"), data, piece=1000) == b"one two"


def test_a_small_body_never_makes_a_huge_piece_at_once():
    data = gzip.compress(b"\0" * (1 << 20))
    pieces = list(Decompressor("gzip").decode(data))
    assert b"".join(pieces) == b"\0" * (1 << 20)
    assert max(len(piece) for piece in pieces) <= 64 * 1024


def test_corrupt_compressed_data_is_a_stream_error():
    with pytest.raises(StreamError, match=r"The reply's gzip data is corrupt"):
        decode_all(Decompressor("gzip"), b"not gzip at all")
    with pytest.raises(StreamError, match="The reply's deflate data is corrupt"):  # zlib-wrapped or bare
        decode_all(Decompressor("deflate"), b"\xff" * 20)
    decompressor = Decompressor("deflate")
    assert b"".join(decompressor.decode(zlib.compress(b"abc" * 100)[:20]))  # started: no second guess
    with pytest.raises(StreamError, match="deflate data is corrupt"):
        list(decompressor.decode(b"\xff" * 20))


def test_an_unknown_content_coding_is_a_stream_error():
    with pytest.raises(StreamError, match="compressed with 'br', which qvq-sdk cannot decode"):
        Decompressor("br")
