"""qvq_sdk._openai_decoder: the OpenAI chat-completions stream decoded, fed canned events (as
vLLM, SGLang, llama.cpp, DashScope and OpenRouter write them); and whole byte streams through
qvq_sdk._sse, split at every byte position (as openai-python's tests split theirs) and at
random, giving the same events and the same answer."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qvq_sdk import AppError, Done, ReasoningUpdate, StreamError, TextUpdate, Usage
from qvq_sdk._openai_decoder import OpenAIDecoder
from qvq_sdk._sse import iter_events

USAGE = {"prompt_tokens": 21, "completion_tokens": 12, "total_tokens": 33}


def chunk(delta=None, finish_reason=None, **extra):
    """The data of a ``chat.completion.chunk`` with one choice, as JSON text."""
    document = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1735000000,
        "model": "Qwen/QVQ-72B-Preview",
        "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}],
    }
    document.update(extra)
    return json.dumps(document, ensure_ascii=False)


def usage_chunk(usage=USAGE):
    return json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage})


ROLE = chunk({"role": "assistant", "content": ""})


def feed_all(datas, end=True):
    """Feeds each data to a new decoder; every event, and the decoder."""
    decoder = OpenAIDecoder()
    events = []
    for data in datas:
        events += decoder.feed("message", data)
    if end:
        events += decoder.end_of_stream()
    return events, decoder


def summary(events):
    """Events as comparable tuples (TextUpdate and ReasoningUpdate with their text so far)."""
    out = []
    for event in events:
        if isinstance(event, TextUpdate):
            out.append(("text", event.delta, event.text))
        elif isinstance(event, ReasoningUpdate):
            out.append(("reasoning", event.delta, event.text))
        else:
            out.append(event)
    return out


# -- what each chunk means -----------------------------------------------------------------------


def test_a_vllm_stream_decodes_to_text_updates_then_done():
    events, decoder = feed_all(
        [ROLE, chunk({"content": "Hel"}), chunk({"content": "lo"}), chunk({"content": " world"}, "stop"), "[DONE]"]
    )
    assert summary(events) == [
        ("text", "Hel", "Hel"),
        ("text", "lo", "Hello"),
        ("text", " world", "Hello world"),
        Done("Hello world", reasoning="", finish_reason="stop", usage=None),
    ]
    assert decoder.done


def test_the_role_chunk_and_empty_or_null_content_make_no_event():
    for data in (ROLE, chunk({"content": ""}), chunk({"content": None}), chunk({}), chunk({"role": "assistant"})):
        assert OpenAIDecoder().feed("message", data) == []


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_in_either_field_is_reasoning_updates_apart_from_the_answer(field):
    events, _ = feed_all(
        [
            ROLE,
            chunk({field: "Let me "}),
            chunk({field: "look."}),
            chunk({"content": "A cat"}, "stop"),
            usage_chunk(),
            "[DONE]",
        ]
    )
    assert summary(events) == [
        ("reasoning", "Let me ", "Let me "),
        ("reasoning", "look.", "Let me look."),
        ("text", "A cat", "A cat"),
        Done("A cat", reasoning="Let me look.", finish_reason="stop", usage=Usage(21, 12, 33)),
    ]


def test_reasoning_and_content_in_one_delta_give_the_reasoning_first():
    events, _ = feed_all([chunk({"reasoning_content": "hmm", "content": "yes"}, "stop"), "[DONE]"])
    assert summary(events)[:2] == [("reasoning", "hmm", "hmm"), ("text", "yes", "yes")]


def test_the_same_reasoning_in_both_fields_is_not_doubled():
    """vLLM releases that send ``reasoning`` also keep ``reasoning_content``, with the same text."""
    events, _ = feed_all(
        [chunk({"reasoning_content": "a", "reasoning": "a"}), chunk({"content": "b"}, "stop"), "[DONE]"]
    )
    assert events[-1] == Done("b", reasoning="a", finish_reason="stop")


def test_null_reasoning_content_falls_back_to_reasoning():
    events, _ = feed_all([chunk({"reasoning_content": None, "reasoning": "r", "content": None}), "[DONE]"])
    assert events[-1].reasoning == "r"


def test_a_usage_chunk_without_choices_is_the_usage_of_done():
    events, _ = feed_all([ROLE, chunk({"content": "x"}, "stop"), usage_chunk(), "[DONE]"])
    assert events[-1].usage == Usage(prompt_tokens=21, completion_tokens=12, total_tokens=33, reasoning_tokens=None)


def test_usage_null_on_every_chunk_does_not_erase_the_usage():
    """OpenAI's own servers send ``"usage": null`` on every chunk once usage is asked for."""
    events, _ = feed_all([chunk({"content": "x"}, "stop", usage=None), usage_chunk(), chunk({}, usage=None), "[DONE]"])
    assert events[-1].usage == Usage(21, 12, 33)


