"""qvq_sdk._transport.statuses: each HTTP error status as its error class, what the body says
(a JSON error's message, an HTML page's words) read without reading all of it, and the
wording by server (the Space, or an OpenAI-compatible server)."""

from __future__ import annotations

import io
import json
import time

import pytest
import requests
import urllib3

from qvq_sdk._constants import BODY_EXCERPT_CHARS, ERROR_BODY_READ_LIMIT
from qvq_sdk._openai import SERVER
from qvq_sdk._transport.statuses import SPACE, body_excerpt, html_words, status_error
from qvq_sdk.errors import (
    APIStatusError,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
)

URL = "https://space.example/gradio_api/queue/join"


def reply(status, body=b"", headers=None, url=URL + "?session_hash=abc"):
    """A requests response as the transport gets it (its body already read)."""
    response = requests.Response()
    response.status_code = status
    response._content = body.encode() if isinstance(body, str) else body
    response.headers.update(headers or {})
    response.url = url
    return response


def streamed_reply(status, body, headers=None):
    """A response whose body is still on the wire (``stream=True``)."""
    response = requests.Response()
    response.status_code = status
    response.raw = urllib3.HTTPResponse(body=io.BytesIO(body), headers=headers or {}, preload_content=False)
    response.headers.update(headers or {})
    response.url = URL
    return response


