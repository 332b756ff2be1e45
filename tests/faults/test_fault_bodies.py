"""The stream reader over real sockets, on every framing and content coding a proxy may use:
chunked, Content-Length, close-delimited; identity, gzip, deflate; and what it must not turn
into "the connection broke" (a bug of its own) or let escape untyped (a close racing its setup)."""

from __future__ import annotations

import socket
import zlib

import pytest
from faultspace import SSE, WIRES, event_stream

import qvq_sdk._transport.streamed_body
from qvq_sdk import APIConnectionError, QVQError, StreamError

PROTOCOLS = ["queue", "call"]


def compressed(protocol, encoding, framing):
    """The healthy stream, compressed with ``encoding``, each event flushed as it is written."""
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS, "raw-deflate": -zlib.MAX_WBITS}[encoding]
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    pieces = [compressor.compress(event) + compressor.flush(zlib.Z_SYNC_FLUSH) for event in WIRES[protocol].events()]
    pieces.append(compressor.flush())
    whole = b"".join(pieces)
    name = "deflate" if encoding == "raw-deflate" else encoding

    def reply(exchange):
        headers = [("Content-Type", SSE), ("Content-Encoding", name)]
        if framing == "content-length":
            headers.append(("Content-Length", str(len(whole))))
        exchange.head(200, headers, chunked=framing == "chunked")
        for piece in pieces:
            exchange.body(piece)
        exchange.end()

    return reply


@pytest.mark.parametrize("framing", ["chunked", "content-length", "close-delimited"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_compressed_stream_is_decoded_whatever_its_framing(space, make_client, protocol, encoding, framing):
    space.on(WIRES[protocol].stream, compressed(protocol, encoding, framing))
    client = make_client(protocol)
    assert list(client.chat("hi")) == ["Hel", "lo", " world"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_encoding_it_cannot_decode_is_a_stream_error_that_names_it(space, make_client, protocol):
    def reply(exchange):
        exchange.head(200, [("Content-Type", SSE), ("Content-Encoding", "br")], chunked=True)
        exchange.body(b"\x1b\x03\x00")
        exchange.end()

    space.on(WIRES[protocol].stream, reply)
    with pytest.raises(StreamError, match="'br'"):
        make_client(protocol).complete("hi")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_corrupt_gzip_data_is_a_stream_error(space, make_client, protocol):
    def reply(exchange):
        exchange.head(200, [("Content-Type", SSE), ("Content-Encoding", "gzip")], chunked=True)
        exchange.body(b"\x1f\x8b\x08\x00" + b"not gzip at all" * 4)
        exchange.end()

    space.on(WIRES[protocol].stream, reply)
    with pytest.raises(StreamError, match="gzip data is corrupt"):
        make_client(protocol).complete("hi")


@pytest.mark.parametrize("framing", [True, False], ids=["chunked", "close-delimited"])
def test_an_uncompressed_stream_on_either_framing(space, make_client, framing):
    space.on("queue/data", event_stream(*WIRES["queue"].events(), chunked=framing))
    assert make_client().complete("hi") == "Hello world"


def test_a_bug_in_the_reader_is_not_called_a_broken_connection(space, make_client, monkeypatch):
    def broken(raw):
        raise AttributeError("a bug in qvq-sdk")
        yield b""  # pragma: no cover

    monkeypatch.setattr(qvq_sdk._transport.streamed_body, "body_chunks", broken)
    with pytest.raises(AttributeError, match="a bug in qvq-sdk"):
        make_client().complete("hi")


def test_a_socket_closed_before_the_stream_set_it_up_is_a_qvq_error(space, make_client, monkeypatch):
    """close() can land between finding the socket and making it block: still a QVQError."""

    def closed_under_us(response):
        dead = socket.socket()
        dead.close()  # what the stream finds when close() landed first: [Errno 9] on any use
        return dead

    monkeypatch.setattr(qvq_sdk._transport.streamed_body, "socket_of", closed_under_us)
    with pytest.raises(QVQError) as info:
        make_client().complete("hi")
    assert isinstance(info.value, APIConnectionError)