def test_usage_on_the_last_choice_chunk_counts_too():
    """llama.cpp and some gateways put ``usage`` on the chunk with the finish_reason."""
    events, _ = feed_all([chunk({"content": "x"}, "stop", usage=USAGE), "[DONE]"])
    assert events[-1].usage == Usage(21, 12, 33)


def test_reasoning_tokens_come_from_completion_tokens_details():
    usage = {**USAGE, "completion_tokens_details": {"reasoning_tokens": 7}}
    events, _ = feed_all([chunk({"content": "x"}, "stop"), usage_chunk(usage), "[DONE]"])
    assert events[-1].usage.reasoning_tokens == 7


def test_counts_that_are_not_whole_numbers_are_none():
    usage = {"prompt_tokens": True, "completion_tokens": "12", "total_tokens": 3.5, "completion_tokens_details": 1}
    events, _ = feed_all([chunk({"content": "x"}, "stop"), usage_chunk(usage), "[DONE]"])
    assert events[-1].usage == Usage(None, None, None, None)


def test_usage_that_is_not_an_object_is_ignored():
    events, _ = feed_all([chunk({"content": "x"}, "stop"), usage_chunk("lots"), "[DONE]"])
    assert events[-1].usage is None


@pytest.mark.parametrize("reason", ["stop", "length", "content_filter", "tool_calls"])
def test_the_finish_reason_is_kept_as_said(reason):
    events, _ = feed_all([chunk({"content": "x"}), chunk({}, reason), "[DONE]"])
    assert events[-1].finish_reason == reason


def test_done_ends_the_decoder_and_anything_after_it_is_ignored():
    decoder = OpenAIDecoder()
    decoder.feed("message", chunk({"content": "x"}, "stop"))
    (done,) = decoder.feed("message", "[DONE]")
    assert done == Done("x", finish_reason="stop") and decoder.done
    assert decoder.feed("message", chunk({"content": "more"})) == []
    assert decoder.feed("message", "{not json") == []
    assert decoder.end_of_stream() == []


def test_the_event_name_does_not_matter():
    decoder = OpenAIDecoder()
    assert summary(decoder.feed("", chunk({"content": "x"}))) == [("text", "x", "x")]
    assert summary(decoder.feed("chunk", chunk({"content": "y"}))) == [("text", "y", "xy")]


def test_json_with_whitespace_around_it_and_escaped_characters_decodes():
    data = '  {"choices": [{"index": 0, "delta": {"content": "\\ud83d\\ude42 caf\\u00e9"}}]}  '
    (update,) = OpenAIDecoder().feed("message", data)
    assert update.delta == "🙂 café"


# -- how a stream ends ----------------------------------------------------------------------------


def test_a_stream_that_ends_after_a_finish_reason_without_done_is_whole():
    events, decoder = feed_all([ROLE, chunk({"content": "Hi"}, "stop"), usage_chunk()])
    assert events[-1] == Done("Hi", finish_reason="stop", usage=Usage(21, 12, 33))
    assert decoder.done


@pytest.mark.parametrize(
    "datas",
    [
        [],
        [ROLE],
        [ROLE, chunk({"content": "Hel"}), chunk({"content": "lo"})],
        [chunk({"reasoning": "r"}), usage_chunk()],
    ],
    ids=["nothing", "role-only", "text", "reasoning-and-usage"],
)
def test_a_stream_that_ends_without_done_or_finish_reason_is_a_stream_error(datas):
    decoder = OpenAIDecoder()
    for data in datas:
        decoder.feed("message", data)
    with pytest.raises(StreamError) as info:
        decoder.end_of_stream()
    text = sum(1 for data in datas if '"content": "' in data and '"content": ""' not in data)
    assert "cut off" in str(info.value) and "not returned as an answer" in str(info.value)
    assert ("5 characters" in str(info.value)) == bool(text)
    assert not decoder.done


