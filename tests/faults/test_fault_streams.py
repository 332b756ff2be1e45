"""Event streams that are odd or wrong on the wire: bad JSON, shapes and bytes, unknown
messages, a byte-order mark, other line ends, one byte per TCP write, a 10 MB event.

Odd but valid streams must give exactly the events of the plain stream; wrong ones a
StreamError, never another exception and never a short answer.
"""

from __future__ import annotations

import json

import pytest
from faultspace import EVENT_ID, WIRES, call_event, event_stream, queue_event

from qvq_sdk import Done, ProcessingStarted, QueuePosition, StreamError, TextUpdate

PROTOCOLS = ["queue", "call"]


def expected_events(protocol, pieces=("Hel", "lo", " world")):
    events = []
    if protocol == "queue":
        events += [QueuePosition(rank=0, queue_size=1, eta=0.1), ProcessingStarted(eta=0.1)]
    text = ""
    for piece in pieces:
        text += piece
        events.append(("text", piece, text))
    events.append(Done(text))
    return events


def comparable(events):
    """TextUpdates as (kind, delta, text) so that lists compare by value."""
    return [("text", e.delta, e.text) if isinstance(e, TextUpdate) else e for e in events]


# -- valid streams in unusual forms ----------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_byte_order_mark_before_the_first_event_loses_nothing(space, make_client, protocol):
    wire = WIRES[protocol]
    events = wire.events()
    space.on(wire.stream, event_stream(b"\xef\xbb\xbf" + events[0], *events[1:]))
    assert comparable(make_client(protocol).events("hi")) == expected_events(protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_byte_order_mark_in_its_own_tcp_writes(space, make_client, protocol):
    wire = WIRES[protocol]
    space.on(wire.stream, event_stream(b"\xef", b"\xbb", b"\xbf", *wire.events(), byte_by_byte=True))
    assert comparable(make_client(protocol).events("hi")) == expected_events(protocol)


@pytest.mark.parametrize("line_end", [b"\r\n", b"\r"], ids=["CRLF", "CR"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_other_line_ends_give_the_same_events(space, make_client, protocol, line_end):
    wire = WIRES[protocol]
    space.on(wire.stream, event_stream(*[event.replace(b"\n", line_end) for event in wire.events()]))
    assert comparable(make_client(protocol).events("hi")) == expected_events(protocol)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_byte_per_tcp_write(space, make_client, protocol, chunked):
    wire = WIRES[protocol]
    pieces = ("Voilà", " 🙂", " fini")  # multi-byte characters split across writes
    space.on(wire.stream, event_stream(*wire.events(pieces), byte_by_byte=True, chunked=chunked))
    assert comparable(make_client(protocol).events("hi")) == expected_events(protocol, pieces)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_byte_per_tcp_write_for_every_request(space, make_client, protocol):
    from faultspace import config_document, json_reply

    def slow(reply):
        def one_byte(exchange):
            exchange.byte_by_byte = True
            reply(exchange)

        return one_byte

    wire = WIRES[protocol]
    space.on("config", slow(json_reply(config_document())))
    space.on(wire.start, slow(json_reply({"event_id": EVENT_ID})))
    space.on(wire.stream, event_stream(*wire.events(), byte_by_byte=True))
    assert make_client(protocol).complete("hi") == "Hello world"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_10_megabyte_event(space, make_client, protocol):
    wire = WIRES[protocol]
    big = "0123456789abcdé" * (10 * 1024 * 1024 // 16)  # 10 MB of UTF-8 on the queue protocol
    space.on(wire.stream, event_stream(wire.text_event("Hel"), wire.text_event(big), *wire.completion(big)))
    chunks = list(make_client(protocol).chat("hi"))
    assert chunks[0] == "Hel"
    assert chunks[1] == big and len(chunks) == 2  # "big" rewrote "Hel": yielded whole
    assert make_client(protocol).complete("hi") == big


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unknown_message_kinds_are_ignored(space, make_client, protocol):
    wire = WIRES[protocol]
    events = wire.events()
    if protocol == "queue":
        odd = [
            queue_event({"msg": "process_streaming", "event_id": EVENT_ID, "output": {}}),
            queue_event({"msg": "a_future_kind", "event_id": EVENT_ID, "log": "loading", "level": "info"}),
            queue_event({"msg": "a_kind_from_gradio_9", "event_id": EVENT_ID, "anything": [1, {"x": None}]}),
            queue_event({"msg": "heartbeat", "event_id": None}),
        ]
    else:
        odd = [
            call_event("heartbeat", None),
            b"event: progress\ndata: not even json\n\n",
            b"event: a_kind_from_gradio_9\ndata: {}\n\n",
            b": a comment line\n\n",
        ]
    mixed = [events[0], *odd[:2], *events[1:-1], *odd[2:], events[-1]]
    space.on(wire.stream, event_stream(*mixed))
    assert comparable(make_client(protocol).events("hi")) == expected_events(protocol)


# -- wrong streams ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_invalid_json_in_an_event_is_a_stream_error(space, make_client, protocol):
    wire = WIRES[protocol]
    space.on(
        wire.stream,
        event_stream(wire.text_event("Hel"), wire.raw_event(b'{"msg": "process_gen'), *wire.completion("x")),
    )
    with pytest.raises(StreamError) as info:
        make_client(protocol).complete("hi")
    assert "not valid JSON" in str(info.value)


SHAPES = {
    "queue": [
        pytest.param(b"[1, 2, 3]", id="a-list"),
        pytest.param(b'"process_completed"', id="a-string"),
        pytest.param(b'{"event_id": "x"}', id="no-msg"),
        pytest.param(b'{"msg": 7}', id="msg-not-a-string"),
        pytest.param(
            json.dumps({"msg": "process_generating", "event_id": EVENT_ID, "output": {"data": []}}).encode(),
            id="no-output-data",
        ),
        pytest.param(
            json.dumps(
                {"msg": "process_generating", "event_id": EVENT_ID, "output": {"data": [{"path": "/etc/passwd"}]}}
            ).encode(),
            id="a-file-not-text",
        ),
        pytest.param(
            json.dumps(
                {"msg": "process_generating", "event_id": EVENT_ID, "output": {"data": [[["append", [], 5]]]}}
            ).encode(),
            id="append-a-number",
        ),
        pytest.param(
            json.dumps(
                {"msg": "process_generating", "event_id": EVENT_ID, "output": {"data": [[["move", [], "x"]]]}}
            ).encode(),
            id="unknown-diff-op",
        ),
        pytest.param(
            json.dumps({"msg": "process_completed", "event_id": EVENT_ID, "output": "done", "success": True}).encode(),
            id="output-a-string",
        ),
    ],
    "call": [
        pytest.param(b'{"a": 1}', id="an-object"),
        pytest.param(b"[]", id="empty-list"),
        pytest.param(b"42", id="a-number"),
        pytest.param(b'[{"path": "/etc/passwd"}]', id="a-file-not-text"),
        pytest.param(b"[[1, 2]]", id="a-list-not-text"),
    ],
}
SHAPE_CASES = [
    pytest.param(protocol, *case.values, id="%s-%s" % (protocol, case.id))
    for protocol, cases in SHAPES.items()
    for case in cases
]


@pytest.mark.parametrize("protocol, data", SHAPE_CASES)
def test_a_json_shape_it_does_not_expect_is_a_stream_error(space, make_client, protocol, data):
    wire = WIRES[protocol]
    space.on(wire.stream, event_stream(wire.text_event("Hel"), wire.raw_event(data), *wire.completion("x")))
    with pytest.raises(StreamError):
        make_client(protocol).complete("hi")


@pytest.mark.parametrize(
    "bad", [b"\xff\xfe", b"caf\xe9", b"\xed\xa0\x80", b"\xc3"], ids=["ff-fe", "latin-1", "surrogate", "truncated"]
)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bytes_that_are_not_utf8_are_a_stream_error(space, make_client, protocol, bad):
    wire = WIRES[protocol]
    space.on(
        wire.stream, event_stream(wire.text_event("Hel"), wire.raw_event(b'["' + bad + b'"]'), *wire.completion("x"))
    )
    chunks = []
    with pytest.raises(StreamError) as info:
        for chunk in make_client(protocol).chat("hi"):
            chunks.append(chunk)
    assert chunks == ["Hel"]
    assert "UTF-8" in str(info.value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_deeply_nested_json_is_a_stream_error(space, make_client, protocol):
    wire = WIRES[protocol]
    space.on(wire.stream, event_stream(wire.text_event("Hel"), wire.raw_event(b"[" * 100000), *wire.completion("x")))
    with pytest.raises(StreamError):
        make_client(protocol).complete("hi")


def test_a_number_too_large_for_a_float_is_not_a_crash(space, make_client):
    huge = b"9" * 400  # valid JSON; float() of it overflows
    estimation = b'{"msg": "estimation", "event_id": "%s", "rank": 0, "rank_eta": %s}' % (EVENT_ID.encode(), huge)
    events = WIRES["queue"].events()
    space.on("queue/data", event_stream(b"data: " + estimation + b"\n\n", *events[1:]))
    events = make_client("queue").events("hi")
    first = next(events)
    assert isinstance(first, QueuePosition)
    assert first.eta is None or isinstance(first.eta, float)
    assert [e for e in events if isinstance(e, Done)] == [Done("Hello world")]
