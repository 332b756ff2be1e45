"""Tests of the vLLM harness itself, speaking the OpenAI wire protocol with plain requests.

They check that the server behaves as vllm_server.py's docstring records, so that failures of the
SDK's ``protocol="openai"`` tests against it can be blamed on the SDK.
"""

from __future__ import annotations

import json
import time

import pytest
import requests
import vllm_server as harness

TIMEOUT = 60
MAX_TOKENS = 8


def chat_body(server, stream, **extra):
    body = {
        "model": server.model,
        "messages": [{"role": "user", "content": "Hello there"}],
        "temperature": 0,
        "max_tokens": MAX_TOKENS,
        "stream": stream,
    }
    body.update(extra)
    return body


def post_chat(server, body, headers=None):
    return requests.post(
        server.base_url + "/chat/completions",
        json=body,
        headers=server.headers if headers is None else headers,
        timeout=TIMEOUT,
    )


def stream_events(server, body):
    """POST a streamed chat; return (response, the ``data:`` payloads in order, parsed but [DONE])."""
    events = []
    with requests.post(
        server.base_url + "/chat/completions", json=body, headers=server.headers, stream=True, timeout=TIMEOUT
    ) as resp:
        for line in resp.iter_lines(decode_unicode=True):
            if not line:
                continue
            assert line.startswith("data: "), "not an SSE data line: %r" % line
            payload = line[len("data: ") :]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return resp, events


def streamed_text(events):
    return "".join(
        choice["delta"].get("content") or ""
        for event in events
        if isinstance(event, dict)
        for choice in event.get("choices", [])
    )


def test_models_lists_the_served_name(vllm_server):
    resp = requests.get(vllm_server.base_url + "/models", headers=vllm_server.headers, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["Qwen/QVQ-72B-Preview"]
    assert vllm_server.model == "Qwen/QVQ-72B-Preview"
    assert body["data"][0]["max_model_len"] == vllm_server.max_model_len
    assert vllm_server.base_url == "http://127.0.0.1:%d/v1" % vllm_server.port


def test_streamed_chat_has_text_and_ends_with_done(vllm_server):
    resp, events = stream_events(vllm_server, chat_body(vllm_server, stream=True))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]" and "[DONE]" not in events[:-1]
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == vllm_server.model for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    # Usually one token per chunk after the role chunk, but tokens that come faster than the API
    # server sends them share a chunk (seen on a loaded machine); the finish chunk has text too.
    assert 3 <= len(chunks) <= 1 + MAX_TOKENS
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + ["length"]
    assert chunks[-1]["choices"][0]["delta"]["content"]
    assert not any(c["choices"] == [] or "usage" in c for c in chunks), "a usage chunk without include_usage"
    text = streamed_text(chunks)
    assert text.strip(), "the tiny model answered no text"
    assert len(text.split()) == MAX_TOKENS, text  # one word per token, joined by spaces


def test_unstreamed_chat_gives_the_same_text(vllm_server):
    _, events = stream_events(vllm_server, chat_body(vllm_server, stream=True))
    resp = post_chat(vllm_server, chat_body(vllm_server, stream=False))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["object"] == "chat.completion"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == streamed_text(events)
    assert body["usage"]["completion_tokens"] == MAX_TOKENS


def test_usage_chunk_with_include_usage(vllm_server):
    body = chat_body(vllm_server, stream=True, stream_options={"include_usage": True})
    resp, events = stream_events(vllm_server, body)
    assert resp.status_code == 200
    assert events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["completion_tokens"] == MAX_TOKENS
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert events[-3]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in c for c in events[:-2])


def test_wrong_or_missing_key_is_401(vllm_server):
    wrong = dict(vllm_server.headers, Authorization="Bearer not-" + vllm_server.api_key)
    for headers in (wrong, {"Content-Type": "application/json"}):
        resp = post_chat(vllm_server, chat_body(vllm_server, stream=True), headers=headers)
        assert resp.status_code == 401
        assert resp.json() == {"error": "Unauthorized"}
    resp = requests.get(vllm_server.base_url + "/models", headers=wrong, timeout=TIMEOUT)
    assert resp.status_code == 401
    # /health is outside /v1: no key needed.
    assert requests.get(vllm_server.url + "/health", timeout=TIMEOUT).status_code == 200


@pytest.mark.parametrize("stream", [False, True], ids=["unstreamed", "streamed"])
def test_unknown_model_is_404_with_an_error_message(vllm_server, stream):
    resp = post_chat(vllm_server, chat_body(vllm_server, stream=stream, model="no/such-model"))
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/json"
    error = resp.json()["error"]
    assert "no/such-model" in error["message"] and "does not exist" in error["message"]
    assert error["type"] == "NotFoundError" and error["code"] == 404


def test_max_tokens_past_the_context_is_400_before_any_stream(vllm_server):
    body = chat_body(vllm_server, stream=True, max_tokens=vllm_server.max_model_len + 1)
    resp = post_chat(vllm_server, body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["param"] == "max_tokens" and "max_model_len" in error["message"]


def test_error_after_the_headers_is_an_error_event_then_done(vllm_server):
    bad_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}
    resp, events = stream_events(vllm_server, chat_body(vllm_server, stream=True, response_format=bad_schema))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert len(events) == 2 and events[1] == "[DONE]", events
    error = events[0]["error"]
    assert "nonsense" in error["message"] and error["code"] == 400


def test_a_closed_stream_is_aborted_on_the_server(vllm_server):
    max_tokens = vllm_server.max_model_len - 32
    generated_before = vllm_server.metric("vllm:generation_tokens_total")
    body = chat_body(vllm_server, stream=True, max_tokens=max_tokens)
    with requests.post(
        vllm_server.base_url + "/chat/completions", json=body, headers=vllm_server.headers, stream=True, timeout=TIMEOUT
    ) as resp:
        lines = resp.iter_lines()
        assert next(lines).startswith(b"data: ")
        assert vllm_server.metric("vllm:num_requests_running") == 1
    deadline = time.monotonic() + 10
    while vllm_server.metric("vllm:num_requests_running") != 0:
        assert time.monotonic() < deadline, "the server still generates 10 s after the client closed"
        time.sleep(0.05)
    generated = vllm_server.metric("vllm:generation_tokens_total") - generated_before
    assert generated < max_tokens / 2, "the server generated %d of %d tokens" % (generated, max_tokens)


def test_server_log_is_readable_from_a_mark(vllm_server):
    mark = vllm_server.log_mark()
    assert post_chat(vllm_server, chat_body(vllm_server, stream=False)).status_code == 200
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in vllm_server.log_since(mark)
    assert vllm_server.alive() and vllm_server.pid in vllm_server.pids()
    # The API server, its engine core and the CPU worker, at least.
    assert len(vllm_server.pids()) >= 3
    assert vllm_server.rss_bytes() > 100 * 2**20


def test_a_server_that_dies_at_start_is_reported_with_its_log(vllm_server):
    with pytest.raises(harness.HarnessError) as info:
        with harness.start_server(extra_args=["--no-such-flag"], startup_timeout=120):
            pass
    message = str(info.value)
    assert "exited with" in message and "before serving" in message
    assert "--no-such-flag" in message  # the log's tail: argparse's complaint
    assert "vllm-cpu-last-failure.log" in message


def test_a_taken_port_is_reported(vllm_server):
    with pytest.raises(harness.HarnessError, match="port %d on 127.0.0.1 is already in use" % vllm_server.port):
        with harness.start_server(port=vllm_server.port):
            pass
