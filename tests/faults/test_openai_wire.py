"""protocol="openai" over real sockets, when all goes well: what goes on the wire (the URL, the
body, the model, the options, the messages with their roles and images) and what comes back
from a vLLM-framed stream (text, reasoning, Done with its finish_reason and usage)."""

from __future__ import annotations

import base64
import logging

import pytest
from faultopenai import (
    ANSWER,
    ANSWER_PIECES,
    DONE,
    GIF,
    MODEL,
    PNG,
    REASONING,
    REASONING_PIECES,
    ROLE,
    USAGE_COUNTS,
    answer,
    content,
    make_openai_fixture,  # noqa: F401  (pytest fixture)
    make_png,
    openai_server_fixture,  # noqa: F401  (pytest fixture)
    sse,
    status,
    usage_chunk,
)

from qvq_sdk import Done, InputError, QVQClient, Reasoning, ReasoningUpdate, TextUpdate, Usage

CALLS = ["chat", "complete", "events"]


def run(client, call, *args, **options):
    """Runs one of the three calls to its end; what it returned, as a list (complete: its str)."""
    result = getattr(client, call)(*args, **options)
    return result if call == "complete" else list(result)


def data_uri(mime_type, data):
    return "data:%s;base64,%s" % (mime_type, base64.b64encode(data).decode("ascii"))


def image_part(mime_type, data):
    return {"type": "image_url", "image_url": {"url": data_uri(mime_type, data)}}


# -- the request ---------------------------------------------------------------------------------


def test_a_chat_is_one_post_to_chat_completions_that_streams_the_answer(openai_server, make_openai):
    client = make_openai()
    chat = client.chat("What is in the picture?")
    assert openai_server.requests == []  # nothing is sent until the chat is read
    assert list(chat) == list(ANSWER_PIECES)
    (request,) = openai_server.requests  # no GET /v1/models, nothing else
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "What is in the picture?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_a_base_url_with_a_trailing_slash_reaches_the_same_route(openai_server, make_openai):
    assert make_openai(base_url=openai_server.base_url + "/").complete("hi") == ANSWER
    assert [request.path for request in openai_server.requests] == ["/v1/chat/completions"]


@pytest.mark.parametrize(
    "client_model, call_model, sent",
    [
        (None, None, "Qwen/QVQ-72B-Preview"),
        ("qvq-max", None, "qvq-max"),
        (None, "qvq-max", "qvq-max"),
        ("qvq-plus", "qvq-max", "qvq-max"),  # the call's wins
        ("qvq-72b", None, "Qwen/QVQ-72B-Preview"),
        ("qwen-qvq-72b-preview", None, "Qwen/QVQ-72B-Preview"),
        (None, "qvq-72b", "Qwen/QVQ-72B-Preview"),
        ("qvq-max", "qwen-qvq-72b-preview", "Qwen/QVQ-72B-Preview"),
        ("Qwen/QVQ-72B-Preview", None, "Qwen/QVQ-72B-Preview"),
    ],
)
@pytest.mark.parametrize("call", CALLS)
def test_the_model_sent_is_the_one_given_its_alias_mapped_else_the_default(
    openai_server, make_openai, call, client_model, call_model, sent
):
    run(make_openai(model=client_model), call, "hi", model=call_model)
    assert openai_server.chats[0].json["model"] == sent


@pytest.mark.parametrize("model", ["", "  ", 42])
def test_a_bad_model_is_an_input_error_before_anything_is_sent(openai_server, make_openai, model):
    with pytest.raises(InputError) as info:
        make_openai(model=model)
    assert info.value.input == "model"
    client = make_openai()
    with pytest.raises(InputError) as info:
        client.complete("hi", model=model)
    assert info.value.input == "model"
    assert openai_server.requests == []


@pytest.mark.parametrize("call", CALLS)
def test_max_tokens_temperature_and_extra_body_go_into_the_body(openai_server, make_openai, call):
    extra = {"top_p": 0.9, "repetition_penalty": 1.05, "chat_template_kwargs": {"enable_thinking": True}}
    run(make_openai(), call, "hi", max_tokens=64, temperature=0.2, extra_body=extra)
    body = openai_server.chats[0].json
    assert body["max_tokens"] == 64
    assert body["temperature"] == 0.2
    assert {name: body[name] for name in extra} == extra
    assert body["stream"] is True and body["messages"] == [{"role": "user", "content": "hi"}]


def test_a_temperature_of_zero_is_sent_not_dropped(openai_server, make_openai):
    make_openai().complete("hi", temperature=0)
    assert openai_server.chats[0].json["temperature"] == 0


def test_the_options_of_one_call_do_not_stick_to_the_next(openai_server, make_openai):
    client = make_openai()
    client.complete("hi", max_tokens=8, extra_body={"top_k": 5})
    client.complete("hi")
    second = openai_server.chats[1].json
    assert "max_tokens" not in second and "top_k" not in second and "temperature" not in second


