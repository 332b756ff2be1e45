"""Server-sent events from a stream of byte chunks: ``sseclient-py``'s parsing, with a fast
path for the one shape servers send nearly always.

``sseclient-py`` splits events correctly at ``\\n``, ``\\r\\n`` and ``\\r`` line ends,
but it grows an unfinished line by ``bytes +=`` for every chunk, which is quadratic for
a long event line that arrives in many small chunks (Gradio's call protocol sends lines
of over 100 KB). So it is fed whole lines only: :func:`whole_lines` joins the pieces of
a line once, when its end arrives. It also drops a UTF-8 byte-order mark at the start of
the stream, which would otherwise hide the first event's field name.

One field the format does not have is read too: ``error:``, which llama.cpp's server sends
when it fails mid-stream, becomes an event named ``error``.

Nearly every event Gradio and OpenAI-compatible servers send is one chunk holding exactly
``data: <one line>\\n\\n``. :func:`events` reads such a chunk itself (sseclient-py spends
about 2 µs of Python per event on it: as much as decoding the JSON inside) and hands every
other chunk, from there to the end of the next event, to sseclient-py. Both give the same
``(event name, data)`` pairs; ``tests/unit/test_sse.py`` checks that on random streams cut
in random places.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator, List, Tuple

import sseclient

from .errors import StreamError

_BOM = b"\xef\xbb\xbf"
_EVENT_ENDS = (b"\n\n", b"\r\r", b"\r\n\r\n")
# llama.cpp's server reports a failure with an `error:` field, which the SSE format ignores:
# read as an event named "error" (what its other fields would be called in a browser).
_ERROR_FIELD = re.compile(rb"(^|[\r\n])error:")


def whole_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Re-chunks a byte stream so that every chunk ends at a line end (but the last).

    Each chunk is handed on as soon as a line end arrives in it, so an event is never
    held back waiting for more bytes. A UTF-8 byte-order mark at the very start is dropped.
    """
    pending: List[bytes] = []
    head = b""  # the stream's first bytes, while they may still be a BOM
    at_start = True
    for chunk in chunks:
        if at_start:
            head += chunk
            if len(head) < len(_BOM) and _BOM.startswith(head):
                continue
            at_start = False
            chunk = head[len(_BOM) :] if head.startswith(_BOM) else head
        if not pending and chunk[-1:] == b"\n":  # the usual case: one whole event
            yield chunk
            continue
        cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r")) + 1
        if not cut:
            if chunk:
                pending.append(chunk)
            continue
        if pending:
            pending.append(chunk[:cut])
            yield b"".join(pending)
            pending = []
        else:
            yield chunk if cut == len(chunk) else chunk[:cut]
        if cut < len(chunk):
            pending.append(chunk[cut:])
    if at_start and head:
        pending.append(head)
    if pending:
        yield b"".join(pending)


def _last_event_end(block: bytes) -> int:
    """Where the last whole event of ``block`` ends, as sseclient-py splits it (0: none does):
    line by line, an event ends where the text since the last one ends with an empty line."""
    end = position = 0
    tail = b""  # the last bytes since the last event's end: all that endswith() looks at
    for line in block.splitlines(True):
        position += len(line)
        tail = (tail + line)[-4:]
        if tail.endswith(_EVENT_ENDS):
            end = position
            tail = b""
    return end


def _parsed(block: bytes) -> Iterator[Tuple[str, str]]:
    if b"error:" in block:
        block = _ERROR_FIELD.sub(rb"\1event: error\ndata:", block)
    for event in sseclient.SSEClient(iter((block,))).events():
        yield event.event, event.data


def events(chunks: Iterable[bytes]) -> Iterator[Tuple[str, str]]:
    """``(event name, data)`` for each server-sent event in the byte stream. Iterating raises
    ``UnicodeDecodeError`` on bytes that are not UTF-8: see :func:`not_utf8`."""
    pending: List[bytes] = []  # the chunks of an event that is not the simple shape
    for chunk in whole_lines(chunks):
        if (
            not pending
            and chunk[:5] == b"data:"
            and chunk[-2:] == b"\n\n"
            and chunk.count(b"\n") == 2
            and b"\r" not in chunk
        ):
            value = chunk[6:-2] if chunk[5:6] == b" " else chunk[5:-2]
            yield "message", value.decode("utf-8")
            continue
        pending.append(chunk)
        if chunk[:1] not in (b"\n", b"\r") and not any(end in chunk for end in _EVENT_ENDS):
            continue  # no event ends in it
        block = b"".join(pending)
        cut = _last_event_end(block)
        if cut:  # sseclient-py reads the slow chunks up to the end of their last whole event
            pending = [block[cut:]] if cut < len(block) else []
            yield from _parsed(block[:cut])
        else:
            pending = [block]
    if pending:
        yield from _parsed(b"".join(pending))


def not_utf8(exc: UnicodeDecodeError, server: str = "the Space") -> StreamError:
    """The error for an event stream that is not UTF-8 text."""
    return StreamError(
        f"{server[0].upper()}{server[1:]} sent bytes that are not UTF-8 text ({exc.reason} at byte "
        f"{exc.start} of a line); the stream is corrupt. Retry the request."
    )


def iter_events(chunks: Iterable[bytes]) -> Iterator[Tuple[str, str]]:
    """:func:`events`, with bytes that are not UTF-8 raised as a :class:`StreamError`."""
    try:
        yield from events(chunks)
    except UnicodeDecodeError as exc:
        raise not_utf8(exc) from None
