"""What every request carries: the User-Agent, the token (to the Space only), Accept."""

import pytest
import responses
from httpkit import (
    ANSWER,
    BASE,
    HF_BASE,
    PNG,
    PREFIX,
    TOKEN,
    FakeSpace,
    calls_to,
    gradio5_config,
    json_of,
    queue_sse,
)

import qvq_sdk
from qvq_sdk import APIConnectionError, QVQClient

IMAGE_URL = "https://images.example.com/cat.png"
AUTH_HEADERS = ("Authorization", "X-HF-Authorization")


def full_chat(rsps, token, base=BASE, protocol="queue"):
    """A chat that makes every kind of request: image download, config, upload, start, stream."""
    rsps.add(responses.GET, IMAGE_URL, body=PNG, content_type="image/png")
    space = FakeSpace(rsps, base=base).config().upload()
    if protocol == "queue":
        space.queue()
    else:
        space.call()
    client = QVQClient(token=token, base_url=base, protocol=protocol)
    assert client.complete("hi", images=IMAGE_URL) == ANSWER
    assert len(rsps.calls) == 5
    return [call.request for call in rsps.calls]


@pytest.mark.parametrize("protocol", ["queue", "call"])
def test_user_agent_names_the_sdk_and_its_version(rsps, protocol):
    for request in full_chat(rsps, token=TOKEN, protocol=protocol):
        user_agent = request.headers["User-Agent"]
        assert "qvq-sdk/" + qvq_sdk.__version__ in user_agent


@pytest.mark.parametrize("protocol", ["queue", "call"])
@pytest.mark.parametrize("base", [BASE, HF_BASE])
def test_token_goes_to_every_space_request_and_not_to_the_image_host(rsps, protocol, base):
    requests_sent = full_chat(rsps, token=TOKEN, base=base, protocol=protocol)

    download, space_requests = requests_sent[0], requests_sent[1:]
    assert download.url == IMAGE_URL
    for header in AUTH_HEADERS:
        assert header not in download.headers
    assert len(space_requests) == 4
    for request in space_requests:
        assert request.url.startswith(base)
        assert request.headers["Authorization"] == "Bearer " + TOKEN
        assert request.headers["X-HF-Authorization"] == "Bearer " + TOKEN


def test_no_token_sends_no_auth_header(rsps):
    for request in full_chat(rsps, token=None):
        for header in AUTH_HEADERS:
            assert header not in request.headers


def test_token_from_the_environment_is_sent_to_the_space(rsps, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "  " + TOKEN + "\n")
    for request in full_chat(rsps, token=None, base=HF_BASE)[1:]:
        assert request.headers["Authorization"] == "Bearer " + TOKEN