@pytest.mark.parametrize(
    "option, value",
    [("max_tokens", 0), ("max_tokens", True), ("temperature", -1.0), ("extra_body", {"bad": {1, 2}})],
)
@pytest.mark.parametrize("call", CALLS)
def test_a_bad_option_is_an_input_error_naming_it_before_anything_is_sent(
    openai_server, make_openai, call, option, value
):
    with pytest.raises(InputError) as info:
        getattr(make_openai(), call)("hi", **{option: value})
    assert info.value.input == option
    assert openai_server.requests == []


@pytest.mark.parametrize("option", [{"max_tokens": 64}, {"temperature": 0.2}, {"extra_body": {"top_p": 0.9}}])
@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("protocol", ["queue", "call"])
def test_generation_options_on_a_space_are_an_input_error_before_anything_is_sent(
    space, make_client, protocol, call, option
):
    client = make_client(protocol)
    with pytest.raises(InputError) as info:
        getattr(client, call)("hi", **option)
    (name,) = option
    assert info.value.input == name
    assert 'protocol="openai"' in str(info.value)
    assert space.requests == []  # not even /config


# -- messages and images ---------------------------------------------------------------------------


def test_a_conversation_keeps_its_roles(openai_server, make_openai):
    messages = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What colour is the sky?"},
    ]
    make_openai().complete(messages)
    assert openai_server.chats[0].json["messages"] == messages


def _pil_png():
    image_module = pytest.importorskip("PIL.Image")
    return image_module.new("RGB", (2, 3), "red")


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "path", "data URI", "file", "PIL"])
def test_every_kind_of_image_becomes_a_data_uri_part(openai_server, make_openai, tmp_path, kind):
    path = tmp_path / "cat.png"
    path.write_bytes(PNG)
    sources = {
        "bytes": lambda: PNG,
        "bytearray": lambda: bytearray(PNG),
        "path": lambda: str(path),
        "data URI": lambda: data_uri("image/png", PNG),
        "file": lambda: open(path, "rb"),
        "PIL": _pil_png,
    }
    source = sources[kind]()
    try:
        make_openai().complete("What is it?", images=source)
    finally:
        if hasattr(source, "close") and kind == "file":
            source.close()
    (message,) = openai_server.chats[0].json["messages"]
    assert message["role"] == "user"
    text, image = message["content"]
    assert text == {"type": "text", "text": "What is it?"}
    assert image["type"] == "image_url"
    url = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    data = base64.b64decode(url.split(",", 1)[1])
    if kind == "PIL":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert data == PNG


def test_several_images_go_in_order_into_the_last_user_message(openai_server, make_openai):
    second_png = make_png(2, 2)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Look at these."},
        {"role": "assistant", "content": "Which ones?"},
        {"role": "user", "content": "These three."},
    ]
    make_openai().complete(messages, images=[PNG, GIF, second_png])
    sent = openai_server.chats[0].json["messages"]
    assert sent[:3] == messages[:3]  # untouched
    assert sent[3] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "These three."},
            image_part("image/png", PNG),
            image_part("image/gif", GIF),
            image_part("image/png", second_png),
        ],
    }


def test_image_parts_in_messages_stay_in_their_place(openai_server, make_openai):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": data_uri("image/gif", GIF)}},
                {"type": "text", "text": "with"},
                {"type": "image_url", "image_url": {"url": data_uri("image/png", PNG)}},
            ],
        },
        {"role": "assistant", "content": "The first is smaller."},
        {"role": "user", "content": "And this one?"},
    ]
    make_openai().complete(messages, images=PNG)
    sent = openai_server.chats[0].json["messages"]
    assert sent[0]["content"] == [
        {"type": "text", "text": "Compare"},
        image_part("image/gif", GIF),
        {"type": "text", "text": "with"},
        image_part("image/png", PNG),
    ]
    assert sent[1] == messages[1]
    assert sent[2]["content"] == [{"type": "text", "text": "And this one?"}, image_part("image/png", PNG)]


def test_an_image_url_is_fetched_without_the_token_and_sent_as_a_data_uri(openai_server, make_openai):
    openai_server.on("other", status(200, PNG, "image/png"))
    make_openai().complete("What is it?", images=openai_server.origin + "/images/cat.png")
    fetch, chat = openai_server.requests
    assert (fetch.method, fetch.path) == ("GET", "/images/cat.png")
    assert "authorization" not in fetch.headers  # an image URL never gets the token, even on the same host
    assert chat.json["messages"][0]["content"][1] == image_part("image/png", PNG)


