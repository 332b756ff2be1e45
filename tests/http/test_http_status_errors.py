"""HTTP error statuses → one exception class each, at every request a chat makes."""

import json

import pytest
import responses
from httpkit import BASE, PNG, PREFIX, TOKEN, FakeSpace, calls_to

from qvq_sdk import (
    APIStatusError,
    AuthenticationError,
    NotFoundError,
    QVQClient,
    RateLimitError,
    ServiceUnavailableError,
)

# Where a chat can meet an HTTP error: (stage, protocol, method, path of the failing request).
STAGES = [
    ("config", "queue", "GET", "/config"),
    ("upload", "queue", "POST", "/gradio_api/upload"),
    ("join", "queue", "POST", "/gradio_api/queue/join"),
    ("call", "call", "POST", "/gradio_api/call/generate"),
    ("queue-stream", "queue", "GET", "/gradio_api/queue/data"),
    ("call-stream", "call", "GET", "/gradio_api/call/generate/abc123"),
]
STAGE_IDS = [stage[0] for stage in STAGES]

STATUSES = [
    (401, AuthenticationError),
    (403, AuthenticationError),
    (404, NotFoundError),
    (429, RateLimitError),
    (410, ServiceUnavailableError),
    (500, ServiceUnavailableError),
    (502, ServiceUnavailableError),
    (503, ServiceUnavailableError),
    (504, ServiceUnavailableError),
    (422, APIStatusError),
]


def arrange(rsps, stage, **error):
    """Registers a Space that works up to ``stage``, where it answers ``error``
    (keyword arguments of ``responses.add``). Returns the client and whether to send an image."""
    name, protocol, method, path = stage
    space = FakeSpace(rsps)
    if name == "config":
        rsps.add(method, BASE + path, **error)
        return protocol, False
    space.config()
    if name == "upload":
        rsps.add(method, BASE + path, **error)
        return protocol, True
    if name in ("join", "call"):
        rsps.add(method, BASE + path, **error)
        return protocol, False
    if name == "queue-stream":
        rsps.add_callback(
            responses.POST,
            PREFIX + "/queue/join",
            callback=lambda request: (200, {}, json.dumps({"event_id": "e1"})),
            content_type="application/json",
        )
        rsps.add(method, BASE + path, **error)
        return protocol, False
    rsps.add(responses.POST, PREFIX + "/call/generate", json={"event_id": "abc123"})
    rsps.add(method, BASE + path, **error)
    return protocol, False


def chat(rsps, stage, token=False, max_retries=0, **error):
    protocol, with_image = arrange(rsps, stage, **error)
    client = QVQClient(token=token, base_url=BASE, protocol=protocol, max_retries=max_retries)
    return client.complete("hi", images=PNG if with_image else None)


@pytest.mark.parametrize("stage", STAGES, ids=STAGE_IDS)
@pytest.mark.parametrize("status, error_class", STATUSES, ids=[str(s) for s, _ in STATUSES])
def test_status_maps_to_its_exception(rsps, stage, status, error_class):
    with pytest.raises(error_class) as info:
        chat(rsps, stage, status=status, json={"detail": "the server says no"})

    error = info.value
    assert type(error) is error_class
    assert error.status_code == status
    assert error.body == "the server says no"
    assert error.url == BASE + stage[3]
    assert "the server says no" in str(error)
    assert str(status) in str(error)
    assert len(calls_to(rsps, stage[2], stage[3])) == 1


@pytest.mark.parametrize("stage", STAGES, ids=STAGE_IDS)
def test_rate_limit_carries_retry_after(rsps, stage):
    with pytest.raises(RateLimitError) as info:
        chat(rsps, stage, status=429, body="slow down", headers={"Retry-After": "7"})

    assert info.value.retry_after == 7.0
    assert info.value.status_code == 429


@pytest.mark.parametrize("stage", STAGES, ids=STAGE_IDS)
def test_queue_full_is_named(rsps, stage):
    with pytest.raises(ServiceUnavailableError) as info:
        chat(rsps, stage, status=503, json={"detail": "Queue is full. Max size is 3"})

    assert "queue is full" in str(info.value).lower()
    assert "Queue is full. Max size is 3" in info.value.body


@pytest.mark.parametrize("stage", STAGES, ids=STAGE_IDS)
def test_a_huge_error_body_gives_a_short_excerpt(rsps, stage):
    traceback = "Traceback (most recent call last):\n" + '  File "app.py", line 1, in <module>\n' * 150_000
    body = "<html><head><title>500</title><style>body{}</style></head><body><pre>" + traceback + "</pre></body></html>"
    assert len(body) > 5_000_000

    with pytest.raises(ServiceUnavailableError) as info:
        chat(rsps, stage, status=500, body=body, content_type="text/html")

    error = info.value
    assert error.status_code == 500
    assert 0 < len(error.body) <= 300
    assert error.body.startswith("500 Traceback (most recent call last):")
    assert "<" not in error.body
    assert len(str(error)) < 600
    assert len(repr(error)) < 700


@pytest.mark.parametrize("stage", STAGES, ids=STAGE_IDS)
@pytest.mark.parametrize("status", [401, 403, 404, 500])
def test_no_token_in_errors(rsps, stage, status):
    with pytest.raises(APIStatusError) as info:
        chat(rsps, stage, token=TOKEN, status=status, json={"detail": "Invalid credentials"})

    error = info.value
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)
    assert TOKEN not in (error.body or "")
    assert TOKEN not in (error.url or "")
    # The token was sent, so the advice is about the token, not about a missing one.
    if status in (401, 403):
        assert "token is valid" in str(error)


def test_authentication_error_without_token_says_to_pass_one(rsps):
    with pytest.raises(AuthenticationError) as info:
        chat(rsps, STAGES[0], status=401, body="")

    assert "token" in str(info.value).lower()
    assert "HF_TOKEN" in str(info.value)


def test_request_id_and_compact_repr(rsps):
    with pytest.raises(ServiceUnavailableError) as info:
        chat(rsps, STAGES[0], status=502, body="Bad gateway", headers={"x-request-id": "Root=1-abc"})

    assert info.value.request_id == "Root=1-abc"
    assert repr(info.value).startswith("ServiceUnavailableError(status_code=502, ")
