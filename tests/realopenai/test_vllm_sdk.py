"""qvq-sdk's ``protocol="openai"`` against a real OpenAI-compatible server: vLLM for CPU on
127.0.0.1 (``vllm_server``, see vllm_server.py), serving a tiny random model whose answers are
deterministic at temperature 0. The main path and the server's real error shapes."""

from __future__ import annotations

import os
import threading
import time

import pytest
import requests

from qvq_sdk import (
    APIStatusError,
    AppError,
    AuthenticationError,
    Done,
    InputError,
    NotFoundError,
    QVQClient,
    TextUpdate,
)

PROMPT = "w1 w2 w3"
CAT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples", "cat.jpg")
WAIT_LIMIT = 30.0


@pytest.fixture
def client(vllm_server):
    with QVQClient(vllm_server.api_key, base_url=vllm_server.base_url, protocol="openai", timeout=(5, 60)) as made:
        yield made


def unstreamed(server, **body):
    """The same request, not streamed, through plain requests: the server's own answer."""
    payload = {"model": server.model, "messages": [{"role": "user", "content": PROMPT}], "stream": False, **body}
    reply = requests.post(server.base_url + "/chat/completions", json=payload, headers=server.headers, timeout=60)
    reply.raise_for_status()
    return reply.json()


def pooled_connections(client):
    """How many connections the client's session has opened so far."""
    adapter = client._transport._session.get_adapter("http://")
    return sum(pool.num_connections for pool in adapter.poolmanager.pools._container.values())


def test_a_streamed_answer_equals_the_unstreamed_one(vllm_server, client):
    """At temperature 0 the streamed text is the server's own answer, whole: nothing lost or added."""
    chunks = list(client.chat(PROMPT, temperature=0, max_tokens=24))
    expected = unstreamed(vllm_server, temperature=0, max_tokens=24)["choices"][0]["message"]["content"]
    assert expected.strip()  # the harness's tokenizer gives every id a word
    assert "".join(chunks) == expected
    assert len(chunks) > 1  # streamed, not in one piece
    assert client.complete(PROMPT, temperature=0, max_tokens=24) == expected


def test_done_carries_the_finish_reason_and_the_usage(vllm_server, client):
    events = list(client.events(PROMPT, temperature=0, max_tokens=8))
    done = events[-1]
    assert isinstance(done, Done)
    assert done.finish_reason == "length"  # cut at max_tokens: surfaced, not hidden
    assert done.usage is not None and done.usage.completion_tokens == 8
    assert done.usage.total_tokens == done.usage.prompt_tokens + 8
    texts = [event for event in events if isinstance(event, TextUpdate)]
    assert texts[-1].text == done.text
    assert done.reasoning == ""  # this server parses no reasoning


def test_the_chat_stream_holds_its_done_and_logs_a_cut_answer(client, caplog):
    stream = client.chat(PROMPT, temperature=0, max_tokens=5)
    text = "".join(stream)
    assert stream.done is not None and stream.done.text == text
    assert not stream.stopped
    assert any("max_tokens" in record.getMessage() for record in caplog.records)


def test_a_conversation_keeps_its_roles(vllm_server, client):
    messages = [
        {"role": "system", "content": "w5"},
        {"role": "user", "content": "w6"},
        {"role": "assistant", "content": "w7"},
        {"role": "user", "content": [{"type": "text", "text": "w8"}]},
    ]
    answer = client.complete(messages, temperature=0, max_tokens=6)
    expected = unstreamed(vllm_server, temperature=0, max_tokens=6, messages=messages)
    assert answer == expected["choices"][0]["message"]["content"]


def test_a_wrong_key_is_an_authentication_error_with_the_servers_words(vllm_server):
    with QVQClient("wrong-key", base_url=vllm_server.base_url, protocol="openai") as client:
        with pytest.raises(AuthenticationError) as info:
            client.complete(PROMPT, max_tokens=4)
    assert info.value.status_code == 401
    assert "Unauthorized" in str(info.value)


