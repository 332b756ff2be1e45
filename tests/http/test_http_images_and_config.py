"""Image URLs, uploads and the Space's /config: what fails, where, and before what."""

import pytest
import responses
from httpkit import ANSWER, BASE, PNG, PREFIX, FakeSpace, calls_to, gradio5_config, json_of, make_png

from qvq_sdk import APIStatusError, InputError, NotFoundError, QVQClient, StreamError

IMAGE_URL = "https://images.example.com/photos/cat.png"


def image_message(url):
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}],
        }
    ]


# -- image URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["chat", "complete", "events"])
@pytest.mark.parametrize(
    "answer",
    [
        {"status": 404, "body": "Not Found"},
        {"status": 403, "body": "Forbidden"},
        {"status": 200, "body": "<html><body>A page, not a picture</body></html>", "content_type": "text/html"},
        {"status": 200, "body": b"", "content_type": "image/png"},
        {"status": 200, "body": b"GIF8 truncated", "content_type": "image/gif"},
    ],
    ids=["404", "403", "html", "empty", "truncated"],
)
def test_a_bad_image_url_is_an_input_error_at_the_call(space, rsps, method, answer):
    rsps.add(responses.GET, IMAGE_URL, **answer)
    space.config().upload().queue()
    client = QVQClient(base_url=BASE)

    with pytest.raises(InputError) as info:
        getattr(client, method)("hi", images=[IMAGE_URL])  # raised here, not when iterating

    assert info.value.input == "images[0]"
    assert "images[0]" in str(info.value)
    if answer["status"] != 200:
        assert str(answer["status"]) in str(info.value)
        assert "images.example.com/photos/cat.png" in str(info.value)
    assert len(rsps.calls) == 1
    assert rsps.calls[0].request.url == IMAGE_URL
    assert space.space_calls() == []


def test_a_bad_image_url_in_a_message_part_is_named(space, rsps):
    rsps.add(responses.GET, IMAGE_URL, status=404, body="Not Found")
    space.config().upload().queue()

    with pytest.raises(InputError) as info:
        QVQClient(base_url=BASE).chat(image_message(IMAGE_URL))

    assert info.value.input == "messages (image part)"
    assert space.space_calls() == []


def test_an_image_url_in_a_message_part_is_downloaded_and_sent(space, rsps):
    rsps.add(responses.GET, IMAGE_URL, body=PNG, content_type="image/png")
    space.config().upload().queue()

    assert QVQClient(base_url=BASE).complete(image_message(IMAGE_URL)) == ANSWER
    assert len(calls_to(rsps, "POST", "/gradio_api/upload")) == 1


def test_the_image_url_query_is_not_shown_in_errors(space, rsps):
    url = IMAGE_URL + "?X-Amz-Signature=secretsignature"
    rsps.add(responses.GET, url, status=404, body="Not Found")

    with pytest.raises(InputError) as info:
        QVQClient(base_url=BASE).chat("hi", images=url)

    assert "secretsignature" not in str(info.value)


def test_an_image_url_download_goes_through_the_clients_options(space, rsps):
    rsps.add(responses.GET, IMAGE_URL, body=PNG, content_type="image/png")
    space.config().upload().queue()
    proxies = {"https": "http://proxy.example.net:3128"}

    QVQClient(base_url=BASE, timeout=(2, 3), proxies=proxies).complete("hi", images=IMAGE_URL)

    download = rsps.calls[0].request
    assert download.url == IMAGE_URL
    assert download.req_kwargs["timeout"] == (2.0, 3.0)
    assert download.req_kwargs["proxies"]["https"] == proxies["https"]


# -- uploads ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer", [[], ["/a.png", "/b.png"], {"path": "/a.png"}, [None]], ids=["empty", "two", "dict", "null"]
)
def test_an_upload_that_does_not_answer_one_path_is_a_stream_error(space, rsps, answer):
    space.config()
    rsps.add(responses.POST, PREFIX + "/upload", json=answer)

    with pytest.raises(StreamError):
        QVQClient(base_url=BASE).complete("hi", images=PNG)

    assert calls_to(rsps, "POST", "/gradio_api/queue/join") == []


def test_an_upload_that_is_not_json_is_a_stream_error(space, rsps):
    space.config()
    rsps.add(responses.POST, PREFIX + "/upload", body="<html>oops</html>", content_type="text/html")

    with pytest.raises(StreamError) as info:
        QVQClient(base_url=BASE).complete("hi", images=PNG)

    assert "oops" in str(info.value)


