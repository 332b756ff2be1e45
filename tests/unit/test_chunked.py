"""qvq_sdk._transport.body.read_chunked: the HTTP/1.1 chunked body reader used for event streams
that need no decoding (the fault tests run it over real sockets; these pin its edge cases)."""

from __future__ import annotations

import http.client
import io

import pytest
import urllib3

from qvq_sdk._transport import body as _body
from qvq_sdk._transport.body import read_chunked


def reader(body: bytes) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(body))  # type: ignore[arg-type]


def chunked(*pieces: bytes, trailer: bytes = b"\r\n") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n" + trailer


def test_each_chunk_is_yielded_whole_and_in_order():
    pieces = [b"data: one\n\n", b"data: two\n\n", b"x" * 70_000]
    assert list(read_chunked(reader(chunked(*pieces)))) == pieces


def test_what_follows_the_body_is_left_unread():
    fp = reader(chunked(b"abc") + b"HTTP/1.1 200 OK\r\n")
    assert list(read_chunked(fp)) == [b"abc"]
    assert fp.read() == b"HTTP/1.1 200 OK\r\n"


@pytest.mark.parametrize("size_line", [b"3;name=value\r\n", b"3 \r\n", b"03\r\n", b"3\n", b"3;a;b\r\n"], ids=repr)
def test_size_lines_with_extensions_padding_and_bare_lf(size_line):
    assert list(read_chunked(reader(size_line + b"abc\r\n0\r\n\r\n"))) == [b"abc"]


def test_trailer_fields_are_read_and_dropped():
    fp = reader(chunked(b"abc", trailer=b"X-Checksum: 1\r\nX-Other: 2\r\n\r\n") + b"rest")
    assert list(read_chunked(fp)) == [b"abc"]
    assert fp.read() == b"rest"


def test_a_body_ending_at_the_last_chunk_without_trailer_section_is_whole():
    assert list(read_chunked(reader(b"3\r\nabc\r\n0\r\n"))) == [b"abc"]


@pytest.mark.parametrize(
    "body",
    [
        b"",  # nothing at all
        b"3\r\nabc\r\n",  # no last chunk
        b"3\r\nabc\r\n5",  # cut inside a size line
    ],
    ids=["empty", "no-last-chunk", "cut-size-line"],
)
def test_a_body_that_ends_early_is_a_protocol_error(body):
    with pytest.raises(urllib3.exceptions.ProtocolError):
        list(read_chunked(reader(body)))


def test_a_chunk_cut_short_is_an_incomplete_read():
    with pytest.raises(http.client.IncompleteRead):
        list(read_chunked(reader(b"a\r\nabc")))


@pytest.mark.parametrize("size_line", [b"zz\r\n", b"-3\r\n", b"\r\n", b"3 3\r\n"], ids=repr)
def test_a_malformed_size_line_is_a_protocol_error(size_line):
    with pytest.raises(urllib3.exceptions.ProtocolError):
        list(read_chunked(reader(size_line + b"abc\r\n0\r\n\r\n")))


def test_a_chunk_without_its_crlf_is_a_protocol_error():
    with pytest.raises(urllib3.exceptions.ProtocolError):
        list(read_chunked(reader(b"3\r\nabcXY0\r\n\r\n")))


def test_a_size_line_longer_than_the_limit_is_a_protocol_error():
    with pytest.raises(urllib3.exceptions.ProtocolError):
        list(read_chunked(reader(b"0" * 70_000 + b"3\r\nabc\r\n0\r\n\r\n")))


def test_a_huge_announced_size_costs_only_the_bytes_that_came(monkeypatch):
    """A size line announcing 1 TB is read in pieces: the body ends early, nothing huge is
    allocated, and the error says how much was missing."""
    monkeypatch.setattr(_body, "_MAX_CHUNK_READ", 4)
    with pytest.raises(http.client.IncompleteRead) as info:
        list(read_chunked(reader(b"10000000000\r\nabcdefghij")))
    assert info.value.partial == b"abcdefghij"


def test_a_large_chunk_read_in_pieces_is_whole(monkeypatch):
    monkeypatch.setattr(_body, "_MAX_CHUNK_READ", 4)
    assert list(read_chunked(reader(chunked(b"abcdefghij", b"k")))) == [b"abcdefghij", b"k"]
