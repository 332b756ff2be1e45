"""Property tests of the whole reading pipeline: bytes → server-sent events → protocol
decoder → typed events → text.

tests/unit/test_sse.py already splits SSE streams every way (bytes → events), and
tests/unit/test_protocol.py fuzzes the decoders on event data (events → text). What is
checked here is the two together, and over a real socket:

- any valid answer, serialised with any line ends, with or without a byte-order mark,
  with heartbeats and unknown messages mixed in, and split into chunks anywhere, gives
  exactly the events that its event data gives when fed straight to the decoder, and
  its deltas rebuild the final text;
- any bytes, and any JSON in any field of a message, give events or a StreamError /
  AppError, and nothing else (no KeyError, TypeError, OverflowError, RecursionError...).

``QVQ_FUZZ_SCALE`` scales the number of examples (default 1; the legacy matrix, which checks
that the same code runs on old Pythons, uses fewer).
"""

from __future__ import annotations

import json
import os

from faultspace import EVENT_ID, FaultSpace, event_stream
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qvq_sdk import AppError, Done, ProcessingStarted, QueuePosition, QVQClient, StreamError, TextUpdate
from qvq_sdk._gradio_decoders import CallDecoder, QueueDecoder
from qvq_sdk._sse import iter_events

# The time limit of tests/faults/conftest.py (a hang detector), raised for this module: its
# time goes into Hypothesis generating 300-500 examples, which on CPython 3.7 (whose newest
# Hypothesis is 6.79) takes 15-30 s for one test on a busy machine, and more under load.
TEST_TIME_LIMIT = 180.0
SCALE = float(os.environ.get("QVQ_FUZZ_SCALE") or 1)


def examples(count):
    """``count`` examples, scaled by QVQ_FUZZ_SCALE."""
    return max(10, int(count * SCALE))


BOM = b"\xef\xbb\xbf"
EVENT_TYPES = (QueuePosition, ProcessingStarted, TextUpdate, Done)
LINE_ENDS = ["\n", "\r\n", "\r"]

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
edit = st.tuples(st.sampled_from(["append", "replace"]), text)

QUEUE_NOISE = [
    {"msg": "heartbeat", "event_id": None},
    {"msg": "estimation", "event_id": EVENT_ID, "rank": 1, "queue_size": 2, "rank_eta": 1.5},
    {"msg": "progress", "event_id": EVENT_ID, "progress_data": None},
    {"msg": "log", "event_id": EVENT_ID, "log": "hello", "level": "info"},
    {"msg": "process_generating", "event_id": "another-job", "output": {"data": ["not ours"]}, "success": True},
    {"msg": "something_new", "event_id": EVENT_ID},
]
CALL_NOISE = [("heartbeat", "null"), ("progress", "not json at all"), ("something_new", "{}")]


# -- building valid answers ---------------------------------------------------------------------


@st.composite
def queue_answers(draw):
    """The event data of a valid queue answer, and its final text."""
    first = draw(st.one_of(st.none(), text))
    final = first or ""
    datas = [{"msg": "process_starts", "event_id": EVENT_ID, "eta": None}]
    datas.append(_generating(first))
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            datas.append(draw(st.sampled_from(QUEUE_NOISE)))
        diff = draw(st.lists(edit, max_size=3))
        for op, value in diff:
            final = final + value if op == "append" else value
        datas.append(_generating([[op, [], value] for op, value in diff]))
    datas.append({"msg": "process_completed", "event_id": EVENT_ID, "output": {"data": [final]}, "success": True})
    datas.append({"msg": "close_stream", "event_id": None})
    ascii_only = draw(st.booleans())
    return [json.dumps(data, ensure_ascii=ascii_only) for data in datas], final


def _generating(value):
    return {"msg": "process_generating", "event_id": EVENT_ID, "output": {"data": [value]}, "success": True}


@st.composite
def call_answers(draw):
    """The (event, data) pairs of a valid call answer, and its final text."""
    outputs = draw(st.lists(st.one_of(st.none(), text), max_size=6))
    events = []
    for output in outputs:
        if draw(st.booleans()):
            events.append(draw(st.sampled_from(CALL_NOISE)))
        events.append(("generating", json.dumps([output])))
    final = draw(st.one_of(st.none(), text))
    events.append(("complete", json.dumps([final])))
    return events, final or ""


def serialise(events, line_end, bom):
    """SSE bytes of (event name or None, data) pairs."""
    out = BOM if bom else b""
    for name, data in events:
        if name is not None:
            out += ("event: " + name + line_end).encode("utf-8")
        out += ("data: " + data + line_end + line_end).encode("utf-8")
    return out


def split(raw, cuts):
    points = [0, *sorted({cut % (len(raw) + 1) for cut in cuts}), len(raw)]
    return [raw[a:b] for a, b in zip(points, points[1:])]


def through_bytes(decoder, feed, chunks):
    """Runs chunks through the SSE parser and the decoder, as the client does."""
    events = []
    for name, data in iter_events(chunks):
        events.extend(feed(decoder, name, data))
        if decoder.done:
            break
    decoder.end_of_stream()
    return events


def feed_queue(decoder, name, data):
    return decoder.feed("", data)


def feed_call(decoder, name, data):
    return decoder.feed(name, data)


def rebuilt_text(events):
    rebuilt = ""
    for event in events:
        if isinstance(event, TextUpdate):
            rebuilt = event.delta if event.replaced else rebuilt + event.delta
            assert event.text == rebuilt
    return rebuilt


