"""The event stream's content (complete, cut off, malformed, app errors) and cancelling it."""

import gc
import http.client

import pytest
from httpkit import (
    ANSWER,
    ANSWER_PIECES,
    BASE,
    ClosingBody,
    FakeSpace,
    call_events,
    call_sse,
    queue_error_sse,
    queue_sse,
    sse_data_lines,
)

from qvq_sdk import (
    APIConnectionError,
    AppError,
    Done,
    QuotaExceededError,
    QVQClient,
    QVQError,
    StreamError,
    TextUpdate,
)

PROTOCOLS = ["queue", "call"]


def serve(rsps, protocol, queue_body=None, call_body=b"", headers=None):
    """A Space whose stream answers the given body (queue: a function of the event id)."""
    space = FakeSpace(rsps).config()
    if protocol == "queue":
        space.queue(queue_body, headers=headers)
    else:
        space.call(call_body, headers=headers)
    return space, QVQClient(base_url=BASE, protocol=protocol)


def cut_off(protocol):
    """Bodies that stop before the completion message (each protocol's way)."""
    if protocol == "queue":
        return {"queue_body": lambda event_id: queue_sse(event_id, complete=False)}
    return {"call_body": call_sse(complete=False)}


# -- complete and cut-off streams -----------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stream_cut_off_before_completion_is_an_error_not_a_short_answer(rsps, protocol):
    space, client = serve(rsps, protocol, **cut_off(protocol))

    with pytest.raises(StreamError) as info:
        client.complete("hi")

    assert "cut off" in str(info.value)
    assert str(len(ANSWER)) + " characters" in str(info.value)
    assert space.stream_bodies[0].close_calls >= 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_chat_yields_what_arrived_then_raises_when_cut_off(rsps, protocol):
    _, client = serve(rsps, protocol, **cut_off(protocol))
    received = []

    with pytest.raises(StreamError):
        for delta in client.chat("hi"):
            received.append(delta)

    assert received == ANSWER_PIECES


def test_a_queue_stream_ending_without_close_stream_or_completion_is_an_error(rsps):
    _, client = serve(rsps, "queue", queue_body=lambda e: queue_sse(e, complete=False, close_stream=False))

    with pytest.raises(StreamError):
        client.complete("hi")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_empty_stream_is_an_error(rsps, protocol):
    _, client = serve(rsps, protocol, queue_body=lambda e: b"", call_body=b"\n")

    with pytest.raises(StreamError):
        client.complete("hi")


