"""protocol="openai" over real sockets: which token goes where, and that none comes back out.

An explicit token goes to ``base_url`` as ``Authorization: Bearer``; ``QVQ_API_KEY`` is the
key for this protocol; a Hugging Face token found in the environment or the token file goes to
Hugging Face's hosts only, so never to a server on 127.0.0.1; ``token=False`` sends none; no
``X-HF-Authorization`` here; a redirect to another origin gets no token; a server that
echoes the token in its errors has it hidden (``hf_***``) in what the caller sees."""

from __future__ import annotations

import logging

import pytest
from faultopenai import (
    ANSWER,
    DONE,
    ROLE,
    TOKEN,
    OpenAIServer,
    content,
    error_event,
    error_status,
    json_reply,
    make_openai_fixture,  # noqa: F401  (pytest fixture)
    openai_server_fixture,  # noqa: F401  (pytest fixture)
    redirect,
    sse,
)

from qvq_sdk import APIStatusError, AppError, InputError, QVQClient

API_KEY = "sk-qvq-ApiKeyFromTheEnvironment0123"
HF_TOKEN = "hf_EnvironmentTokenNotForThisServer0123"


def authorization(request):
    return request.headers.get("authorization")


def no_hf_header(server):
    return all("x-hf-authorization" not in request.headers for request in server.requests)


def test_an_explicit_token_goes_to_base_url_as_a_bearer_token(openai_server, make_openai):
    assert make_openai(token=TOKEN).complete("hi") == ANSWER
    (request,) = openai_server.requests
    assert authorization(request) == "Bearer " + TOKEN
    assert no_hf_header(openai_server)


def test_qvq_api_key_is_sent(openai_server, make_openai, monkeypatch):
    monkeypatch.setenv("QVQ_API_KEY", API_KEY)
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    make_openai(token=None).complete("hi")
    assert authorization(openai_server.requests[0]) == "Bearer " + API_KEY
    assert no_hf_header(openai_server)


def test_an_explicit_token_wins_over_qvq_api_key(openai_server, make_openai, monkeypatch):
    monkeypatch.setenv("QVQ_API_KEY", API_KEY)
    make_openai(token=TOKEN).complete("hi")
    assert authorization(openai_server.requests[0]) == "Bearer " + TOKEN


@pytest.mark.parametrize("where", ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "token file"])
def test_a_hugging_face_token_from_the_environment_is_not_sent_to_another_server(
    openai_server, make_openai, monkeypatch, tmp_path, where
):
    if where == "token file":
        path = tmp_path / "hf-token"
        path.write_text(HF_TOKEN + "\n")
        monkeypatch.setenv("HF_TOKEN_PATH", str(path))
    else:
        monkeypatch.setenv(where, HF_TOKEN)
    assert make_openai(token=None).complete("hi") == ANSWER
    (request,) = openai_server.requests
    assert authorization(request) is None
    assert HF_TOKEN not in repr(request.headers)


def test_token_false_sends_none_whatever_the_environment_says(openai_server, make_openai, monkeypatch):
    monkeypatch.setenv("QVQ_API_KEY", API_KEY)
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    make_openai(token=False).complete("hi")
    (request,) = openai_server.requests
    assert authorization(request) is None and no_hf_header(openai_server)


def test_a_qvq_api_key_with_a_newline_is_an_input_error_that_does_not_quote_it(openai_server, make_openai, monkeypatch):
    monkeypatch.setenv("QVQ_API_KEY", API_KEY + "\nX-Injected: 1")
    with pytest.raises(InputError) as info:
        make_openai(token=None)
    assert info.value.input == "token"
    assert "$QVQ_API_KEY" in str(info.value) and API_KEY not in str(info.value)
    assert openai_server.requests == []


@pytest.mark.parametrize("code", [307, 308])
def test_a_redirect_to_another_origin_gets_no_token(openai_server, make_openai, code):
    with OpenAIServer() as other:
        openai_server.on("chat", redirect(other.base_url + "/chat/completions", code))
        assert make_openai().complete("hi") == ANSWER
        (request,) = other.requests
        assert (request.method, request.path) == ("POST", "/v1/chat/completions")
        assert authorization(request) is None
        assert request.json["messages"] == [{"role": "user", "content": "hi"}]
    assert other.errors == []
    assert authorization(openai_server.requests[0]) == "Bearer " + TOKEN


# -- redaction --------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [400, 401, 500])
def test_a_token_echoed_in_an_error_status_is_hidden(openai_server, make_openai, code):
    openai_server.on("chat", error_status(code, "Invalid API key: %s (check it)" % TOKEN))
    with pytest.raises(APIStatusError) as info:
        make_openai().complete("hi")
    error = info.value
    assert TOKEN not in str(error) and TOKEN not in repr(error) and TOKEN not in (error.body or "")
    assert "Invalid API key: hf_*** (check it)" in str(error)
    assert error.body == "Invalid API key: hf_*** (check it)"


def test_a_token_echoed_in_vllms_unauthorized_shape_is_hidden(openai_server, make_openai):
    openai_server.on("chat", json_reply({"error": "Unauthorized: " + TOKEN}, 401))
    with pytest.raises(APIStatusError) as info:
        make_openai().complete("hi")
    assert "Unauthorized: hf_***" in str(info.value) and TOKEN not in str(info.value)
    assert info.value.body == "Unauthorized: hf_***"


@pytest.mark.parametrize("call", ["chat", "complete", "events"])
def test_a_token_echoed_in_an_error_inside_the_stream_is_hidden(openai_server, make_openai, call):
    openai_server.on("chat", sse(ROLE, content("Hel"), error_event("bad key %s" % TOKEN), DONE))
    with pytest.raises(AppError) as info:
        result = getattr(make_openai(), call)("hi")
        if call != "complete":
            list(result)
    error = info.value
    assert "bad key hf_***" in str(error) and TOKEN not in str(error)
    assert error.message == "bad key hf_***"


def test_an_api_key_from_the_environment_echoed_back_is_hidden_too(openai_server, make_openai, monkeypatch):
    monkeypatch.setenv("QVQ_API_KEY", API_KEY)
    openai_server.on("chat", error_status(401, "Invalid API key: " + API_KEY))
    with pytest.raises(APIStatusError) as info:
        make_openai(token=None).complete("hi")
    assert "Invalid API key: hf_***" in str(info.value) and API_KEY not in str(info.value)


def test_the_token_is_in_no_log_record(openai_server, make_openai, caplog):
    caplog.set_level(logging.DEBUG)
    openai_server.on("chat", error_status(401, "Invalid API key: " + TOKEN), times=1)
    client = make_openai()
    with pytest.raises(APIStatusError):
        client.complete("hi")
    assert client.complete("hi", max_tokens=5) == ANSWER
    assert caplog.records  # the qvq_sdk logger said something at DEBUG
    assert not any(TOKEN in record.getMessage() for record in caplog.records)


def test_a_client_of_a_base_url_takes_no_space(openai_server, monkeypatch):
    monkeypatch.delenv("QVQ_API_KEY", raising=False)
    with pytest.raises(InputError) as info:
        QVQClient(TOKEN, base_url=openai_server.base_url, protocol="openai", space="Qwen/QVQ-72B-preview")
    assert info.value.input == "base_url"
    with pytest.raises(InputError):
        QVQClient(TOKEN, protocol="openai")