@pytest.mark.parametrize(
    "status, cls",
    [
        (400, APIStatusError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (405, APIStatusError),
        (410, ServiceUnavailableError),
        (413, APIStatusError),
        (422, APIStatusError),
        (429, RateLimitError),
        (500, ServiceUnavailableError),
        (502, ServiceUnavailableError),
        (503, ServiceUnavailableError),
        (504, ServiceUnavailableError),
    ],
)
def test_each_status_has_its_class(status, cls):
    error = status_error(reply(status), authenticated=False)
    assert type(error) is cls
    assert error.status_code == status
    assert f"HTTP {status}" in str(error)


def test_the_fields_of_a_status_error():
    error = status_error(reply(422, '{"detail": "bad data"}', {"x-request-id": "req-1"}), authenticated=False)
    assert error.body == "bad data"
    assert error.url == URL  # without the query
    assert error.request_id == "req-1"
    assert str(error) == "The Space rejected the request (HTTP 422: bad data)."


@pytest.mark.parametrize(
    "body, said",
    [
        ({"error": {"message": "model not loaded", "type": "x"}}, "model not loaded"),
        ({"error": "quota exceeded"}, "quota exceeded"),
        ({"detail": "Not authenticated"}, "Not authenticated"),
        ({"message": "slow down"}, "slow down"),
        ({"detail": "first", "error": "second"}, "first"),  # detail, then error, then message
        ({"detail": [{"loc": ["body"], "msg": "field required"}]}, '[{"loc": ["body"], "msg": "field required"}]'),
        ({"error": {"code": 7}}, '{"code": 7}'),  # an object without a message: its JSON
        ({"error": {"message": ""}, "x": 1}, '{"message": ""}'),
        ({"other": "x"}, '{"other": "x"}'),  # nothing it knows: the body as it is
        ({"detail": ""}, '{"detail": ""}'),
    ],
)
def test_what_a_json_error_body_says(body, said):
    error = status_error(reply(400, json.dumps(body)), authenticated=False)
    assert error.body == said
    assert str(error) == f"The Space rejected the request (HTTP 400: {said})."


def test_what_an_html_error_page_says():
    page = (
        "<!DOCTYPE html><html><head><title>502 Bad Gateway</title>"
        "<style>body { color: red }</style><script>var token = 'x';</script></head>"
        "<body><h1>Bad   Gateway</h1>\n<p>nginx</p></body></html>"
    )
    error = status_error(reply(502, page), authenticated=False)
    assert error.body == "502 Bad Gateway Bad Gateway nginx"
    assert "color" not in str(error) and "token" not in str(error)


def test_plain_text_and_empty_bodies():
    assert status_error(reply(500, "Internal   Server\nError"), authenticated=False).body == "Internal Server Error"
    error = status_error(reply(500), authenticated=False)
    assert error.body == ""
    assert str(error) == "The Space failed (HTTP 500). Retry later."


def test_a_long_body_is_cut_to_an_excerpt():
    error = status_error(reply(500, "x" * 10_000), authenticated=False)
    assert len(error.body) == BODY_EXCERPT_CHARS
    assert error.body.endswith("…")


def test_a_streamed_body_is_read_no_further_than_the_limit():
    body = b"y" * (ERROR_BODY_READ_LIMIT * 4)
    response = streamed_reply(500, body)
    error = status_error(response, authenticated=False, streamed=True)
    assert error.body.startswith("yyy")
    assert response.raw.tell() == ERROR_BODY_READ_LIMIT  # the rest was never read


def test_a_streamed_json_body_is_read_too():
    response = streamed_reply(404, b'{"detail": "Session not found."}')
    assert status_error(response, authenticated=False, streamed=True).body == "Session not found."


def test_a_body_that_breaks_while_read_does_not_hide_the_status():
    class Broken:
        def read(self, *args, **kwargs):
            raise urllib3.exceptions.ProtocolError("Connection broken")

    response = streamed_reply(503, b"")
    response.raw = Broken()
    error = status_error(response, authenticated=False, streamed=True)
    assert type(error) is ServiceUnavailableError and error.body == ""
    assert body_excerpt(response, streamed=True) == ""


def test_a_body_that_is_not_utf8_is_still_read():
    assert status_error(reply(500, b"caf\xe9 down"), authenticated=False).body == "caf\ufffd down"


@pytest.mark.parametrize("server", [SPACE, SERVER])
def test_the_wording_by_server(server):
    name = server.name[0].upper() + server.name[1:]
    cases = {
        (401, True): f"{name} refused access (HTTP 401). {server.bad_token}",
        (403, False): f"{name} refused access (HTTP 403). {server.no_token}",
        (404, False): f"Not found (HTTP 404) at {URL}. {server.not_found}",
        (429, False): f"{name} is rate-limiting requests (HTTP 429); retry later.",
        (410, False): f"{name} is gone or stopped (HTTP 410). Retry later.",
        (503, False): f"{name} is unavailable ({server.unavailable}) (HTTP 503). Retry later.",
        (502, False): f"{name} failed (HTTP 502). Retry later.",
        (400, False): f"{name} rejected the request (HTTP 400).",
    }
    for (status, authenticated), message in cases.items():
        assert str(status_error(reply(status), authenticated=authenticated, server=server)) == message


def test_the_space_and_the_server_are_worded_apart():
    assert SERVER.name == "the server" and SPACE.name == "the Space"
    space = str(status_error(reply(401), authenticated=False, server=SPACE))
    server = str(status_error(reply(401), authenticated=False, server=SERVER))
    assert "HF_TOKEN" in space and "QVQ_API_KEY" in server
    assert "Space" not in server


def test_a_full_queue_is_said_so():
    error = status_error(reply(503, '{"detail": "Queue is full. Try later."}'), authenticated=False)
    assert str(error) == "The Space's queue is full (HTTP 503: Queue is full. Try later.). Retry later."
    error = status_error(reply(500, "queue is full"), authenticated=False, server=SERVER)
    assert str(error).startswith("The server's queue is full (HTTP 500")


def test_a_rate_limit_carries_its_retry_after():
    error = status_error(reply(429, "", {"Retry-After": "12"}), authenticated=True)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 12.0
    assert str(error) == "The Space is rate-limiting requests (HTTP 429); retry in 12 s."
    assert status_error(reply(429), authenticated=True).retry_after is None


def test_html_words_is_linear_on_a_page_of_angle_brackets():
    started = time.perf_counter()
    html_words("<a" * 64 * 1024)
    html_words("<b>x" * 16 * 1024 + "<" * 64 * 1024)
    html_words("<script>" + "<" * 64 * 1024)
    assert time.perf_counter() - started < 0.5


def test_html_words():
    assert " ".join(html_words("a <b>c</b> <script>x</script>d <STYLE a=1>y</style>e").split()) == "a c d e"
    assert html_words("no markup") == "no markup"
    assert html_words("cut <unclosed") == "cut "
    assert html_words("a <script>never closed") == "a "
