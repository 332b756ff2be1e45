"""protocol="openai" over real sockets, when the server says no or breaks: HTTP error statuses
as typed errors carrying the server's message, an error inside the stream (AppError, after
the text already yielded), and streams that are cut, malformed or not streams at all (never
a short answer)."""

from __future__ import annotations

import pytest
from faultopenai import (
    CLOSE,
    DONE,
    RESET,
    ROLE,
    UNAUTHORIZED,
    answer_events,
    content,
    error_event,
    error_status,
    event,
    json_reply,
    llamacpp_error,
    make_openai_fixture,  # noqa: F401  (pytest fixture)
    openai_server_fixture,  # noqa: F401  (pytest fixture)
    openrouter_error_chunk,
    sse,
    status,
    too_many_requests,
)

from qvq_sdk import (
    APIConnectionError,
    APIStatusError,
    AppError,
    AuthenticationError,
    Done,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
    TextUpdate,
)

CONTEXT_TOO_LONG = (
    "This model's maximum context length is 32768 tokens. However, you requested 40000 tokens "
    "(8000 in the messages, 32000 in the completion). Please reduce the length of the messages or completion."
)


def read_until_error(stream):
    """Iterates ``stream``; (items received, the error it raised)."""
    received = []
    with pytest.raises(Exception) as info:
        for item in stream:
            received.append(item)
    return received, info.value


# -- error statuses ---------------------------------------------------------------------------------

STATUS_CASES = [
    pytest.param(error_status(401, "Invalid API key."), AuthenticationError, "Invalid API key.", id="401"),
    pytest.param(UNAUTHORIZED, AuthenticationError, "Unauthorized", id="401-vllm"),
    pytest.param(
        error_status(403, "No access to this model."), AuthenticationError, "No access to this model.", id="403"
    ),
    pytest.param(
        error_status(404, "The model `qvq-max` does not exist.", "NotFoundError"),
        NotFoundError,
        "The model `qvq-max` does not exist.",
        id="404",
    ),
    pytest.param(error_status(400, CONTEXT_TOO_LONG), APIStatusError, CONTEXT_TOO_LONG, id="400"),
    pytest.param(
        error_status(422, "max_tokens: must be positive"), APIStatusError, "max_tokens: must be positive", id="422"
    ),
    pytest.param(error_status(500, "EngineCore died"), ServiceUnavailableError, "EngineCore died", id="500"),
    pytest.param(error_status(502, "upstream failed"), ServiceUnavailableError, "upstream failed", id="502"),
    pytest.param(error_status(504, "upstream timed out"), ServiceUnavailableError, "upstream timed out", id="504"),
    pytest.param(
        json_reply({"object": "error", "message": "older vLLM says so", "type": "BadRequestError", "code": 400}, 400),
        APIStatusError,
        "older vLLM says so",
        id="400-flat",
    ),
]


@pytest.mark.parametrize("reply, error_type, said", STATUS_CASES)
@pytest.mark.parametrize("call", ["chat", "complete", "events"])
def test_an_error_status_is_its_typed_error_with_the_servers_message(
    openai_server, make_openai, call, reply, error_type, said
):
    openai_server.on("chat", reply)
    with pytest.raises(APIStatusError) as info:
        result = getattr(make_openai(), call)("hi")
        if call != "complete":
            list(result)
    error = info.value
    assert type(error) is error_type
    assert error.body == said  # the message itself, not the JSON around it
    assert said in str(error) and '"type"' not in str(error)
    assert error.status_code == int(str(error).split("HTTP ", 1)[1][:3])
    assert error.url.endswith("/v1/chat/completions")
    assert len(openai_server.chats) == 1  # none of these is sent again


def test_a_429_the_client_may_not_retry_is_a_rate_limit_error_with_its_retry_after(openai_server, make_openai):
    openai_server.on("chat", too_many_requests(7, "Too many requests from this key"))
    with pytest.raises(RateLimitError) as info:
        make_openai(max_retries=0).complete("hi")
    assert info.value.status_code == 429
    assert info.value.retry_after == 7.0
    assert info.value.body == "Too many requests from this key"
    assert "Too many requests from this key" in str(info.value)
    assert len(openai_server.chats) == 1


