"""Server-sent events from a stream of byte chunks, parsed by ``sseclient-py``.

``sseclient-py`` splits events correctly at ``\\n``, ``\\r\\n`` and ``\\r`` line ends,
but it grows an unfinished line by ``bytes +=`` for every chunk, which is quadratic for
a long event line that arrives in many small chunks (Gradio's call protocol sends lines
of over 100 KB). So it is fed whole lines only: :func:`whole_lines` joins the pieces of
a line once, when its end arrives. It also drops a UTF-8 byte-order mark at the start of
the stream, which would otherwise hide the first event's field name.
"""

from __future__ import annotations

from typing import Iterable, Iterator, List, Tuple

import sseclient

from .errors import StreamError

_BOM = b"\xef\xbb\xbf"


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


def events(chunks: Iterable[bytes]) -> Iterator[sseclient.Event]:
    """sseclient-py's events (``.event``, ``.data``) from the byte stream. Iterating them
    raises ``UnicodeDecodeError`` on bytes that are not UTF-8: see :func:`not_utf8`."""
    return sseclient.SSEClient(whole_lines(chunks)).events()


def not_utf8(exc: UnicodeDecodeError) -> StreamError:
    """The error for an event stream that is not UTF-8 text."""
    return StreamError(
        f"The Space sent bytes that are not UTF-8 text ({exc.reason} at byte {exc.start} "
        "of a line); the stream is corrupt. Retry the request."
    )


def iter_events(chunks: Iterable[bytes]) -> Iterator[Tuple[str, str]]:
    """``(event name, data)`` for each server-sent event in the byte stream."""
    try:
        for event in events(chunks):
            yield event.event, event.data
    except UnicodeDecodeError as exc:
        raise not_utf8(exc) from None