# -- errors the server sends inside the stream ----------------------------------------------------------


@pytest.mark.parametrize(
    "document, message",
    [
        (
            {"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}},
            "CUDA out of memory",
        ),
        ({"object": "error", "message": "flat shape", "type": "BadRequestError", "code": 400}, "flat shape"),
        ({"error": "just a string"}, "just a string"),
        ({"error": {"code": 500, "type": "InternalServerError"}}, '{"code": 500, "type": "InternalServerError"}'),
        ({"error": {"message": "   ", "code": 1}}, '{"message": "   ", "code": 1}'),
    ],
    ids=["openai-shape", "flat-shape", "string", "no-message", "blank-message"],
)
def test_an_error_in_the_stream_is_an_app_error_with_the_servers_message(document, message):
    decoder = OpenAIDecoder()
    assert summary(decoder.feed("message", chunk({"content": "Hel"}))) == [("text", "Hel", "Hel")]
    with pytest.raises(AppError) as info:
        decoder.feed("message", json.dumps(document))
    assert info.value.message == message
    assert message in str(info.value)
    assert not decoder.done


def test_a_long_error_message_is_cut_in_the_text_but_whole_in_message():
    long = "x" * 5000
    with pytest.raises(AppError) as info:
        OpenAIDecoder().feed("message", json.dumps({"error": {"message": long}}))
    assert info.value.message == long
    assert len(str(info.value)) < 2200


def test_openrouters_error_chunk_with_a_choice_is_an_app_error():
    """OpenRouter's mid-stream failure: ``error`` at the top level beside a choice that finishes
    with "error" (openai-python raises on any chunk with an ``error``)."""
    decoder = OpenAIDecoder()
    decoder.feed("message", chunk({"content": "Hel"}))
    error_chunk = chunk(
        {"content": ""}, "error", error={"code": "server_error", "message": "Provider disconnected unexpectedly"}
    )
    with pytest.raises(AppError) as info:
        decoder.feed("message", error_chunk)
        decoder.feed("message", "[DONE]")
    assert info.value.message == "Provider disconnected unexpectedly"


def test_llamacpps_error_field_then_done_is_an_app_error_not_a_short_answer():
    """llama.cpp writes a failure after the headers as an ``error:`` line, then ``data: [DONE]``."""
    stream = (
        b"data: " + chunk({"content": "Hel"}).encode("utf-8") + b"\n\n"
        b'error: {"code": 500, "message": "the request exceeds the available context size", "type": "server_error"}\n\n'
        b"data: [DONE]\n\n"
    )
    with pytest.raises(AppError) as info:
        decode([stream])
    assert "the request exceeds the available context size" in str(info.value)


def test_an_error_of_null_is_no_error():
    assert OpenAIDecoder().feed("message", json.dumps({"error": None, "choices": []})) == []


# -- what is not a chunk ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        "{not json",
        "",
        '["a", "list"]',
        '"a string"',
        "42",
        '{"choices": ["not an object"]}',
        '{"choices": [{"index": 0}]}',
        '{"choices": [{"delta": "text"}]}',
        '{"choices": [{"delta": {"content": 42}}]}',
        '{"choices": [{"delta": {"content": ["a"]}}]}',
        '{"choices": [{"delta": {"reasoning_content": {"text": "a"}}}]}',
        '{"choices": [{"delta": {"reasoning": 1}}]}',
        "[DONE] ",
        "[" * 100_000,
    ],
)
def test_an_event_that_is_not_a_chunk_is_a_stream_error(data):
    with pytest.raises(StreamError):
        OpenAIDecoder().feed("message", data)


# -- whole byte streams, however they are split ------------------------------------------------------

STREAM_DATAS = [
    ROLE,
    chunk({"reasoning_content": "Voilà, "}),
    chunk({"reasoning_content": "je regarde 🙂"}),
    chunk({"content": "这是"}),
    chunk({"content": "一只猫 🐈"}),
    chunk({"content": "."}, "stop"),
    usage_chunk({**USAGE, "completion_tokens_details": {"reasoning_tokens": 5}}),
    "[DONE]",
]
DONE = Done(
    "这是一只猫 🐈.",
    reasoning="Voilà, je regarde 🙂",
    finish_reason="stop",
    usage=Usage(21, 12, 33, reasoning_tokens=5),
)


