"""A streamed response body as bytes, each piece handed on as soon as it arrives.

Framing: a chunked body (what Gradio sends) is read HTTP chunk by chunk: the server writes
an event as one chunk, so each arrives whole and at once, for the least work per event.
:func:`read_chunked` reads the chunks straight from the connection's buffered file
(urllib3's ``read_chunked`` costs five Python calls per chunk); any other body (a
``Content-Length``, or ended by close) is read with ``read1``, which returns what has
arrived instead of waiting for a buffer to fill.

Content coding: the stream asks for ``identity``, but a proxy may compress what it passes;
``gzip`` and ``deflate`` bodies, chunked or not, are decoded by :class:`Decompressor`.

:func:`body_chunks` puts the two together for a ``urllib3`` response, whatever its version.
"""

from __future__ import annotations

import functools
import http.client
import io
import zlib
from typing import Any, Callable, Iterable, Iterator, Optional

import urllib3

from .._constants import STREAM_READ_SIZE
from ..errors import StreamError

_MAX_CHUNK_LINE = 65536  # http.client's limit on a line
_MAX_CHUNK_READ = 1 << 20  # a larger chunk is read in pieces: memory only for bytes that came
_IDENTITY = ("", "identity")


def _read_large(read: Callable[[int], bytes], size: int) -> bytes:
    pieces = []
    while size > 0:
        piece = read(min(size, _MAX_CHUNK_READ))
        if not piece:
            break
        pieces.append(piece)
        size -= len(piece)
    return b"".join(pieces)


def read_chunked(fp: io.BufferedReader) -> Iterator[bytes]:
    """The data of each chunk of an HTTP/1.1 chunked body, read from the connection's file.

    It stops after the terminating chunk and its trailer, leaving what follows unread.
    A body that ends early or breaks the chunked format raises ``http.client.IncompleteRead``
    or ``urllib3.exceptions.ProtocolError``.
    """
    readline = fp.readline
    read = fp.read
    while True:
        line = readline(_MAX_CHUNK_LINE + 1)
        if line[-1:] != b"\n":  # the body ended inside the line, or the line is over the limit
            if len(line) <= _MAX_CHUNK_LINE:
                raise urllib3.exceptions.ProtocolError("Response ended prematurely")
            raise urllib3.exceptions.ProtocolError(f"invalid chunk size line {line[:40]!r}")
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            size = -1
        if size <= 0:
            if size < 0:
                raise urllib3.exceptions.ProtocolError(f"invalid chunk size line {line[:40]!r}")
            break
        data = read(size) if size <= _MAX_CHUNK_READ else _read_large(read, size)
        if len(data) < size:
            raise http.client.IncompleteRead(data, size - len(data))
        if read(2) != b"\r\n":
            raise urllib3.exceptions.ProtocolError("a chunk did not end with CRLF")
        yield data
    while True:  # the trailer section, up to its empty line
        line = readline(_MAX_CHUNK_LINE + 1)
        if line in (b"\r\n", b"\n", b""):
            return
        if len(line) > _MAX_CHUNK_LINE:
            raise urllib3.exceptions.ProtocolError("a trailer line is too long")


class Decompressor:
    """Decodes a ``gzip`` or ``deflate`` body piece by piece, never more than
    ``STREAM_READ_SIZE`` bytes of output at a time (a small body cannot make a huge one at once)."""

    def __init__(self, encoding: str) -> None:
        if encoding in ("gzip", "x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
        elif encoding == "deflate":
            self._wbits = zlib.MAX_WBITS  # zlib-wrapped, as the RFC says; raw deflate is tried too
        else:
            raise StreamError(
                f"The reply is compressed with {encoding!r}, which qvq-sdk cannot decode (it asks for an "
                "uncompressed stream; a proxy may have compressed it). Retry, or bypass the proxy."
            )
        self._encoding = encoding
        self._inflate = zlib.decompressobj(self._wbits)
        self._started = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of the next piece of the body."""
        inflate = self._inflate
        while True:
            try:
                out = inflate.decompress(data, STREAM_READ_SIZE)
            except zlib.error as exc:
                if self._started or self._wbits != zlib.MAX_WBITS:
                    raise self._corrupt(exc) from None
                self._wbits = -zlib.MAX_WBITS  # a bare deflate stream, as some servers send
                inflate = self._inflate = zlib.decompressobj(self._wbits)
                continue
            self._started = True
            if out:
                yield out
            if inflate.eof:  # another gzip member may follow
                data = inflate.unused_data
                if not data:
                    return
                inflate = self._inflate = zlib.decompressobj(self._wbits)
                continue
            data = inflate.unconsumed_tail
            if not data and len(out) < STREAM_READ_SIZE:  # else output may still be pending
                return

    def _corrupt(self, exc: zlib.error) -> StreamError:
        return StreamError(f"The reply's {self._encoding} data is corrupt ({exc}). Retry the request.")


def _decoded(pieces: Iterable[bytes], decompressor: Decompressor) -> Iterator[bytes]:
    decode = decompressor.decode
    for piece in pieces:
        yield from decode(piece)


def framed_chunks(raw: Any) -> Iterator[bytes]:
    """The body's bytes as they arrive, still content-coded, from a urllib3 response."""
    if raw.chunked and raw.supports_chunked_reads():
        fp = getattr(raw._fp, "fp", None)
        if isinstance(fp, io.BufferedReader) and raw.chunk_left is None:
            return read_chunked(fp)
        return iter(raw.read_chunked(decode_content=False))
    read1 = raw.read1 if hasattr(raw, "read1") else raw._fp.read1  # urllib3 2 / http.client under 1.26
    return iter(functools.partial(read1, STREAM_READ_SIZE), b"")


def content_encoding(raw: Any) -> Optional[str]:
    """The body's content coding, or None when it is not coded."""
    encoding = (raw.headers.get("Content-Encoding") or "").strip().lower()
    return None if encoding in _IDENTITY else encoding


def body_chunks(raw: Any) -> Iterator[bytes]:
    """The body's decoded bytes, each piece as soon as it arrives, from a urllib3 response."""
    chunks = framed_chunks(raw)
    encoding = content_encoding(raw)
    return chunks if encoding is None else _decoded(chunks, Decompressor(encoding))