# -- what comes back ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_chat_yields_the_reasoning_first_as_reasoning_chunks(openai_server, make_openai, field):
    openai_server.on("chat", answer(reasoning_pieces=REASONING_PIECES, field=field))
    chunks = list(make_openai().chat("hi"))
    assert chunks == [*REASONING_PIECES, *ANSWER_PIECES]
    assert [type(chunk) for chunk in chunks] == [Reasoning, Reasoning, str, str, str]
    assert "".join(chunks) == REASONING + ANSWER


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_events_tell_reasoning_from_text_and_done_holds_both(openai_server, make_openai, field):
    openai_server.on("chat", answer(reasoning_pieces=REASONING_PIECES, field=field))
    events = list(make_openai().events("hi"))
    assert [type(event) for event in events] == [ReasoningUpdate] * 2 + [TextUpdate] * 3 + [Done]
    assert [(e.delta, e.text) for e in events[:2]] == [("Let me ", "Let me "), ("look at it.", REASONING)]
    assert [(e.delta, e.text) for e in events[2:5]] == [("Hel", "Hel"), ("lo", "Hello"), (" world", ANSWER)]
    done = events[-1]
    assert done == Done(ANSWER, reasoning=REASONING, finish_reason="stop", usage=Usage(21, 12, 33))
    assert done.usage.total_tokens == USAGE_COUNTS["total_tokens"]


def test_complete_returns_the_answer_without_the_reasoning(openai_server, make_openai):
    openai_server.on("chat", answer(reasoning_pieces=REASONING_PIECES))
    assert make_openai().complete("hi") == ANSWER


@pytest.mark.parametrize("call", ["chat", "events"])
def test_the_chat_stream_holds_its_done_after_the_loop(openai_server, make_openai, call):
    openai_server.on("chat", answer(reasoning_pieces=REASONING_PIECES))
    stream = getattr(make_openai(), call)("hi")
    assert stream.done is None
    for _ in stream:
        assert stream.done is None or call == "events"  # events: Done is the last item
    assert stream.done == Done(ANSWER, reasoning=REASONING, finish_reason="stop", usage=Usage(21, 12, 33))
    assert not stream.stopped


def test_usage_is_none_when_the_server_sends_none(openai_server, make_openai):
    openai_server.on("chat", answer(usage=False))
    done = list(make_openai().events("hi"))[-1]
    assert done == Done(ANSWER, finish_reason="stop", usage=None)


def test_usage_counts_the_reasoning_tokens_when_the_server_says(openai_server, make_openai):
    counts = {**USAGE_COUNTS, "completion_tokens_details": {"reasoning_tokens": 7}}
    openai_server.on("chat", sse(*[ROLE, content("Hel"), content("lo", "stop")], usage_chunk(counts), DONE))
    done = list(make_openai().events("hi"))[-1]
    assert done.usage == Usage(prompt_tokens=21, completion_tokens=12, total_tokens=33, reasoning_tokens=7)


@pytest.mark.parametrize("call", ["chat", "complete"])
def test_an_answer_cut_at_max_tokens_says_so_with_a_warning(openai_server, make_openai, caplog, call):
    openai_server.on("chat", answer(finish_reason="length"))
    caplog.set_level(logging.WARNING, logger="qvq_sdk")
    result = run(make_openai(), call, "hi", max_tokens=3)
    assert "".join(result) == ANSWER
    warnings = [r for r in caplog.records if r.name == "qvq_sdk" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "max_tokens" in warnings[0].getMessage()


def test_events_surface_finish_reason_length(openai_server, make_openai):
    openai_server.on("chat", answer(finish_reason="length"))
    chat = make_openai().events("hi", max_tokens=3)
    assert list(chat)[-1].finish_reason == "length"
    assert chat.done.finish_reason == "length"


def test_a_whole_answer_logs_no_warning(openai_server, make_openai, caplog):
    caplog.set_level(logging.WARNING, logger="qvq_sdk")
    assert make_openai().complete("hi") == ANSWER
    assert [r for r in caplog.records if r.name == "qvq_sdk"] == []


@pytest.mark.parametrize("call", CALLS)
def test_a_finish_reason_without_done_is_a_whole_answer(openai_server, make_openai, call):
    openai_server.on("chat", answer(done=False))
    result = run(make_openai(), call, "hi")
    if call == "events":
        assert result[-1] == Done(ANSWER, finish_reason="stop", usage=Usage(21, 12, 33))
    else:
        assert "".join(result) == ANSWER


def test_a_stream_sent_one_byte_at_a_time_reads_the_same(openai_server, make_openai):
    pieces = ("Voilà ", "🙂", " 你好", "\n\nfin")
    openai_server.on("chat", answer(pieces, reasoning_pieces=("Ça ", "va"), byte_by_byte=True))
    chunks = list(make_openai().chat("hi"))
    assert chunks == ["Ça ", "va", *pieces]


def test_a_server_that_echoes_the_model_name_differently_is_fine(openai_server, make_openai):
    """vLLM echoes --served-model-name, whatever was asked: the client does not check it."""
    assert make_openai(model="qvq-max").complete("hi") == ANSWER


def test_the_client_takes_the_base_url_and_protocol_from_the_environment(openai_server, monkeypatch):
    for name in ("QVQ_API_KEY",):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QVQ_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("QVQ_PROTOCOL", "openai")
    with QVQClient(token=False, timeout=(2, 5)) as client:
        assert client.protocol == "openai"
        assert client.complete("hi") == ANSWER
    assert openai_server.chats[0].path == "/v1/chat/completions"