def test_a_503_the_client_may_not_retry_is_a_service_unavailable_error(openai_server, make_openai):
    openai_server.on("chat", error_status(503, "The model is still loading"))
    with pytest.raises(ServiceUnavailableError) as info:
        make_openai(max_retries=0).complete("hi")
    assert info.value.status_code == 503 and "The model is still loading" in str(info.value)


def test_a_401_says_to_check_the_key_when_one_was_sent(openai_server, make_openai):
    openai_server.on("chat", UNAUTHORIZED)
    with pytest.raises(AuthenticationError) as info:
        make_openai().complete("hi")
    assert "QVQ_API_KEY" in str(info.value) and "Check the API key" in str(info.value)


def test_a_401_says_to_pass_a_key_when_none_was_sent(openai_server, make_openai):
    openai_server.on("chat", UNAUTHORIZED)
    with pytest.raises(AuthenticationError) as info:
        make_openai(token=False).complete("hi")
    assert "pass token= or set QVQ_API_KEY" in str(info.value)


def test_a_base_url_without_v1_is_a_not_found_error_that_says_so(openai_server, make_openai):
    with pytest.raises(NotFoundError) as info:
        make_openai(base_url=openai_server.origin).complete("hi")
    assert openai_server.requests[0].path == "/chat/completions"
    assert "/v1" in str(info.value) and "model" in str(info.value)


def test_an_html_error_page_from_a_proxy_is_told_in_words(openai_server, make_openai):
    page = "<html><head><style>body{}</style></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
    openai_server.on("chat", status(502, page, "text/html"))
    with pytest.raises(ServiceUnavailableError) as info:
        make_openai().complete("hi")
    assert "502 Bad Gateway" in str(info.value) and "<" not in str(info.value) and "body{}" not in str(info.value)


# -- an error inside the stream ------------------------------------------------------------------------


def test_an_error_in_the_stream_is_an_app_error_after_the_text_already_yielded(openai_server, make_openai):
    openai_server.on("chat", sse(ROLE, content("Hel"), content("lo"), error_event("CUDA out of memory"), DONE))
    received, error = read_until_error(make_openai().chat("hi"))
    assert received == ["Hel", "lo"]
    assert type(error) is AppError
    assert error.message == "CUDA out of memory"
    assert "CUDA out of memory" in str(error)


def test_an_error_in_the_stream_ends_events_without_a_done(openai_server, make_openai):
    openai_server.on(
        "chat", sse(ROLE, content("Hel"), error_event("the engine died", "InternalServerError", 500), DONE)
    )
    stream = make_openai().events("hi")
    received, error = read_until_error(stream)
    assert received == [TextUpdate("Hel")]
    assert isinstance(error, AppError) and error.message == "the engine died"
    assert stream.done is None


def test_an_error_in_the_stream_before_any_text_fails_complete(openai_server, make_openai):
    openai_server.on("chat", sse(error_event("prompt rejected by the guardrail"), DONE))
    with pytest.raises(AppError) as info:
        make_openai().complete("hi")
    assert info.value.message == "prompt rejected by the guardrail"


def test_an_error_in_the_stream_in_the_flat_shape_is_an_app_error_too(openai_server, make_openai):
    flat = event({"object": "error", "message": "flat error", "type": "BadRequestError", "code": 400})
    openai_server.on("chat", sse(ROLE, content("Hel"), flat, DONE))
    with pytest.raises(AppError) as info:
        make_openai().complete("hi")
    assert info.value.message == "flat error"


LLAMACPP_CONTEXT = "the request exceeds the available context size, try increasing it"


@pytest.mark.parametrize("call", ["chat", "complete", "events"])
def test_llamacpps_error_line_in_the_stream_is_an_app_error_not_a_short_answer(openai_server, make_openai, call):
    """llama.cpp's server writes a failure after the headers as an ``error: {...}`` field (not
    ``data:``), then ``data: [DONE]``: the answer so far is not the answer."""
    openai_server.on(
        "chat", sse(ROLE, content("Hel"), llamacpp_error(LLAMACPP_CONTEXT, "exceed_context_size_error"), DONE)
    )
    client = make_openai()
    with pytest.raises(AppError) as info:
        result = getattr(client, call)("hi")
        if call != "complete":
            list(result)
    assert LLAMACPP_CONTEXT in str(info.value)