def stream_bytes(line_end="\n", extras=False, bom=False):
    """The stream as bytes: each event ``data: ...`` and a blank line, with ``line_end``; with
    ``extras``, what SSE also allows (comments, a keep-alive ping, an id, ``data:`` without
    a space, a retry field)."""
    parts = []
    for index, data in enumerate(STREAM_DATAS):
        if extras and index == 1:
            parts.append(": ping - 2025-01-01 00:00:00" + line_end + line_end)
        if extras and index == 3:
            parts.append("id: 3" + line_end + "retry: 1000" + line_end + "data:" + data + line_end + line_end)
            continue
        parts.append("data: " + data + line_end + line_end)
    text = "".join(parts)
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


STREAMS = {
    "LF": stream_bytes("\n"),
    "CRLF": stream_bytes("\r\n"),
    "CR": stream_bytes("\r"),
    "extras": stream_bytes("\n", extras=True),
    "extras-CRLF-BOM": stream_bytes("\r\n", extras=True, bom=True),
}
EXPECTED_EVENTS = [("message", data) for data in STREAM_DATAS]


def sse_events(chunks):
    return list(iter_events(chunks))


def decode(chunks):
    decoder = OpenAIDecoder()
    events = []
    for name, data in iter_events(chunks):
        events += decoder.feed(name, data)
        if decoder.done:
            break
    else:
        events += decoder.end_of_stream()
    return events


@pytest.mark.parametrize("name", list(STREAMS))
def test_a_whole_stream_gives_the_events_and_the_answer(name):
    data = STREAMS[name]
    assert sse_events([data]) == EXPECTED_EVENTS
    events = decode([data])
    assert events[-1] == DONE
    assert "".join(e.delta for e in events if isinstance(e, TextUpdate)) == DONE.text
    assert "".join(e.delta for e in events if isinstance(e, ReasoningUpdate)) == DONE.reasoning


@pytest.mark.parametrize("name", list(STREAMS))
def test_a_stream_split_at_every_byte_position_gives_the_same_events(name):
    data = STREAMS[name]
    for cut in range(1, len(data)):
        pieces = [data[:cut], data[cut:]]
        assert sse_events(pieces) == EXPECTED_EVENTS, "split at byte %d" % cut
        assert decode(pieces)[-1] == DONE, "split at byte %d" % cut


@pytest.mark.parametrize("name", list(STREAMS))
def test_a_stream_sent_one_byte_at_a_time_gives_the_same_events(name):
    data = STREAMS[name]
    pieces = [data[index : index + 1] for index in range(len(data))]
    assert sse_events(pieces) == EXPECTED_EVENTS
    assert decode(pieces)[-1] == DONE


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(STREAMS)), cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_a_stream_split_anywhere_any_number_of_times_gives_the_same_events(name, cuts):
    data = STREAMS[name]
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    pieces = [data[start:end] for start, end in zip(points, points[1:])]
    assert b"".join(pieces) == data
    assert sse_events(pieces) == EXPECTED_EVENTS
    assert decode(pieces)[-1] == DONE


@pytest.mark.parametrize("cut", [0, 1, 2, 3])
def test_a_stream_cut_before_done_and_finish_is_a_stream_error_wherever_it_is_cut(cut):
    """The stream minus its last events: after the finish_reason it is whole, before it an error."""
    kept = STREAM_DATAS[: len(STREAM_DATAS) - 1 - cut]  # [DONE] and ``cut`` more dropped
    data = "".join("data: %s\n\n" % item for item in kept).encode("utf-8")
    if any('"finish_reason": "stop"' in item for item in kept):
        assert decode([data])[-1].text == DONE.text
    else:
        with pytest.raises(StreamError):
            decode([data])


def test_with_several_choices_only_the_first_is_read():
    decoder = OpenAIDecoder()
    second = {"choices": [{"index": 1, "delta": {"content": "B"}, "finish_reason": None}]}
    first = {"choices": [{"index": 0, "delta": {"content": "A"}, "finish_reason": "stop"}]}
    events = decoder.feed("message", json.dumps(second)) + decoder.feed("message", json.dumps(first))
    events += decoder.feed("message", "[DONE]")
    assert events[-1].text == "A"
