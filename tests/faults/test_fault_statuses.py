"""HTTP statuses and odd answers from the Space, at each request of a chat, on both protocols:
a full queue, rate limits, server errors with huge or HTML bodies, refusals, redirects to
another host, and an upload that goes wrong."""

from __future__ import annotations

import time

import pytest
from faultspace import ANSWER, TOKEN, WIRES, event_stream, json_reply, redirect, reset, status

from qvq_sdk import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
)

PROTOCOLS = ["queue", "call"]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
AUTH_HEADERS = ("authorization", "x-hf-authorization")

# Every request a chat makes: (protocol, route, image needed to reach it, retried)
STAGES = [
    ("queue", "config", False, True),
    ("queue", "upload", True, True),
    ("queue", "join", False, True),
    ("queue", "queue/data", False, False),
    ("call", "config", False, True),
    ("call", "call", False, True),
    ("call", "call/stream", False, False),
]
STAGE_CASES = [pytest.param(*stage, id="%s-%s" % stage[:2]) for stage in STAGES]


def chat(client, image):
    return client.complete("hi", images=PNG if image else None)


# -- the queue is full, rate limits -------------------------------------------------------------

QUEUE_FULL = {"detail": "Queue is full. Max size is 4"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_queue_full_then_success_is_retried_and_the_answer_is_right(space, make_client, sleeps, protocol):
    start = WIRES[protocol].start
    space.on(start, json_reply(QUEUE_FULL, code=503), times=2)
    assert make_client(protocol).complete("hi") == ANSWER
    assert len(space.requests_to(start)) == 3
    assert len(sleeps) == 2 and all(0 < delay <= 8 for delay in sleeps)
    assert len(space.requests_to(WIRES[protocol].stream)) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_queue_full_every_time_is_a_service_unavailable_error(space, make_client, protocol):
    space.on(WIRES[protocol].start, json_reply(QUEUE_FULL, code=503))
    with pytest.raises(ServiceUnavailableError) as info:
        make_client(protocol).complete("hi")
    assert info.value.status_code == 503
    assert "queue is full" in str(info.value)
    assert len(space.requests_to(WIRES[protocol].start)) == 3


@pytest.mark.parametrize("protocol, route, image, retried", [c for c in STAGE_CASES if c.values[3]])
def test_429_with_retry_after_is_waited_for_then_retried(space, make_client, sleeps, protocol, route, image, retried):
    space.on(route, status(429, "slow down", headers={"Retry-After": "7"}), times=1)
    assert chat(make_client(protocol), image) == ANSWER
    assert sleeps == [7.0]


@pytest.mark.parametrize("protocol, route, image, retried", STAGE_CASES)
def test_429_asking_for_more_than_a_minute_is_a_rate_limit_error(
    space, make_client, sleeps, protocol, route, image, retried
):
    space.on(route, status(429, "slow down", headers={"Retry-After": "120"}))
    with pytest.raises(RateLimitError) as info:
        chat(make_client(protocol), image)
    assert info.value.retry_after == 120
    assert "retry in 120 s" in str(info.value)
    assert sleeps == []
    assert len(space.requests_to(route)) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_429_on_the_stream_is_not_retried(space, make_client, sleeps, protocol):
    stream = WIRES[protocol].stream
    space.on(stream, status(429, "slow down", headers={"Retry-After": "1"}))
    with pytest.raises(RateLimitError):
        make_client(protocol).complete("hi")
    assert len(space.requests_to(stream)) == 1 and sleeps == []


# -- server errors with big or HTML bodies -------------------------------------------------------

HTML_500 = (
    "<!DOCTYPE html><html><head><title>500</title><style>body { color: red }</style>"
    "<script>var secret = 'x';</script></head><body><h1>Internal Server Error</h1>"
    "<p>The server had a problem.</p></body></html>"
)
TRACEBACK = "Traceback (most recent call last):\n" + '  File "/app/app.py", line 1, in <module>\n' * 130_000


@pytest.mark.parametrize("protocol, route, image, retried", STAGE_CASES)
def test_500_with_an_html_page_keeps_its_words_only(space, make_client, protocol, route, image, retried):
    space.on(route, status(500, HTML_500, "text/html; charset=utf-8"))
    with pytest.raises(ServiceUnavailableError) as info:
        chat(make_client(protocol), image)
    assert info.value.status_code == 500
    assert "Internal Server Error" in info.value.body
    assert "<" not in info.value.body and "secret" not in info.value.body
    assert len(space.requests_to(route)) == 1  # 500 is not retried


@pytest.mark.parametrize("protocol, route, image, retried", STAGE_CASES)
def test_500_with_a_5_megabyte_traceback_keeps_a_short_excerpt(space, make_client, protocol, route, image, retried):
    assert len(TRACEBACK) > 5_000_000
    space.on(route, status(500, TRACEBACK))
    with pytest.raises(ServiceUnavailableError) as info:
        chat(make_client(protocol), image)
    assert info.value.body.startswith("Traceback (most recent call last):")
    assert len(info.value.body) <= 300
    assert len(str(info.value)) < 600 and len(repr(info.value)) < 700


@pytest.mark.parametrize("body", ["<" * 5_000_000, "<script>" * 600_000, "<a" * 2_500_000], ids=["lt", "script", "tag"])
def test_500_with_a_pathological_html_body_is_reported_quickly(space, make_client, body):
    space.on("config", status(500, body, "text/html"))
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as info:
        make_client("queue").complete("hi")
    assert len(info.value.body) <= 300
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_500_with_deeply_nested_json_is_still_a_service_unavailable_error(space, make_client, protocol):
    space.on(WIRES[protocol].start, status(500, "[" * 100_000, "application/json"))
    with pytest.raises(ServiceUnavailableError):
        make_client(protocol).complete("hi")


# -- refusals and gone Spaces --------------------------------------------------------------------

REFUSALS = [
    (401, AuthenticationError, "token"),
    (403, AuthenticationError, "token"),
    (404, NotFoundError, "Not found"),
    (410, ServiceUnavailableError, "gone or stopped"),
]


@pytest.mark.parametrize("code, error_class, words", REFUSALS, ids=[str(r[0]) for r in REFUSALS])
@pytest.mark.parametrize("protocol, route, image, retried", STAGE_CASES)
def test_refusals_map_to_their_error(
    space, make_client, sleeps, protocol, route, image, retried, code, error_class, words
):
    space.on(route, json_reply({"detail": "nope"}, code=code))
    with pytest.raises(error_class) as info:
        chat(make_client(protocol), image)
    assert info.value.status_code == code
    assert words in str(info.value) and "nope" in str(info.value)
    assert len(space.requests_to(route)) == 1 and sleeps == []
    assert TOKEN not in str(info.value) + repr(info.value)


# -- redirects to another host ---------------------------------------------------------------------


MOVED_TO = {
    "config": "/config",
    "upload": "/gradio_api/upload",
    "join": "/gradio_api/queue/join",
    "queue/data": "/gradio_api/queue/data?session_hash=moved",
    "call": "/gradio_api/call/generate",
    "call/stream": "/gradio_api/call/generate/moved",
}
# 302 turns a POST into a GET, so POSTs are redirected with 307 only.
REDIRECT_CASES = [
    pytest.param(*stage, code, id="%s-%s-%d" % (stage[0], stage[1], code))
    for stage in STAGES
    for code in (302, 307)
    if code == 307 or stage[1] in ("config", "queue/data", "call/stream")
]


@pytest.mark.parametrize("protocol, route, image, retried, code", REDIRECT_CASES)
def test_a_redirect_to_another_host_is_followed_without_the_token(
    space, other_host, make_client, protocol, route, image, retried, code
):
    location = other_host.base_url + MOVED_TO[route]
    space.on(route, redirect(location, code=code))
    assert chat(make_client(protocol), image) == ANSWER
    assert len(other_host.requests) == 1
    moved = other_host.requests[0]
    for header in AUTH_HEADERS:
        assert header not in moved.headers
    assert TOKEN.encode() not in moved.body
    for request in space.requests:  # the Space itself got the token every time
        assert request.headers["authorization"] == "Bearer " + TOKEN


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_redirect_to_a_host_that_resets_is_a_connection_error_without_the_token(
    space, other_host, make_client, protocol
):
    other_host.on("config", reset())
    space.on("config", redirect(other_host.base_url + "/config"))
    with pytest.raises(APIConnectionError):
        make_client(protocol, max_retries=0).complete("hi")
    assert [r.headers.get("authorization") for r in other_host.requests] == [None]


def test_a_redirect_loop_between_two_hosts_ends(space, other_host, make_client):
    space.on("config", redirect(other_host.base_url + "/config"))
    other_host.on("config", redirect(space.base_url + "/config"))
    with pytest.raises(APIConnectionError) as info:
        make_client("queue", max_retries=0).complete("hi")
    assert "Too many redirects" in str(info.value)
    assert all("authorization" not in r.headers for r in other_host.requests)


# -- the upload ----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_upload_answering_an_empty_list_is_a_stream_error(space, make_client, protocol):
    space.on("upload", json_reply([]))
    with pytest.raises(StreamError) as info:
        make_client(protocol).complete("hi", images=PNG)
    assert "not stored" in str(info.value)
    assert space.requests_to(WIRES[protocol].start) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_upload_answering_413_is_a_status_error(space, make_client, protocol):
    space.on("upload", json_reply({"detail": "File too large"}, code=413))
    with pytest.raises(APIStatusError) as info:
        make_client(protocol).complete("hi", images=PNG)
    assert info.value.status_code == 413
    assert "File too large" in str(info.value)
    assert len(space.requests_to("upload")) == 1
    assert space.requests_to(WIRES[protocol].start) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_upload_answering_500_is_a_service_unavailable_error(space, make_client, protocol):
    space.on("upload", status(500, "Internal Server Error"))
    with pytest.raises(ServiceUnavailableError) as info:
        make_client(protocol).complete("hi", images=PNG)
    assert info.value.status_code == 500
    assert len(space.requests_to("upload")) == 1
    assert space.requests_to(WIRES[protocol].start) == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_upload_answering_other_than_paths_is_a_stream_error(space, make_client, protocol):
    space.on("upload", json_reply({"files": ["/tmp/x.png"]}))
    with pytest.raises(StreamError):
        make_client(protocol).complete("hi", images=PNG)
    assert space.requests_to(WIRES[protocol].start) == []


def test_the_stream_reply_that_is_not_an_event_stream_is_a_stream_error(space, make_client):
    space.on("queue/data", event_stream(b"<html>login</html>", content_type="text/html"))
    with pytest.raises(StreamError) as info:
        make_client("queue").complete("hi")
    assert "text/html" in str(info.value)