def test_token_from_the_environment_goes_to_no_other_server(rsps, monkeypatch):
    """A Hugging Face token found in the environment goes to Hugging Face's hosts only."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    for request in full_chat(rsps, token=None):  # BASE: a server on 127.0.0.1
        for header in AUTH_HEADERS:
            assert header not in request.headers


def test_token_false_ignores_the_environment(rsps, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    for request in full_chat(rsps, token=False):
        for header in AUTH_HEADERS:
            assert header not in request.headers


def test_saved_token_file_is_used(rsps, monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("HF_TOKEN_PATH", str(token_file))
    for request in full_chat(rsps, token=None, base=HF_BASE)[1:]:
        assert request.headers["X-HF-Authorization"] == "Bearer " + TOKEN


def test_a_same_host_image_url_is_fetched_without_the_token_too(rsps):
    url = BASE + "/file=cat.png"
    rsps.add(responses.GET, url, body=PNG, content_type="image/png")
    FakeSpace(rsps).config().upload().queue()

    assert QVQClient(token=TOKEN, base_url=BASE).complete("hi", images=url) == ANSWER
    assert rsps.calls[0].request.url == url
    for header in AUTH_HEADERS:
        assert header not in rsps.calls[0].request.headers


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_another_host_drops_the_token(rsps, status):
    elsewhere = "https://cdn.example.org/mirror/config"
    rsps.add(responses.GET, BASE + "/config", status=status, headers={"Location": elsewhere})
    rsps.add(responses.GET, elsewhere, json=gradio5_config())
    FakeSpace(rsps).queue()

    assert QVQClient(token=TOKEN, base_url=BASE).complete("hi") == ANSWER

    first, followed = rsps.calls[0].request, rsps.calls[1].request
    assert first.headers["Authorization"] == "Bearer " + TOKEN
    assert followed.url == elsewhere
    for header in AUTH_HEADERS:
        assert header not in followed.headers
    assert "qvq-sdk/" in followed.headers["User-Agent"]
    # Back on the Space, the token is sent again.
    assert calls_to(rsps, "POST", "/gradio_api/queue/join")[0].headers["Authorization"] == "Bearer " + TOKEN


@pytest.mark.parametrize("status", [302, 307])
def test_redirect_to_another_port_or_scheme_of_the_same_host_drops_the_token(rsps, status):
    elsewhere = "http://127.0.0.1:9999/config"
    rsps.add(responses.GET, BASE + "/config", status=status, headers={"Location": elsewhere})
    rsps.add(responses.GET, elsewhere, json=gradio5_config())
    FakeSpace(rsps).queue()

    assert QVQClient(token=TOKEN, base_url=BASE).complete("hi") == ANSWER
    for header in AUTH_HEADERS:
        assert header not in rsps.calls[1].request.headers


@pytest.mark.parametrize("status", [302, 307])
def test_same_host_redirect_keeps_the_token(rsps, status):
    rsps.add(responses.GET, BASE + "/config", status=status, headers={"Location": "/gradio_api/config"})
    rsps.add(responses.GET, PREFIX + "/config", json=gradio5_config())
    FakeSpace(rsps).queue()

    assert QVQClient(token=TOKEN, base_url=BASE).complete("hi") == ANSWER

    followed = rsps.calls[1].request
    assert followed.url == PREFIX + "/config"
    assert followed.headers["Authorization"] == "Bearer " + TOKEN
    assert followed.headers["X-HF-Authorization"] == "Bearer " + TOKEN


def test_307_on_a_post_to_another_host_resends_the_body_without_the_token(rsps):
    elsewhere = "https://edge.example.org/gradio_api/queue/join"
    FakeSpace(rsps).config()
    rsps.add(responses.POST, PREFIX + "/queue/join", status=307, headers={"Location": elsewhere})
    rsps.add(responses.POST, elsewhere, json={"event_id": "e1"})
    rsps.add(
        responses.GET,
        PREFIX + "/queue/data",
        body=queue_sse("e1"),
        content_type="text/event-stream",
    )

    assert QVQClient(token=TOKEN, base_url=BASE).complete("hi") == ANSWER

    (redirected,) = [c.request for c in rsps.calls if c.request.url == elsewhere]
    assert redirected.method == "POST"
    assert json_of(redirected)["data"] == [None, "hi"]
    for header in AUTH_HEADERS:
        assert header not in redirected.headers


def test_an_endless_redirect_loop_is_an_error(rsps):
    rsps.add(responses.GET, BASE + "/config", status=302, headers={"Location": "/config"})

    with pytest.raises(APIConnectionError) as info:
        QVQClient(base_url=BASE, max_retries=0).complete("hi")

    assert "redirect" in str(info.value).lower()
    assert 2 <= len(rsps.calls) <= 10


@pytest.mark.parametrize(
    "protocol, path", [("queue", "/gradio_api/queue/data"), ("call", "/gradio_api/call/generate/abc123")]
)
def test_the_stream_get_asks_for_an_event_stream(rsps, protocol, path):
    full_chat(rsps, token=None, protocol=protocol)

    (stream,) = calls_to(rsps, "GET", path)
    assert stream.headers["Accept"] == "text/event-stream"
    assert stream.req_kwargs["stream"] is True
