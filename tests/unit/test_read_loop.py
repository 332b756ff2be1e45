"""qvq_sdk._read_loop.read_events: the one read loop, driven with a fake body and a fake decoder:
a reply that is not an event stream, a completed answer (the token finished before the Done
reaches the caller, the connection given back), a cancel while the caller holds an event or
while a read blocks (Cancelled, the body aborted and closed), bytes that are not UTF-8, and
what the loop leaves registered with the token."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from qvq_sdk._cancel import CLOSED, STOPPED, Cancelled, CancelToken
from qvq_sdk._events import Done, TextUpdate
from qvq_sdk._read_loop import read_events
from qvq_sdk._transport.streamed_body import ABORTED
from qvq_sdk.errors import APIConnectionError, AppError, StreamError

GUARD = 5.0
BLOCK = object()  # in a FakeBody's chunks: a read that blocks until the body is aborted


def sse(name, data):
    return f"event: {name}\ndata: {data}\n\n".encode()


class FakeBody:
    """What the loop needs of a StreamedBody, recording what is done to it."""

    def __init__(self, chunks=(), content_type="text/event-stream", excerpt="", cancel=None):
        self.url = "https://space.example/queue/data"
        self.content_type = content_type
        self.received = 0
        self.chunks_read = 0
        self.calls = []  # "abort", "finish", "close", in order
        self.registered_at_end = None  # how many aborts the token held when the body ended
        self._chunks = list(chunks)
        self._excerpt = excerpt
        self._cancel = cancel
        self._aborted = threading.Event()
        self.blocked = threading.Event()

    def excerpt(self):
        return self._excerpt

    def chunks(self):
        for chunk in self._chunks:
            if chunk is BLOCK:
                self.blocked.set()
                assert self._aborted.wait(GUARD), "the body was never aborted"
                raise APIConnectionError(ABORTED)
            if isinstance(chunk, BaseException):
                raise chunk
            if callable(chunk):  # something that happens during the read
                chunk()
                continue
            self.chunks_read += 1
            self.received += len(chunk)
            yield chunk

    def _ended(self, how):
        self.calls.append(how)
        if self._cancel is not None:
            self.registered_at_end = len(self._cancel._aborts)

    def finish(self):
        self._ended("finish")

    def close(self):
        self._ended("close")

    def abort(self):
        self.calls.append("abort")
        self._aborted.set()


class FakeDecoder:
    """Event ``text`` → a TextUpdate; ``done`` → a TextUpdate and the Done (complete);
    ``fail`` → the app's error. The end of the stream completes the answer if
    ``complete_at_end``, else is an error."""

    def __init__(self, complete_at_end=False):
        self.done = False
        self.fed = []
        self.complete_at_end = complete_at_end

    def feed(self, name, data):
        self.fed.append((name, data))
        if name == "done":
            self.done = True
            return [TextUpdate(data), Done(data)]
        if name == "fail":
            raise AppError(f"the app failed: {data}", message=data)
        return [TextUpdate(data)]

    def end_of_stream(self):
        if self.complete_at_end:
            self.done = True
            return [Done("at the end")]
        raise StreamError("The stream ended before the answer was complete.")


def loop(body, decoder=None, cancel=None, server="the Space"):
    cancel = cancel or CancelToken()
    return read_events(body, decoder or FakeDecoder(), cancel, server), cancel


@pytest.mark.parametrize(
    "server, content_type, said",
    [
        ("the Space", "text/html; charset=utf-8", "The Space answered with text/html; charset=utf-8"),
        ("the server", "application/json", "The server answered with application/json"),
        ("the server", "", "The server answered with no content type"),
    ],
)
def test_a_reply_that_is_not_an_event_stream(server, content_type, said):
    body = FakeBody([sse("text", "a")], content_type=content_type, excerpt="<html>Log in</html>")
    events, cancel = loop(body, server=server)
    with pytest.raises(StreamError) as caught:
        next(events)
    assert str(caught.value) == f"{said} instead of an event stream ('<html>Log in</html>')."
    assert body.calls == ["close"]
    assert body.chunks_read == 0
    assert cancel._aborts == {}


def test_an_event_stream_with_parameters_is_one():
    body = FakeBody([sse("done", "x")], content_type="text/event-stream; charset=utf-8")
    events, _ = loop(body)
    assert [type(event) for event in events] == [TextUpdate, Done]


def test_a_completed_answer_finishes_the_token_and_gives_the_connection_back():
    body = FakeBody([sse("text", "a"), sse("done", "ab"), sse("text", "never read")])
    decoder = FakeDecoder()
    events, cancel = loop(body, decoder)
    received = []
    for event in events:
        received.append((event, cancel.finished))
    assert received == [
        (TextUpdate("a"), False),
        (TextUpdate("ab"), True),  # finished before the last batch reaches the caller
        (Done("ab"), True),
    ]
    assert cancel.result == Done("ab")
    assert decoder.fed == [("text", "a"), ("done", "ab")]  # nothing after the completion
    assert body.chunks_read == 2
    assert body.calls == ["finish"]
    cancel.cancel(STOPPED)  # after the answer: changes nothing
    assert cancel.reason is None and body.calls == ["finish"]


def test_a_completion_at_the_end_of_the_stream():
    body = FakeBody([sse("text", "a")])
    events, cancel = loop(body, FakeDecoder(complete_at_end=True))
    assert list(events) == [TextUpdate("a"), Done("at the end")]
    assert cancel.finished and cancel.result == Done("at the end")
    assert body.calls == ["finish"]


def test_a_stream_that_ends_early_is_the_decoder_s_error():
    body = FakeBody([sse("text", "a")])
    events, cancel = loop(body)
    assert next(events) == TextUpdate("a")
    with pytest.raises(StreamError, match="ended before the answer was complete"):
        next(events)
    assert not cancel.finished
    assert body.calls == ["close"]


def test_an_app_error_reaches_the_caller_and_closes_the_body():
    body = FakeBody([sse("text", "a"), sse("fail", "CUDA out of memory")])
    events, _ = loop(body)
    assert next(events) == TextUpdate("a")
    with pytest.raises(AppError, match="CUDA out of memory"):
        next(events)
    assert body.calls == ["close"]


def test_a_broken_read_reaches_the_caller():
    body = FakeBody([sse("text", "a"), APIConnectionError("The connection broke in the middle of the answer")])
    events, _ = loop(body)
    next(events)
    with pytest.raises(APIConnectionError, match="broke"):
        next(events)
    assert body.calls == ["close"]


def test_a_cancel_while_the_caller_holds_an_event():
    body = FakeBody([sse("text", "a"), sse("text", "b"), sse("done", "abc")])
    events, cancel = loop(body)
    assert next(events) == TextUpdate("a")
    cancel.cancel(STOPPED)
    with pytest.raises(Cancelled) as caught:
        next(events)
    assert caught.value.reason == STOPPED
    assert body.calls == ["abort", "close"]  # the token aborted the body; the loop closed it
    assert body.chunks_read == 1
    assert not cancel.finished


def test_a_cancel_while_a_read_blocks_ends_it_at_once():
    body = FakeBody([sse("text", "a"), BLOCK])
    events, cancel = loop(body)
    assert next(events) == TextUpdate("a")
    outcome = []

    def read_on():
        try:
            outcome.append(next(events))
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read_on, daemon=True)
    reader.start()
    assert body.blocked.wait(GUARD)
    started = time.monotonic()
    cancel.cancel(CLOSED)
    reader.join(GUARD)
    assert time.monotonic() - started < 1.0
    assert isinstance(outcome[0], Cancelled) and outcome[0].reason == CLOSED
    assert outcome[0].__suppress_context__  # not "during handling of the aborted read"
    assert body.calls == ["abort", "close"]


def test_a_token_cancelled_before_the_loop_aborts_the_body_at_once():
    body = FakeBody([BLOCK])
    cancel = CancelToken()
    cancel.cancel(STOPPED)
    events, _ = loop(body, cancel=cancel)
    started = time.monotonic()
    with pytest.raises(Cancelled):
        next(events)
    assert time.monotonic() - started < 1.0
    assert body.calls == ["abort", "close"]


def test_closing_the_events_mid_stream_closes_the_body():
    body = FakeBody([sse("text", "a"), sse("text", "b")])
    events, cancel = loop(body)
    next(events)
    events.close()
    assert body.calls == ["close"]
    assert cancel._aborts == {}


def test_closing_the_events_after_the_completion_gives_the_connection_back():
    body = FakeBody([sse("done", "ab")])
    events, _ = loop(body)
    assert next(events) == TextUpdate("ab")  # the Done is still to come
    events.close()
    assert body.calls == ["finish"]


@pytest.mark.parametrize("ending", ["complete", "close", "cancel", "error"])
def test_the_body_s_abort_is_unregistered_before_the_body_ends(ending):
    cancel = CancelToken()
    chunks = [sse("text", "a"), sse("done", "ab") if ending == "complete" else sse("fail", "x")]
    body = FakeBody(chunks, cancel=cancel)
    events, _ = loop(body, cancel=cancel)
    next(events)
    if ending == "close":
        events.close()
    elif ending == "cancel":
        cancel.cancel(STOPPED)
        with pytest.raises(Cancelled):
            next(events)
    elif ending == "error":
        with pytest.raises(AppError):
            next(events)
    else:
        list(events)
    assert body.registered_at_end == 0  # a pooled connection may serve another chat next
    assert cancel._aborts == {}


@pytest.mark.parametrize(
    "bad", [b"data: caf\xe9\n\n", b"event: text\ndata: caf\xe9\n\n", b"event: caf\xe9\ndata: x\n\n"]
)
def test_bytes_that_are_not_utf8_are_a_stream_error(bad):
    body = FakeBody([sse("text", "a"), bad])
    events, _ = loop(body)
    next(events)
    with pytest.raises(StreamError, match="not UTF-8") as caught:
        next(events)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no decode traceback
    assert body.calls == ["close"]


def test_bytes_that_are_not_utf8_after_a_cancel_are_the_cancel():
    cancel = CancelToken()
    body = FakeBody([lambda: cancel.cancel(STOPPED), b"data: caf\xe9\n\n"])  # cancelled during the read
    events, _ = loop(body, cancel=cancel)
    with pytest.raises(Cancelled):
        next(events)
    assert body.calls == ["abort", "close"]


def test_bytes_that_are_not_utf8_name_the_server():
    """The read loop names its server in its errors (``server=``); an OpenAI-compatible
    server is not a Space."""
    body = FakeBody([b"data: caf\xe9\n\n"])
    events, _ = loop(body, server="the server")
    with pytest.raises(StreamError) as caught:
        next(events)
    assert str(caught.value).startswith("The server sent bytes that are not UTF-8 text")


def test_the_debug_line_says_how_the_stream_ended(caplog):
    caplog.set_level(logging.DEBUG, logger="qvq_sdk")
    events, _ = loop(FakeBody([sse("text", "a"), sse("done", "ab")]))
    list(events)
    events, cancel = loop(FakeBody([sse("text", "a"), sse("text", "b")]))
    next(events)
    cancel.cancel(STOPPED)
    with pytest.raises(Cancelled):
        next(events)
    events, _ = loop(FakeBody([sse("fail", "x")]))
    with pytest.raises(AppError):
        next(events)
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("stream ")]
    assert [line.split(": ")[0] for line in lines] == [
        "stream https://space.example/queue/data complete",
        "stream https://space.example/queue/data stopped",
        "stream https://space.example/queue/data failed (AppError)",
    ]
    assert lines[0].split(": ")[1].startswith("2 events, %d bytes" % len(sse("text", "a") + sse("done", "ab")))
