"""qvq_sdk._sse: byte chunks → (event, data), however the bytes are split."""

import json
import re

import pytest
import sseclient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qvq_sdk._sse import iter_events, whole_lines
from qvq_sdk.errors import StreamError

BOM = b"\xef\xbb\xbf"
LINE_ENDS = {"LF": "\n", "CRLF": "\r\n", "CR": "\r"}

EVENT_ID = "75d8a6f0c1e24b0e9d3b5a7c1f2e4d6a"

# The queue protocol: `data:` lines only, raw UTF-8 (two- and four-byte characters
# included, so that splits fall inside them).
QUEUE_MESSAGES = [
    {"msg": "estimation", "event_id": EVENT_ID, "rank": 0, "queue_size": 1, "rank_eta": 0.31},
    {"msg": "process_starts", "event_id": EVENT_ID, "eta": 0.31},
    {
        "msg": "process_generating",
        "event_id": EVENT_ID,
        "output": {"data": ["Voilà"], "is_generating": True},
        "success": True,
    },
    {
        "msg": "process_generating",
        "event_id": EVENT_ID,
        "output": {"data": [[["append", [], " 🙂 said:"]]], "is_generating": True},
        "success": True,
    },
    {
        "msg": "process_completed",
        "event_id": EVENT_ID,
        "output": {"data": ["Voilà 🙂 said: hi"], "is_generating": False},
        "success": True,
    },
    {"msg": "close_stream", "event_id": None},
]
QUEUE_DATA = [json.dumps(message, ensure_ascii=False) for message in QUEUE_MESSAGES]
QUEUE_TEXT = "".join("data: %s\n\n" % data for data in QUEUE_DATA)
QUEUE_EVENTS = [("message", data) for data in QUEUE_DATA]

# The call protocol: `event:` + `data:`, ASCII-escaped JSON, heartbeats.
CALL_EVENTS = [
    ("heartbeat", "null"),
    ("generating", '["You"]'),
    ("generating", '["You said:"]'),
    ("generating", '["You said: \\ud83d\\ude42"]'),
    ("heartbeat", "null"),
    ("complete", '["You said: \\ud83d\\ude42 | image: 139 bytes test.png"]'),
]
CALL_TEXT = "".join("event: %s\ndata: %s\n\n" % event for event in CALL_EVENTS)

# What the SSE format allows besides: comments, ids, retry, multi-line data, a field
# without a space after the colon, a last event without its blank line.
EXTRAS_TEXT = (
    ": a comment\n"
    "id: 1\n"
    "retry: 1000\n"
    "event: generating\n"
    "data: line one\n"
    "data: line two\n"
    "\n"
    "data:no space\n"
    "\n"
    "event: complete\n"
    'data: ["é"]'
)
EXTRAS_EVENTS = [
    ("generating", "line one\nline two"),
    ("message", "no space"),
    ("complete", '["é"]'),
]

STREAMS = {
    "queue": (QUEUE_TEXT, QUEUE_EVENTS),
    "call": (CALL_TEXT, CALL_EVENTS),
    "extras": (EXTRAS_TEXT, EXTRAS_EVENTS),
}

CASES = [
    pytest.param(stream, end, id="%s-%s" % (stream, end_name))
    for stream in STREAMS
    for end_name, end in LINE_ENDS.items()
]


def encoded(stream, end):
    text, events = STREAMS[stream]
    return text.replace("\n", end).encode("utf-8"), events


def events_of(chunks):
    return list(iter_events(chunks))


def one_byte_chunks(data):
    return [data[i : i + 1] for i in range(len(data))]


@pytest.mark.parametrize("stream, end", CASES)
def test_whole_stream_in_one_chunk(stream, end):
    raw, expected = encoded(stream, end)
    assert events_of([raw]) == expected


@pytest.mark.parametrize("stream, end", CASES)
def test_every_split_into_two_chunks(stream, end):
    raw, expected = encoded(stream, end)
    for cut in range(len(raw) + 1):
        assert events_of([raw[:cut], raw[cut:]]) == expected, "split at byte %d" % cut


@pytest.mark.parametrize("stream, end", CASES)
def test_one_byte_chunks(stream, end):
    raw, expected = encoded(stream, end)
    assert events_of(one_byte_chunks(raw)) == expected