def test_a_server_stop_is_reported(rsps):
    def body(event_id):
        return sse_data_lines([{"msg": "process_starts", "event_id": event_id}, {"msg": "server_stopped"}])

    _, client = serve(rsps, "queue", queue_body=body)

    with pytest.raises(StreamError) as info:
        client.complete("hi")
    assert "stopped" in str(info.value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_heartbeats_and_unknown_messages_are_ignored(rsps, protocol):
    def queue_body(event_id):
        heartbeat = sse_data_lines([{"msg": "heartbeat", "event_id": None}, {"msg": "log", "log": "x"}])
        return heartbeat + queue_sse(event_id)

    call_body = b"event: heartbeat\ndata: null\n\n" + call_sse()
    _, client = serve(rsps, protocol, queue_body=queue_body, call_body=call_body)

    assert list(client.chat("hi")) == ANSWER_PIECES


def test_queue_messages_of_another_event_are_ignored(rsps):
    def body(event_id):
        return queue_sse("someone-else", ["WRONG"]) + queue_sse(event_id)

    _, client = serve(rsps, "queue", queue_body=body)

    assert client.complete("hi") == ANSWER


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_crlf_line_ends_and_a_byte_order_mark_are_fine(rsps, protocol):
    _, client = serve(
        rsps,
        protocol,
        queue_body=lambda e: b"\xef\xbb\xbf" + queue_sse(e).replace(b"\n", b"\r\n"),
        call_body=b"\xef\xbb\xbf" + call_sse().replace(b"\n", b"\r\n"),
    )

    assert client.complete("hi") == ANSWER


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unicode_answers_survive(rsps, protocol):
    pieces = ["Café ", "😀", " 北京"]
    _, client = serve(rsps, protocol, queue_body=lambda e: queue_sse(e, pieces), call_body=call_sse(pieces))

    assert list(client.chat("hi")) == pieces


def test_a_rewrite_is_yielded_as_the_whole_new_text(rsps):
    def body(event_id):
        return sse_data_lines(
            [
                {"msg": "process_generating", "event_id": event_id, "output": {"data": ["Thinking..."]}},
                {
                    "msg": "process_generating",
                    "event_id": event_id,
                    "output": {"data": [[["replace", [], "Answer: 42"]]]},
                },
                {"msg": "process_completed", "event_id": event_id, "output": {"data": ["Answer: 42"]}, "success": True},
            ]
        )

    _, client = serve(rsps, "queue", queue_body=body)

    updates = [e for e in client.events("hi") if isinstance(e, TextUpdate)]
    assert [(u.delta, u.replaced) for u in updates] == [("Thinking...", False), ("Answer: 42", True)]


# -- malformed streams ----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_event_with_invalid_json_is_a_stream_error(rsps, protocol):
    def queue_body(event_id):
        return queue_sse(event_id, ["Hel"], complete=False, close_stream=False) + b'data: {"msg": "process_gen\n\n'

    call_body = b'event: generating\ndata: ["Hel"]\n\nevent: generating\ndata: ["Hello\n\n'
    _, client = serve(rsps, protocol, queue_body=queue_body, call_body=call_body)
    received = []

    with pytest.raises(StreamError) as info:
        for delta in client.chat("hi"):
            received.append(delta)

    assert "not valid JSON" in str(info.value)
    assert received == ["Hel"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bytes_that_are_not_utf8_are_a_stream_error(rsps, protocol):
    _, client = serve(
        rsps,
        protocol,
        queue_body=lambda e: b'data: {"msg": "\xff\xfe"}\n\n',
        call_body=b"event: generating\ndata: \xff\n\n",
    )

    with pytest.raises(StreamError):
        client.complete("hi")


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "content_type", ["text/html; charset=utf-8", "application/json", None], ids=["html", "json", "none"]
)
def test_a_reply_that_is_not_an_event_stream_is_a_stream_error(rsps, protocol, content_type):
    headers = {"Content-Type": content_type} if content_type else {"Content-Type": ""}
    body = b"<html><body>Your space is in error, check its status</body></html>"
    space, client = serve(rsps, protocol, queue_body=lambda e: body, call_body=body, headers=headers)

    with pytest.raises(StreamError) as info:
        client.complete("hi")

    assert "event stream" in str(info.value)
    assert space.stream_bodies[0].close_calls >= 1


class BreakingBody(ClosingBody):
    """Hands out its first ``events`` events, then fails like a connection reset mid-body."""

    def __init__(self, data, events):
        super().__init__(data)
        self.events_left = events

    def read1(self, size=-1):
        if self.events_left == 0:
            raise http.client.IncompleteRead(b"", 10)
        self.events_left -= 1
        return super().read1(size)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_huge_reply_that_is_not_an_event_stream_is_not_read_whole(rsps, protocol):
    """Like an error body (ERROR_BODY_READ_LIMIT), a wrong reply is only sampled for the message."""
    huge = b"<html><body>" + b"Internal error, please wait. " * 200_000 + b"</body></html>"
    space, client = serve(
        rsps, protocol, queue_body=lambda e: huge, call_body=huge, headers={"Content-Type": "text/html"}
    )

    with pytest.raises(StreamError) as info:
        client.complete("hi")

    assert len(str(info.value)) < 400
    body = space.stream_bodies[0]
    assert body.close_calls >= 1
    assert len(huge) - body.unread <= 1024 * 1024, "read %d bytes of a non-SSE reply" % (len(huge) - body.unread)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_connection_broken_mid_stream_is_a_connection_error(rsps, protocol):
    space, client = serve(
        rsps,
        protocol,
        queue_body=lambda event_id: BreakingBody(queue_sse(event_id), events=3),  # estimation, start, "Hel"
        call_body=lambda: BreakingBody(call_sse(), events=1),
    )
    received = []

    with pytest.raises(APIConnectionError) as info:
        for delta in client.chat("hi"):
            received.append(delta)

    assert received == ["Hel"]
    assert "middle of the answer" in str(info.value)
    assert space.stream_bodies[0].close_calls >= 1


# -- app errors -----------------------------------------------------------------------------


def test_queue_app_error_keeps_its_message(rsps):
    _, client = serve(rsps, "queue", queue_body=lambda e: queue_error_sse(e, "The image is too dark to read."))

    with pytest.raises(AppError) as info:
        client.complete("hi")

    assert type(info.value) is AppError
    assert info.value.message == "The image is too dark to read."
    assert "The image is too dark to read." in str(info.value)


def test_queue_quota_error_says_when_to_retry(rsps):
    message = (
        "You have exceeded your GPU quota (60s left vs. 120s requested). Please retry in 0:03:12 "
        '<a href="https://huggingface.co/join">Create a free account</a>'
    )
    _, client = serve(rsps, "queue", queue_body=lambda e: queue_error_sse(e, message))

    with pytest.raises(QuotaExceededError) as info:
        client.complete("hi")

    assert info.value.retry_after == 192.0
    assert "<a" not in str(info.value)


def test_queue_hidden_app_error(rsps):
    _, client = serve(rsps, "queue", queue_body=lambda e: queue_error_sse(e, None))

    with pytest.raises(AppError) as info:
        client.complete("hi")

    assert info.value.message is None
    assert "show_error" in str(info.value)


def test_queue_unknown_session_is_a_stream_error(rsps):
    def body(event_id):
        return sse_data_lines(
            [
                {
                    "msg": "unexpected_error",
                    "message": "404: Session not found.",
                    "session_not_found": True,
                    "success": False,
                }
            ]
        )

    _, client = serve(rsps, "queue", queue_body=body)

    with pytest.raises(StreamError) as info:
        client.complete("hi")
    assert "session" in str(info.value)


def test_call_error_null_points_to_the_queue_protocol(rsps):
    body = call_events([("generating", ["Hel"]), ("error", None)])
    _, client = serve(rsps, "call", call_body=body)

    with pytest.raises(AppError) as info:
        client.complete("hi")

    assert info.value.message is None
    assert 'protocol="queue"' in str(info.value)


def test_call_error_with_a_gradio_6_message_keeps_it(rsps):
    body = call_events([("error", {"error": "Bad prompt", "duration": 10, "visible": True, "title": "Error"})])
    _, client = serve(rsps, "call", call_body=body)

    with pytest.raises(AppError) as info:
        client.complete("hi")

    assert info.value.message == "Bad prompt"


def test_call_unknown_event_is_a_stream_error(rsps):
    _, client = serve(rsps, "call", call_body=call_events([("error", "404: Session not found.")]))

    with pytest.raises(StreamError):
        client.complete("hi")


# -- closing the stream ---------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_finished_chat_releases_its_stream(rsps, protocol):
    space, client = serve(rsps, protocol)

    assert client.complete("hi") == ANSWER
    assert list(client.chat("hi")) == ANSWER_PIECES
    assert [body.close_calls >= 1 for body in space.stream_bodies] == [True, True]


def test_the_queue_stream_is_closed_right_after_completion(rsps):
    """Trailing messages are not waited for (a real server may keep the stream open)."""
    space, client = serve(rsps, "queue", queue_body=lambda e: queue_sse(e) + b"data: {broken\n\n")

    events = client.events("hi")
    for event in events:
        if isinstance(event, Done):
            break
    assert event == Done(ANSWER)
    with pytest.raises(StopIteration):
        next(events)
    assert space.stream_bodies[0].close_calls >= 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_gen_close_closes_the_response(rsps, protocol):
    space, client = serve(rsps, protocol)

    chat = client.chat("hi")
    assert next(chat) == "Hel"
    (body,) = space.stream_bodies
    assert body.close_calls == 0
    assert body.unread > 0  # the client reads as events arrive, not the whole body first
    chat.close()

    assert body.close_calls >= 1
    assert body.closed


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_breaking_out_of_the_loop_closes_the_response(rsps, protocol):
    space, client = serve(rsps, protocol)

    for delta in client.chat("hi"):
        assert delta == "Hel"
        break
    gc.collect()  # on CPython the abandoned generator is already closed; elsewhere, collect it

    assert space.stream_bodies[0].close_calls >= 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_closing_the_events_generator_closes_the_response(rsps, protocol):
    space, client = serve(rsps, protocol)

    events = client.events("hi")
    next(e for e in events if isinstance(e, TextUpdate))
    events.close()

    assert space.stream_bodies[0].close_calls >= 1


def test_closing_a_chat_before_it_starts_sends_nothing(space, rsps):
    space.config().queue()
    chat = QVQClient(base_url=BASE).chat("hi")
    chat.close()

    assert len(rsps.calls) == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_client_close_aborts_a_stream_under_way(rsps, protocol):
    space, client = serve(rsps, protocol)
    chat = client.chat("hi")
    assert next(chat) == "Hel"

    client.close()

    assert space.stream_bodies[0].close_calls >= 1
    with pytest.raises(QVQError):
        list(chat)
    with pytest.raises(QVQError):
        client.chat("again")


@pytest.mark.parametrize("method", ["events", "chat"])
def test_the_response_is_closed_when_the_stream_raises(rsps, method):
    space, client = serve(rsps, "queue", queue_body=lambda e: queue_error_sse(e, "boom"))

    chat = getattr(client, method)("hi")  # held: its closing cannot wait for garbage collection
    gc.disable()
    try:
        with pytest.raises(AppError):
            for _ in chat:
                pass
        (body,) = space.stream_bodies
        assert body.close_calls >= 1  # closed by the time the error reached the caller
        assert body.closed
    finally:
        gc.enable()