def test_an_upload_too_large_for_the_server_is_a_413(space, rsps):
    space.config()
    rsps.add(responses.POST, PREFIX + "/upload", status=413, json={"detail": "File too large"})

    with pytest.raises(APIStatusError) as info:
        QVQClient(base_url=BASE).complete("hi", images=PNG)

    assert type(info.value) is APIStatusError
    assert info.value.status_code == 413
    assert info.value.body == "File too large"
    assert len(calls_to(rsps, "POST", "/gradio_api/upload")) == 1


def test_an_image_over_max_file_size_is_refused_before_uploading(space, rsps):
    big = make_png(64, 64)
    space.config(max_file_size=len(big) - 1).upload().queue()

    with pytest.raises(InputError) as info:
        QVQClient(base_url=BASE).complete("hi", images=big)

    assert info.value.input == "images[0]"
    assert str(len(big) - 1) in str(info.value)
    assert calls_to(rsps, "POST", "/gradio_api/upload") == []
    assert calls_to(rsps, "POST", "/gradio_api/queue/join") == []


def test_an_image_of_exactly_max_file_size_is_uploaded(space, rsps):
    space.config(max_file_size=len(PNG)).upload().queue()

    assert QVQClient(base_url=BASE).complete("hi", images=PNG) == ANSWER
    assert len(calls_to(rsps, "POST", "/gradio_api/upload")) == 1


# -- /config ------------------------------------------------------------------------------


def test_a_space_without_generate_is_not_found_naming_its_endpoints(rsps):
    rsps.add(responses.GET, BASE + "/config", json=gradio5_config(endpoints=("lambda", "predict", "/chat")))

    with pytest.raises(NotFoundError) as info:
        QVQClient(base_url=BASE).complete("hi")

    message = str(info.value)
    assert "/generate" in message
    for name in ("/lambda", "/predict", "/chat"):
        assert name in message
    assert info.value.status_code == 404
    assert len(rsps.calls) == 1


def test_generate_found_by_a_slashed_api_name_and_its_id(rsps):
    config = gradio5_config(endpoints=("a", "b", "/generate"))
    config["dependencies"][2]["id"] = 7
    rsps.add(responses.GET, BASE + "/config", json=config)
    FakeSpace(rsps).queue()

    assert QVQClient(base_url=BASE).complete("hi") == ANSWER
    assert json_of(calls_to(rsps, "POST", "/gradio_api/queue/join")[0])["fn_index"] == 7


@pytest.mark.parametrize(
    "answer",
    [
        {"body": "<!doctype html><html><body>Welcome to nginx</body></html>", "content_type": "text/html"},
        {"body": "", "content_type": "application/json"},
        {"json": {"hello": "world"}},
        {"json": ["not", "a", "config"]},
    ],
    ids=["html", "empty", "no-dependencies", "list"],
)
def test_a_config_that_is_not_a_gradio_config_is_a_stream_error(rsps, answer):
    rsps.add(responses.GET, BASE + "/config", **answer)

    with pytest.raises(StreamError) as info:
        QVQClient(base_url=BASE).complete("hi")

    assert BASE + "/config" in str(info.value)
    assert len(rsps.calls) == 1


def test_a_huge_non_json_config_gives_a_short_message(rsps):
    rsps.add(responses.GET, BASE + "/config", body="<html>" + "x" * 5_000_000 + "</html>", content_type="text/html")

    with pytest.raises(StreamError) as info:
        QVQClient(base_url=BASE).complete("hi")

    assert len(str(info.value)) < 400


def test_a_failed_config_is_fetched_again_on_the_next_chat(space, rsps):
    rsps.add(responses.GET, BASE + "/config", status=500, body="boom")
    space.config().queue()
    client = QVQClient(base_url=BASE, max_retries=0)

    with pytest.raises(APIStatusError):
        client.complete("hi")
    assert client.complete("hi") == ANSWER
    assert len(calls_to(rsps, "GET", "/config")) == 2


def test_an_unknown_queue_protocol_is_refused_before_joining(space, rsps):
    space.config(protocol="ws").queue()

    with pytest.raises(StreamError) as info:
        QVQClient(base_url=BASE).complete("hi")

    assert "'ws'" in str(info.value)
    assert calls_to(rsps, "POST", "/gradio_api/queue/join") == []


@pytest.mark.parametrize("protocol, path", [("queue", "/gradio_api/queue/join"), ("call", "/gradio_api/call/generate")])
@pytest.mark.parametrize(
    "answer", [{"json": {}}, {"json": {"event_id": ""}}, {"body": "nope"}], ids=["no-id", "empty-id", "not-json"]
)
def test_a_start_without_an_event_id_is_a_stream_error(space, rsps, protocol, path, answer):
    space.config()
    rsps.add(responses.POST, BASE + path, **answer)

    with pytest.raises(StreamError):
        QVQClient(base_url=BASE, protocol=protocol).complete("hi")

    assert [c.request.method for c in rsps.calls] == ["GET", "POST"]