@pytest.mark.parametrize("stream, end", CASES)
def test_empty_chunks_are_harmless(stream, end):
    raw, expected = encoded(stream, end)
    chunks = [b""]
    for byte in one_byte_chunks(raw):
        chunks += [byte, b""]
    assert events_of(chunks) == expected


@pytest.mark.parametrize("stream, end", CASES)
def test_bom_before_the_first_event_at_every_split(stream, end):
    raw, expected = encoded(stream, end)
    raw = BOM + raw
    for cut in range(len(raw) + 1):
        assert events_of([raw[:cut], raw[cut:]]) == expected, "split at byte %d" % cut
    assert events_of(one_byte_chunks(raw)) == expected


def test_bom_split_across_chunks_with_empty_chunks_between():
    raw, expected = encoded("call", "\n")
    chunks = [b"", BOM[:1], b"", BOM[1:2], BOM[2:] + raw[:3], raw[3:]]
    assert events_of(chunks) == expected


def test_no_stream_no_events():
    assert events_of([]) == []
    assert events_of([b""]) == []
    assert events_of([BOM]) == []


def test_an_event_is_yielded_before_the_next_chunk_is_read():
    def chunks():
        yield b'event: generating\ndata: ["You"]\n\n'
        raise AssertionError("read ahead of the first event")

    assert next(iter_events(chunks())) == ("generating", '["You"]')


@pytest.mark.parametrize("first", [b"data: 1\n\nevent: b\n", b"event: a\ndata: 1\n\nevent: b\n"])
def test_a_whole_event_before_a_partial_one_is_yielded_before_the_next_chunk_is_read(first):
    def chunks():
        yield first
        raise AssertionError("read ahead of the whole event")

    assert next(iter_events(chunks()))[1] == "1"


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([b"data: \xff\xfe\n\n"], id="invalid-bytes"),
        pytest.param([b"data: \xc3", b"\x28\n\n"], id="invalid-continuation-split"),
        pytest.param([b"event: gen\xe9rating\ndata: 1\n\n"], id="latin-1-event-name"),
        pytest.param([b"data: ok\n\ndata: \xe2\x82"], id="truncated-at-end"),
        pytest.param([b"\xef\xbb"], id="half-a-bom"),
        pytest.param([b": comment \x80\n\ndata: 1\n\n"], id="in-a-comment"),
    ],
)
def test_non_utf8_bytes_raise_stream_error(chunks):
    with pytest.raises(StreamError) as info:
        events_of(chunks)
    assert "UTF-8" in str(info.value)


def test_events_before_corrupt_bytes_are_delivered():
    stream = iter_events([b"data: first\n\n", b"data: \xff\n\n"])
    assert next(stream) == ("message", "first")
    with pytest.raises(StreamError):
        next(stream)


# -- long lines --------------------------------------------------------------------

MEGABYTE = 1024 * 1024


def long_stream():
    text = "x" * (MEGABYTE - 7) + "é🙂"
    payload = json.dumps([text], ensure_ascii=False)
    raw = ('event: generating\ndata: %s\n\nevent: complete\ndata: ["done"]\n\n' % payload).encode("utf-8")
    return raw, payload


def kilobyte_chunks(raw):
    return [raw[i : i + 1024] for i in range(0, len(raw), 1024)]


def test_megabyte_line_in_kilobyte_chunks():
    raw, payload = long_stream()
    assert events_of(kilobyte_chunks(raw)) == [("generating", payload), ("complete", '["done"]')]


def test_whole_lines_hands_on_the_megabyte_line_once():
    raw, payload = long_stream()
    out = list(whole_lines(kilobyte_chunks(raw)))
    assert b"".join(out) == raw
    holding = [chunk for chunk in out if payload.encode("utf-8") in chunk]
    assert len(holding) == 1
    # The line is joined once, not re-sent growing with every kilobyte.
    assert sum(len(chunk) for chunk in out) == len(raw)
    assert len(out) <= 3