# -- valid answers, any bytes layout ---------------------------------------------------------------

layout = {
    "line_end": st.sampled_from(LINE_ENDS),
    "bom": st.booleans(),
    "cuts": st.lists(st.integers(0, 5000), max_size=20),
}


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=queue_answers(), **layout)
def test_queue_answer_is_the_same_however_its_bytes_come(answer, line_end, bom, cuts):
    datas, final = answer
    direct = QueueDecoder(EVENT_ID)
    expected = [event for data in datas for event in direct.feed("", data)]
    raw = serialise([(None, data) for data in datas], line_end, bom)

    events = through_bytes(QueueDecoder(EVENT_ID), feed_queue, split(raw, cuts))

    assert events == expected
    assert events[-1] == Done(final)
    assert rebuilt_text(events) == final


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=call_answers(), **layout)
def test_call_answer_is_the_same_however_its_bytes_come(answer, line_end, bom, cuts):
    pairs, final = answer
    direct = CallDecoder()
    expected = [event for name, data in pairs for event in direct.feed(name, data)]
    raw = serialise(pairs, line_end, bom)

    events = through_bytes(CallDecoder(), feed_call, split(raw, cuts))

    assert events == expected
    assert events[-1] == Done(final)
    assert rebuilt_text(events) == final


def test_valid_answers_over_a_real_socket_split_anywhere():
    """The same property through the client, its transport and a TCP connection: every
    chunk is its own write (and the network may join or split them further)."""
    with FaultSpace() as space:
        client = QVQClient(token=False, base_url=space.base_url, protocol="queue", timeout=(2, 5))

        @settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(answer=queue_answers(), **layout)
        def run(answer, line_end, bom, cuts):
            datas, final = answer
            direct = QueueDecoder(EVENT_ID)
            expected = [event for data in datas for event in direct.feed("", data)]
            raw = serialise([(None, data) for data in datas], line_end, bom)
            space.on("queue/data", event_stream(*split(raw, cuts)), times=1)
            assert list(client.events("hi")) == expected
            assert rebuilt_text(expected) == final

        try:
            run()
        finally:
            client.close()
        assert space.errors == []


# -- anything at all ----------------------------------------------------------------------------

sse_like_bytes = st.lists(
    st.sampled_from(
        [
            b"data: ",
            b"event: ",
            b"generating",
            b"complete",
            b"error",
            b"\n",
            b"\r",
            b"\r\n",
            b'{"msg": "process_generating", "output": {"data": [',
            b'{"msg": "process_completed", "success": ',
            b'{"msg": "estimation", "rank": ',
            b'[["append", [], "x"]]',
            b'"text"',
            b"null",
            b"]}}",
            b"[",
            b"\xff",
            BOM,
        ]
    )
    | st.binary(max_size=6),
    max_size=40,
).map(b"".join)


@settings(max_examples=examples(500), deadline=None)
@given(raw=st.one_of(st.binary(max_size=300), sse_like_bytes), cuts=st.lists(st.integers(0, 600), max_size=8))
@example(raw=b"data: " + b"[" * 3000 + b"\n\n", cuts=[])
@example(raw=b"event: generating\ndata: " + b"[" * 3000 + b"\n\n", cuts=[])
def test_any_bytes_give_events_or_a_typed_error(raw, cuts):
    for decoder, feed in ((QueueDecoder(EVENT_ID), feed_queue), (CallDecoder(), feed_call)):
        try:
            events = through_bytes(decoder, feed, split(raw, cuts))
        except (StreamError, AppError):
            continue
        assert isinstance(events[-1], Done)  # no error: then the answer completed


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=12,
)
QUEUE_KINDS = [
    "estimation",
    "process_starts",
    "process_generating",
    "process_completed",
    "unexpected_error",
    "close_stream",
    "server_stopped",
    "heartbeat",
    "progress",
]
FIELDS = ["event_id", "rank", "queue_size", "rank_eta", "eta", "output", "success", "message", "session_not_found"]


@settings(max_examples=examples(500), deadline=None)
@given(
    messages=st.lists(
        st.tuples(st.sampled_from(QUEUE_KINDS), st.dictionaries(st.sampled_from(FIELDS), json_values)), max_size=5
    )
)
@example(messages=[("estimation", {"rank_eta": 10**400})])
@example(messages=[("process_starts", {"eta": -(10**400)})])
def test_any_json_in_any_queue_field_gives_events_or_a_typed_error(messages):
    decoder = QueueDecoder(None)
    events = []
    try:
        for kind, fields in messages:
            fields.setdefault("event_id", EVENT_ID)
            fields["msg"] = kind
            events.extend(decoder.feed("", json.dumps(fields)))
    except (StreamError, AppError):
        return
    assert all(isinstance(event, EVENT_TYPES) for event in events)


@settings(max_examples=examples(500), deadline=None)
@given(
    events=st.lists(
        st.tuples(st.sampled_from(["generating", "complete", "error", "heartbeat"]), json_values), max_size=5
    )
)
def test_any_json_in_any_call_event_gives_events_or_a_typed_error(events):
    decoder = CallDecoder()
    decoded = []
    try:
        for name, value in events:
            decoded.extend(decoder.feed(name, json.dumps(value)))
    except (StreamError, AppError):
        return
    assert all(isinstance(event, EVENT_TYPES) for event in decoded)