@pytest.mark.parametrize("done", [True, False], ids=["with-done", "without-done"])
def test_openrouters_mid_stream_error_chunk_is_an_app_error_not_a_short_answer(openai_server, make_openai, done):
    """OpenRouter sends a mid-stream failure as a chunk with ``error`` at its top level and a
    choice whose finish_reason is "error"."""
    parts = [ROLE, content("Hel"), openrouter_error_chunk("Provider disconnected unexpectedly")]
    openai_server.on("chat", sse(*parts, *([DONE] if done else [])))
    with pytest.raises(AppError) as info:
        make_openai().complete("hi")
    assert info.value.message == "Provider disconnected unexpectedly"


# -- cut, malformed, or not a stream ------------------------------------------------------------------


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param((ROLE, content("Hel"), content("lo")), id="no-finish-no-done"),
        pytest.param((ROLE, content("Hel"), content("lo"), event({"choices": [], "usage": {}})), id="usage-only"),
        pytest.param((), id="empty"),
    ],
)
@pytest.mark.parametrize("call", ["chat", "complete", "events"])
def test_a_stream_that_ends_without_done_and_without_finish_reason_is_a_stream_error(
    openai_server, make_openai, call, parts
):
    openai_server.on("chat", sse(*parts))
    client = make_openai()
    if call == "complete":
        with pytest.raises(StreamError, match="cut off"):
            client.complete("hi")
        return
    stream = getattr(client, call)("hi")
    received, error = read_until_error(stream)
    assert type(error) is StreamError
    assert "cut off" in str(error) and "not returned as an answer" in str(error)
    assert not any(isinstance(item, Done) for item in received)
    assert stream.done is None


def test_complete_never_returns_a_cut_answer(openai_server, make_openai):
    openai_server.on("chat", sse(ROLE, content("Hel"), content("lo")))
    with pytest.raises(StreamError) as info:
        make_openai().complete("hi")
    assert "5 characters of answer received" in str(info.value)


@pytest.mark.parametrize("how", [CLOSE, RESET], ids=["FIN", "RST"])
def test_a_connection_broken_in_the_middle_of_the_answer_is_a_connection_error(openai_server, make_openai, how):
    openai_server.on("chat", sse(ROLE, content("Hel"), how))
    stream = make_openai().events("hi")
    received, error = read_until_error(stream)
    assert received == [TextUpdate("Hel")]
    assert type(error) is APIConnectionError
    assert "middle of the answer" in str(error)
    assert len(openai_server.chats) == 1  # a stream under way is never sent again


def test_a_close_delimited_stream_with_done_is_whole(openai_server, make_openai):
    openai_server.on("chat", sse(*answer_events(), DONE, chunked=False))
    assert make_openai().complete("hi") == "Hello world"


def test_a_close_delimited_stream_cut_before_the_finish_is_a_stream_error(openai_server, make_openai):
    openai_server.on("chat", sse(ROLE, content("Hel"), chunked=False))
    with pytest.raises(StreamError):
        make_openai().complete("hi")


def test_a_json_reply_instead_of_a_stream_is_a_stream_error(openai_server, make_openai):
    completion = {"object": "chat.completion", "choices": [{"message": {"role": "assistant", "content": "Hi"}}]}
    openai_server.on("chat", json_reply(completion))
    with pytest.raises(StreamError) as info:
        make_openai().complete("hi")
    assert "application/json instead of an event stream" in str(info.value)
    assert str(info.value).startswith("The server")


@pytest.mark.parametrize(
    "data",
    [b"{not json", b'["a", "list"]', b'{"choices": [{"index": 0}]}', b'{"choices": [{"delta": {"content": 42}}]}'],
    ids=["not-json", "a-list", "no-delta", "content-not-text"],
)
def test_a_malformed_event_is_a_stream_error(openai_server, make_openai, data):
    openai_server.on("chat", sse(ROLE, content("Hel"), b"data: " + data + b"\n\n", DONE))
    with pytest.raises(StreamError):
        make_openai().complete("hi")


def test_bytes_that_are_not_utf8_are_a_stream_error_that_names_the_server(openai_server, make_openai):
    openai_server.on("chat", sse(ROLE, b'data: {"choices": [{"delta": {"content": "\xff\xfe"}}]}\n\n', DONE))
    with pytest.raises(StreamError) as info:
        make_openai().complete("hi")
    assert "not UTF-8" in str(info.value)
    # protocol="openai" talks to a server, not a Space: the message must not send the user looking for one
    assert "Space" not in str(info.value)