# -- whole_lines ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "chunks, expected",
    [
        pytest.param([b"a\nb", b"c\n"], [b"a\n", b"bc\n"], id="tail-carried-over"),
        pytest.param([b"a\nb\n"], [b"a\nb\n"], id="whole-chunk-as-is"),
        pytest.param([b"abc"], [b"abc"], id="no-line-end-at-all"),
        pytest.param([b"ab", b"c", b"d\ne"], [b"abcd\n", b"e"], id="pieces-joined"),
        pytest.param([b"ab\r", b"\ncd\r\n"], [b"ab\r", b"\ncd\r\n"], id="crlf-split"),
        pytest.param([b"a\rb"], [b"a\r", b"b"], id="cr"),
        pytest.param([b"", b"a", b"", b"b\n", b""], [b"ab\n"], id="empty-chunks"),
        pytest.param([BOM + b"a\n"], [b"a\n"], id="bom"),
        pytest.param([BOM[:1], BOM[1:] + b"a\n"], [b"a\n"], id="bom-split"),
        pytest.param([b"a\n" + BOM + b"\n"], [b"a\n" + BOM + b"\n"], id="bom-later-kept"),
        pytest.param([], [], id="nothing"),
    ],
)
def test_whole_lines(chunks, expected):
    assert list(whole_lines(chunks)) == expected


# -- properties ----------------------------------------------------------------------

# Field values: any text without line ends (and encodable as UTF-8).
field_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=20,
)
event_strategy = st.tuples(
    st.one_of(st.none(), field_text.filter(bool)),
    st.lists(field_text, min_size=1, max_size=3),
)


def serialize(events, end):
    text = ""
    for name, lines in events:
        if name is not None:
            text += "event: " + name + end
        text += "".join("data: " + line + end for line in lines)
        text += end
    return text.encode("utf-8")


def chunked(raw, cuts):
    points = [0, *sorted({cut % (len(raw) + 1) for cut in cuts}), len(raw)]
    return [raw[a:b] for a, b in zip(points, points[1:])]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(event_strategy, max_size=6),
    end=st.sampled_from(sorted(LINE_ENDS.values())),
    bom=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10000), max_size=12),
)
def test_any_events_any_chunking(events, end, bom, cuts):
    raw = (BOM if bom else b"") + serialize(events, end)
    expected = [(name or "message", "\n".join(lines)) for name, lines in events]
    assert events_of(chunked(raw, cuts)) == expected


sse_like_bytes = st.lists(
    st.sampled_from([b"data:", b"data: ", b"event: ", b":", b"\n", b"\r", b"\r\n", b"x", b"\xff", BOM, b"\xc3"])
    | st.binary(max_size=8),
    max_size=30,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(st.binary(max_size=200), sse_like_bytes), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_any_bytes_raise_only_stream_error(raw, cuts):
    try:
        events = events_of(chunked(raw, cuts))
    except StreamError:
        return
    assert all(isinstance(name, str) and isinstance(data, str) for name, data in events)


def sseclient_alone(chunks):
    """What sseclient-py itself makes of the stream, fed the same whole lines, an ``error:``
    field read as an event named error (llama.cpp's): the reference. (sseclient-py's own
    reading of a CR CR LF depends on where the chunks end; so does ours, the same way.)"""
    lines = (re.sub(rb"(^|[\r\n])error:", rb"\1event: error\ndata:", chunk) for chunk in whole_lines(chunks))
    return [(event.event, event.data) for event in sseclient.SSEClient(lines).events()]


sse_text = st.lists(
    st.sampled_from(
        ["data:", "data: ", "event: x", "id: 1", ": c", "error: e", "\n", "\r", "\r\n", "\n\n", "a", "é", " "]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=1000, deadline=None)
@given(text=sse_text, cuts=st.lists(st.integers(0, 400), max_size=8))
@example(text="data:\r\r\ndata:", cuts=[])  # a CR CR LF in one chunk
@example(text="data:\r\r\ndata:", cuts=[7])  # and cut after the CR CR
def test_the_fast_path_reads_every_stream_as_sseclient_does(text, cuts):
    raw = text.encode("utf-8")
    chunks = chunked(raw, cuts)
    assert events_of(chunks) == sseclient_alone(chunks)


@pytest.mark.parametrize("stream, end", CASES)
def test_the_known_streams_read_as_sseclient_reads_them(stream, end):
    raw, _ = encoded(stream, end)
    for cut in range(len(raw) + 1):
        chunks = [raw[:cut], raw[cut:]]
        assert events_of(chunks) == sseclient_alone(chunks)


def test_an_error_field_is_an_event_named_error():
    """llama.cpp's server fails mid-stream with an `error:` field, which plain SSE ignores."""
    raw = b'data: {"a": 1}\n\nerror: {"message": "boom"}\n\ndata: [DONE]\n\n'
    assert events_of([raw]) == [("message", '{"a": 1}'), ("error", '{"message": "boom"}'), ("message", "[DONE]")]
