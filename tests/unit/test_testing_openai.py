"""qvq_sdk.testing.FakeOpenAI: the offline fake of an OpenAI-compatible server, driven
through the real client as a user's tests would drive it."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time

import pytest
import requests
from image_samples import GIF, JPEG, PNG

import qvq_sdk
from qvq_sdk import (
    APIStatusError,
    APITimeoutError,
    AppError,
    AuthenticationError,
    Done,
    NotFoundError,
    RateLimitError,
    Reasoning,
    ReasoningUpdate,
    ServiceUnavailableError,
    StreamError,
    TextUpdate,
    Usage,
)
from qvq_sdk.testing import FakeOpenAI, FakeSpace


@pytest.fixture(autouse=True)
def no_openai_environment(monkeypatch):
    for name in ("QVQ_PROTOCOL", "QVQ_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["reasoning_content", "reasoning"])
def field(request):
    return request.param


# -- answers ---------------------------------------------------------------------------------


def test_answer_streams_its_chunks():
    server = FakeOpenAI().answer("Hel", "lo, ", "world")
    assert list(server.client().chat("hi")) == ["Hel", "lo, ", "world"]
    assert server.prompts == ["hi"]
    assert server.client().protocol == "openai"


def test_each_scripted_reply_answers_one_chat_in_order():
    server = FakeOpenAI().answer("one").answer("two")
    client = server.client()
    assert [client.complete("a"), client.complete("b")] == ["one", "two"]
    with pytest.raises(AppError, match="nothing scripted for the prompt 'c'"):
        client.complete("c")
    assert server.prompts == ["a", "b", "c"]


def test_done_has_the_finish_reason_and_the_counted_usage():
    server = FakeOpenAI().answer("a", "b", reasoning=("r",))
    events = list(server.client().events("three words here"))
    assert events[-1] == Done("ab", reasoning="r", finish_reason="stop", usage=Usage(3, 3, 6))
    assert [e.text for e in events if isinstance(e, TextUpdate)] == ["a", "ab"]


def test_an_empty_answer_completes_empty():
    events = list(FakeOpenAI().answer().client().events("q"))
    assert events == [Done("", finish_reason="stop", usage=Usage(1, 0, 1))]


@pytest.mark.parametrize(
    "usage, expected",
    [
        (Usage(10, 20, 30, reasoning_tokens=15), Usage(10, 20, 30, reasoning_tokens=15)),
        (Usage(10, None, None), Usage(10, None, None)),
        ({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}, Usage(1, 2, 3)),
        (False, None),
    ],
)
def test_usage_as_scripted(usage, expected):
    chat = FakeOpenAI().answer("ok", usage=usage).client().chat("q")
    assert list(chat) == ["ok"]
    assert chat.done == Done("ok", finish_reason="stop", usage=expected)


def test_finish_reason_length_is_reported_and_logged(caplog):
    client = FakeOpenAI().answer("cut sh", finish_reason="length").answer("cut sh", finish_reason="length").client()
    assert list(client.events("q"))[-1] == Done("cut sh", finish_reason="length", usage=Usage(1, 1, 2))
    with caplog.at_level(logging.WARNING, logger="qvq_sdk"):
        assert client.complete("q") == "cut sh"  # whole as far as the server goes
    assert "cut at max_tokens" in caplog.text


def test_reasoning_comes_first_as_reasoning_chunks(field):
    server = FakeOpenAI(reasoning_field=field).answer("A ", "cat", reasoning=("Fur, ", "whiskers."))
    chunks = list(server.client().chat("What is it?"))
    assert chunks == ["Fur, ", "whiskers.", "A ", "cat"]
    assert [type(c) for c in chunks] == [Reasoning, Reasoning, str, str]


def test_reasoning_updates_and_done_keep_it_apart(field):
    server = FakeOpenAI().answer("A cat", reasoning=("Fur, ", "whiskers."), reasoning_field=field)
    events = list(server.client().events("q"))
    updates = [e for e in events if isinstance(e, ReasoningUpdate)]
    assert [(u.delta, u.text) for u in updates] == [("Fur, ", "Fur, "), ("whiskers.", "Fur, whiskers.")]
    assert events[-1].text == "A cat"
    assert events[-1].reasoning == "Fur, whiskers."


def test_a_reasoning_given_as_one_str_is_one_chunk():
    chunks = list(FakeOpenAI().answer("yes", reasoning="Thinking hard").client().chat("q"))
    assert chunks == [Reasoning("Thinking hard"), "yes"]


def test_complete_returns_the_answer_without_the_reasoning():
    assert FakeOpenAI().answer("A cat", reasoning="Fur.").client().complete("q") == "A cat"


# -- the wire: what the fake sends and what it records -------------------------------------------


def raw_stream(server, body):
    """The events the fake sends for a chat request, as (data) strings."""
    with server.session() as session:
        response = session.post(server.base_url + "/chat/completions", json=body, stream=True)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        text = response.content.decode()
    assert text.endswith("\n\n")
    return [event[len("data: ") :] for event in text[:-2].split("\n\n")]


def test_it_frames_the_stream_as_vllm(field):
    server = FakeOpenAI().answer("Hel", "lo", reasoning=("Hm",), reasoning_field=field)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    events = raw_stream(server, {**body, "stream_options": {"include_usage": True}})
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"m"}
    assert len({c["id"] for c in chunks}) == 1
    choices = [c["choices"][0] if c["choices"] else None for c in chunks]
    assert choices[0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["delta"] for c in choices[1:4]] == [{field: "Hm"}, {"content": "Hel"}, {"content": "lo"}]
    assert [c["finish_reason"] for c in choices[:4]] == [None, None, None, "stop"]
    assert choices[4] is None  # the usage chunk: "choices": []
    assert chunks[4]["usage"] == {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}

    server.answer("x")  # without stream_options.include_usage: no usage chunk
    events = raw_stream(server, body)
    assert [json.loads(e)["choices"][0]["delta"] for e in events[:-1]] == [
        {"role": "assistant", "content": ""},
        {"content": "x"},
    ]


def test_an_error_mid_stream_is_framed_as_vllm():
    server = FakeOpenAI().error_mid_stream("Boom", after=("a",))
    events = raw_stream(server, {"messages": [{"role": "user", "content": "q"}]})
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2]) == {
        "error": {"message": "Boom", "type": "BadRequestError", "param": None, "code": 400}
    }


def test_unknown_paths_and_bodies_are_refused():
    server = FakeOpenAI()
    with server.session() as session:
        assert session.get(server.base_url + "/models").status_code == 404
        assert session.get(server.base_url + "/chat/completions").status_code == 405
        refused = session.post(server.base_url + "/chat/completions", data=b"[1, 2]")
        assert refused.status_code == 400
        assert "error" in refused.json()
    assert server.bodies == []


def test_images_are_sent_as_data_uris_and_recorded_in_order():
    server = FakeOpenAI().answer("two images")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Compare them."},
    ]
    assert server.client().complete(messages, images=[PNG, JPEG]) == "two images"
    assert server.images == [PNG, JPEG]
    assert server.prompts == ["Compare them."]
    sent = server.bodies[0]["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    parts = sent[1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url"]  # images= go after the text
    assert parts[0]["text"] == "Compare them."
    uris = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert uris == [
        "data:image/png;base64," + base64.b64encode(PNG).decode(),
        "data:image/jpeg;base64," + base64.b64encode(JPEG).decode(),
    ]


def test_images_in_message_parts_keep_their_place():
    server = FakeOpenAI().answer("ok")
    gif = "data:image/gif;base64," + base64.b64encode(GIF).decode()
    content = [
        {"type": "text", "text": "First"},
        {"type": "image_url", "image_url": {"url": gif}},
        {"type": "text", "text": "then"},
    ]
    server.client().complete([{"role": "user", "content": content}], images=[PNG])
    assert server.prompts == ["First\nthen"]
    assert server.images[0] == GIF
    assert PNG in server.images
    assert server.bodies[0]["messages"][0]["content"][:3] == content


def test_a_conversation_goes_as_it_is_and_its_last_user_message_is_the_prompt():
    server = FakeOpenAI().answer("Paris.")
    conversation = [
        {"role": "user", "content": "Capital of Italy?"},
        {"role": "assistant", "content": "Rome."},
        {"role": "user", "content": "And of France?"},
    ]
    assert server.client().complete(conversation) == "Paris."
    assert server.prompts == ["And of France?"]
    assert server.bodies[0]["messages"] == conversation


def test_model_and_generation_options_are_recorded():
    server = FakeOpenAI().answer("a").answer("b")
    client = server.client(model="qvq-max")
    client.complete("q", max_tokens=64, temperature=0.2, extra_body={"top_k": 20, "seed": 7})
    client.complete("q", model="Qwen/QVQ-72B-Preview")
    first, second = server.bodies
    assert first["model"] == "qvq-max"
    assert (first["max_tokens"], first["temperature"], first["top_k"], first["seed"]) == (64, 0.2, 20, 7)
    assert first["stream"] is True
    assert first["stream_options"] == {"include_usage": True}
    assert second["model"] == "Qwen/QVQ-72B-Preview"
    assert "max_tokens" not in second and "temperature" not in second


def test_requests_are_recorded_with_their_headers():
    server = FakeOpenAI().answer("a").answer("b")
    server.client().complete("q")
    server.client(token="sk-test").complete("q")
    assert [(r.method, r.url) for r in server.requests] == [("POST", FakeOpenAI.base_url + "/chat/completions")] * 2
    assert "Authorization" not in server.requests[0].headers
    assert server.requests[1].headers["Authorization"] == "Bearer sk-test"
    assert json.loads(server.requests[0].body) == server.bodies[0]


# -- errors ----------------------------------------------------------------------------------------


def test_an_error_mid_stream_is_an_app_error_after_the_text():
    server = FakeOpenAI().error_mid_stream("CUDA out of memory", after=("par", "tial"), reasoning="Hm")
    received = []
    with pytest.raises(AppError) as info:
        received.extend(server.client().chat("q"))
    assert received == ["Hm", "par", "tial"]
    assert info.value.message == "CUDA out of memory"
    assert "CUDA out of memory" in str(info.value)
    assert server.cancelled == []  # the server ended the stream itself


@pytest.mark.parametrize(
    "status, error",
    [
        (400, APIStatusError),
        (401, AuthenticationError),
        (404, NotFoundError),
        (429, RateLimitError),
        (500, ServiceUnavailableError),
        (503, ServiceUnavailableError),
    ],
)
def test_http_errors_are_typed_and_carry_the_message(status, error):
    client = FakeOpenAI().http_error(status, "the model is busy").client()
    with pytest.raises(error) as info:
        client.complete("q")
    assert info.value.status_code == status
    assert info.value.body == "the model is busy"
    assert "the model is busy" in str(info.value)


def test_http_error_without_a_message_says_the_status_phrase():
    with pytest.raises(ServiceUnavailableError, match="Service Unavailable"):
        FakeOpenAI().http_error(503).client().complete("q")


def test_rate_limit_says_when_to_retry():
    with pytest.raises(RateLimitError) as info:
        FakeOpenAI().http_error(429, retry_after=30).client().complete("q")
    assert info.value.retry_after == 30.0


def test_http_error_then_answer_is_retried():
    server = FakeOpenAI().http_error(429, times=2, retry_after=0).answer("ok")
    assert server.client(max_retries=2).complete("q") == "ok"
    assert server.prompts == ["q", "q", "q"]


def test_a_cut_stream_is_a_stream_error_never_a_short_answer():
    server = FakeOpenAI().cut(after=("A ", "ca"), reasoning="Hm")
    received = []
    with pytest.raises(StreamError, match="cut off"):
        received.extend(server.client().chat("q"))
    assert received == ["Hm", "A ", "ca"]
    with pytest.raises(StreamError):
        FakeOpenAI().cut().client().complete("q")


@pytest.mark.parametrize(
    "script",
    [
        lambda s: s.answer(1),
        lambda s: s.answer("a", reasoning=[None]),
        lambda s: s.answer("a", usage="lots"),
        lambda s: s.answer("a", reasoning_field="thoughts"),
        lambda s: FakeOpenAI(reasoning_field="reasoning_text"),
    ],
)
def test_a_bad_script_is_refused(script):
    with pytest.raises((TypeError, ValueError)):
        script(FakeOpenAI())


# -- slow streams, deadlines and stopping -----------------------------------------------------------


def test_a_read_timeout_fires_as_with_a_slow_server():
    client = FakeOpenAI().answer("a", "b", delay=1).client(timeout=(1, 0.3))
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match="read timeout"):
        list(client.chat("q"))
    assert 0.3 <= time.monotonic() - started < 0.8


def test_a_slow_reasoning_hits_the_read_timeout_too():
    client = FakeOpenAI().answer("a", reasoning=("r", "s"), delay=1).client(timeout=(1, 0.3))
    with pytest.raises(APITimeoutError, match="read timeout"):
        client.complete("q")


def test_a_wait_shorter_than_the_read_timeout_is_fine():
    client = FakeOpenAI().answer("a", "b", delay=0.2).client(timeout=(1, 0.5))
    assert client.complete("q") == "ab"


@pytest.mark.parametrize("deadline", [0.3, 0.6])
def test_a_deadline_ends_a_long_wait_in_time(deadline):
    client = FakeOpenAI().answer("a", "b", delay=3).client()
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match="deadline"):
        client.complete("q", deadline=deadline)
    assert deadline <= time.monotonic() - started < deadline + 0.5


def test_closing_a_chat_cancels_it():
    server = FakeOpenAI().answer("a", "b").answer("c", "d", "e", delay=0.5)
    client = server.client()
    assert client.complete("whole") == "ab"
    chunks = client.chat("q")
    assert next(chunks) == "c"
    started = time.monotonic()
    chunks.close()
    assert time.monotonic() - started < 0.3
    assert server.cancelled == ["q"]


def test_stop_from_another_thread_ends_the_wait():
    server = FakeOpenAI().answer("a", "b", delay=30)
    chat = server.client().chat("q")
    threading.Timer(0.2, chat.stop).start()
    started = time.monotonic()
    assert list(chat) == []
    assert time.monotonic() - started < 2.0
    assert chat.stopped
    assert chat.done is None
    assert server.cancelled == ["q"]


def test_closing_the_client_from_another_thread_ends_the_chat():
    server = FakeOpenAI().answer("a", "b", delay=30)
    client = server.client()
    chat = client.chat("q")
    threading.Timer(0.2, client.close).start()
    with pytest.raises(qvq_sdk.APIConnectionError):
        list(chat)
    assert server.cancelled == ["q"]


# -- clients: client(), session, patch() ---------------------------------------------------------


def test_clients_share_one_session_closed_with_the_fake(monkeypatch):
    closed = []
    monkeypatch.setattr(requests.Session, "close", lambda self: closed.append(self))
    with FakeOpenAI() as server:
        server.answer("a").answer("b")
        first, second = server.client(), server.client()
        assert [first.complete("q"), second.complete("q")] == ["a", "b"]
        assert closed == []
    assert len(closed) == 1
    assert server.answer("c").client().complete("q") == "c"  # a new session after close()


def test_a_session_of_your_own_gets_the_fake_mounted():
    server = FakeOpenAI().answer("mine")
    with requests.Session() as session:
        assert server.client(session=session).complete("q") == "mine"


def test_patch_routes_clients_made_inside(monkeypatch):
    monkeypatch.setenv("QVQ_BASE_URL", "http://127.0.0.1:1")
    server = FakeOpenAI().answer("patched").answer("by url")
    with server.patch():
        with qvq_sdk.QVQClient(token=False) as client:
            assert client.protocol == "openai"
            assert client.complete("q") == "patched"
        other = qvq_sdk.QVQClient(token=False, base_url=FakeOpenAI.base_url, protocol="openai")
        assert other.complete("q") == "by url"
    assert os.environ["QVQ_BASE_URL"] == "http://127.0.0.1:1"
    assert "QVQ_PROTOCOL" not in os.environ


def test_a_fake_space_and_a_fake_server_side_by_side():
    space, server = FakeSpace().answer("from the Space"), FakeOpenAI().answer("from the server")
    assert space.client().complete("q") == "from the Space"
    assert server.client().complete("q") == "from the server"
    assert space.prompts == server.prompts == ["q"]