def test_an_unknown_model_is_not_found_with_the_servers_words(vllm_server, client):
    with pytest.raises(NotFoundError) as info:
        client.complete(PROMPT, model="qvq-max", max_tokens=4)
    assert "qvq-max" in str(info.value) and "does not exist" in str(info.value)


def test_max_tokens_past_the_context_is_the_servers_400(vllm_server, client):
    with pytest.raises(APIStatusError) as info:
        client.complete(PROMPT, max_tokens=vllm_server.max_model_len * 4)
    assert info.value.status_code == 400
    assert "max_tokens" in str(info.value) or "context" in str(info.value)


def test_an_image_to_a_text_only_model_is_the_servers_400(client):
    """Two images go as image_url parts; this text-only model refuses them in its own words."""
    with pytest.raises(APIStatusError) as info:
        client.complete(PROMPT, images=[CAT, CAT], max_tokens=4)
    assert info.value.status_code == 400
    assert "multimodal" in str(info.value)


def test_an_error_inside_the_stream_is_an_app_error_with_the_servers_message(client):
    bad_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}
    with pytest.raises(AppError) as info:
        list(client.chat(PROMPT, max_tokens=4, extra_body={"response_format": bad_schema}))
    assert "nonsense" in str(info.value)


def test_generation_options_are_refused_on_the_space_before_anything_is_sent():
    with pytest.raises(InputError) as info:
        QVQClient(base_url="http://127.0.0.1:9").chat("hi", max_tokens=5)
    assert info.value.input == "max_tokens"


def test_sequential_chats_share_one_connection(client):
    for _ in range(8):
        assert client.complete(PROMPT, temperature=0, max_tokens=4)
    assert pooled_connections(client) == 1


def test_threads_share_a_client(client):
    expected = client.complete(PROMPT, temperature=0, max_tokens=6)
    answers, errors = [], []

    def chat():
        try:
            answers.append(client.complete(PROMPT, temperature=0, max_tokens=6))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=chat) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_LIMIT)
    assert errors == [] and answers == [expected] * 4


def test_stopping_a_chat_aborts_the_generation_on_the_server(vllm_server, client):
    """Closing the connection is how vLLM learns to stop: it generates far fewer tokens than asked."""
    max_tokens = vllm_server.max_model_len - 32
    generated_before = vllm_server.metric("vllm:generation_tokens_total")
    stream = client.chat(PROMPT, max_tokens=max_tokens)
    assert next(stream)  # generating
    stopper = threading.Thread(target=stream.stop)
    stopper.start()
    stopper.join(WAIT_LIMIT)
    assert list(stream) == [] and stream.stopped
    deadline = time.monotonic() + WAIT_LIMIT
    while vllm_server.metric("vllm:num_requests_running") != 0:  # a server-side signal, bounded
        assert time.monotonic() < deadline, "the server still generates after the chat was stopped"
        time.sleep(0.05)
    generated = vllm_server.metric("vllm:generation_tokens_total") - generated_before
    assert generated < max_tokens / 2, "the server generated %d of %d tokens" % (generated, max_tokens)
    assert client.complete(PROMPT, temperature=0, max_tokens=4)  # the client goes on


def test_a_token_found_in_the_environment_is_not_sent_to_this_server(vllm_server, monkeypatch):
    """HF_TOKEN is a Hugging Face token: it goes to Hugging Face's hosts only; QVQ_API_KEY is for this server."""
    monkeypatch.setenv("HF_TOKEN", vllm_server.api_key)
    with QVQClient(base_url=vllm_server.base_url, protocol="openai") as client:
        with pytest.raises(AuthenticationError):
            client.complete(PROMPT, max_tokens=4)
    monkeypatch.setenv("QVQ_API_KEY", vllm_server.api_key)
    with QVQClient(base_url=vllm_server.base_url, protocol="openai") as client:
        assert client.complete(PROMPT, max_tokens=4)
