"""Knowing why a Space is down: a client built from a Space id that meets HTTP 404 or 503
asks Hugging Face's API (``GET https://huggingface.co/api/spaces/<id>/runtime``) once, and
names the Space's stage in the error. A lookup that fails leaves the original error as it
was; a client built with ``base_url=`` never looks anything up. The token goes to
huggingface.co as ``Authorization`` only (a private Space's runtime needs it), never as
``X-HF-Authorization``, and never to wherever that API might redirect.
"""

from __future__ import annotations

import pytest
import requests
import responses
from httpkit import ANSWER, HF_BASE, TOKEN, FakeSpace

from qvq_sdk import (
    APIStatusError,
    AuthenticationError,
    NotFoundError,
    QVQClient,
    RateLimitError,
    ServiceUnavailableError,
)

SPACE = "Qwen/QVQ-72B-preview"
RUNTIME = "https://huggingface.co/api/spaces/%s/runtime" % SPACE
HF_PREFIX = HF_BASE + "/gradio_api"

STAGES = {
    # stage: words the error must say
    "RUNNING": ["RUNNING"],
    "SLEEPING": ["SLEEPING", "retry in a minute"],
    "PAUSED": ["PAUSED"],
    "RUNTIME_ERROR": ["runtime error"],
    "BUILDING": ["BUILDING"],
}
DOWN = [(404, NotFoundError), (503, ServiceUnavailableError)]


def lookups(rsps):
    return [call.request for call in rsps.calls if call.request.url.startswith("https://huggingface.co/")]


def runtime_says(rsps, stage):
    rsps.add(responses.GET, RUNTIME, json={"stage": stage, "hardware": {"current": "cpu-basic"}})


def fail_config(rsps, status):
    rsps.add(responses.GET, HF_BASE + "/config", status=status, json={"detail": "Space is down"})


# -- the stage is named ------------------------------------------------------------------------


@pytest.mark.parametrize("stage", sorted(STAGES))
@pytest.mark.parametrize("status, error_class", DOWN, ids=["404", "503"])
def test_the_error_names_the_spaces_stage(rsps, stage, status, error_class):
    fail_config(rsps, status)
    runtime_says(rsps, stage)
    with pytest.raises(error_class) as info:
        QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi")
    error = info.value
    assert error.status_code == status
    for words in STAGES[stage]:
        assert words in str(error)
    assert error.space_stage == stage
    assert str(error).startswith("Not found (HTTP 404)" if status == 404 else "The Space is unavailable")


@pytest.mark.parametrize(
    "where",
    ["config", "upload", "join", "queue-stream", "call", "call-stream"],
)
@pytest.mark.parametrize("status", [404, 503])
def test_the_stage_is_named_whichever_request_met_the_outage(rsps, where, status):
    space = FakeSpace(rsps, base=HF_BASE)
    protocol = "call" if where.startswith("call") else "queue"
    failing = {
        "config": (responses.GET, HF_BASE + "/config"),
        "upload": (responses.POST, HF_PREFIX + "/upload"),
        "join": (responses.POST, HF_PREFIX + "/queue/join"),
        "queue-stream": (responses.GET, HF_PREFIX + "/queue/data"),
        "call": (responses.POST, HF_PREFIX + "/call/generate"),
        "call-stream": (responses.GET, HF_PREFIX + "/call/generate/abc123"),
    }[where]
    rsps.add(*failing, status=status, body="down")
    if where != "config":
        space.config()
    if where == "queue-stream":
        rsps.add(responses.POST, HF_PREFIX + "/queue/join", json={"event_id": "e1"})
    if where == "call-stream":
        rsps.add(responses.POST, HF_PREFIX + "/call/generate", json={"event_id": "abc123"})
    runtime_says(rsps, "PAUSED")
    with pytest.raises(APIStatusError) as info:
        QVQClient(token=TOKEN, space=SPACE, protocol=protocol, max_retries=0).complete(
            "hi", images=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 10 if where == "upload" else None
        )
    assert info.value.status_code == status
    assert "PAUSED" in str(info.value)
    assert len(lookups(rsps)) == 1


@pytest.mark.parametrize(
    "status, error_class",
    [(401, AuthenticationError), (429, RateLimitError), (500, ServiceUnavailableError), (502, ServiceUnavailableError)],
)
def test_other_statuses_look_nothing_up(rsps, status, error_class):
    fail_config(rsps, status)
    runtime_says(rsps, "PAUSED")
    with pytest.raises(error_class) as info:
        QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi")
    assert "PAUSED" not in str(info.value)
    assert lookups(rsps) == []


# -- at most once per error ----------------------------------------------------------------------


def test_one_lookup_per_error_even_after_retries(rsps, sleeps):
    fail_config(rsps, 503)
    runtime_says(rsps, "SLEEPING")
    client = QVQClient(token=TOKEN, space=SPACE, max_retries=2)
    with pytest.raises(ServiceUnavailableError):
        client.complete("hi")
    assert len([c for c in rsps.calls if c.request.url == HF_BASE + "/config"]) == 3
    assert len(sleeps) == 2
    assert len(lookups(rsps)) == 1

    with pytest.raises(ServiceUnavailableError):  # a second chat, a second error: one more lookup at most
        client.complete("hi")
    assert 1 <= len(lookups(rsps)) <= 2


def test_the_lookup_itself_is_not_retried(rsps, sleeps):
    fail_config(rsps, 503)
    rsps.add(responses.GET, RUNTIME, status=503, body="hub busy")
    with pytest.raises(ServiceUnavailableError):
        QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi")
    assert len(lookups(rsps)) == 1
    assert sleeps == []


def test_no_lookup_when_the_space_answers(rsps):
    FakeSpace(rsps, base=HF_BASE).config().queue()
    assert QVQClient(token=TOKEN, space=SPACE).complete("hi") == ANSWER
    assert lookups(rsps) == []


# -- a failing lookup leaves the original error --------------------------------------------------

FAILED_LOOKUPS = {
    "500": {"status": 500, "body": "oops"},
    "503": {"status": 503, "body": "busy"},
    "refused": {"body": requests.exceptions.ConnectionError("refused")},
    "timeout": {"body": requests.exceptions.ReadTimeout("slow")},
    "not-json": {"body": "<html>hi</html>", "content_type": "text/html"},
    "a-list": {"json": ["RUNNING"]},
    "no-stage": {"json": {"hardware": None}},
    "stage-null": {"json": {"stage": None}},
    "stage-a-number": {"json": {"stage": 5}},
    "stage-empty": {"json": {"stage": ""}},
    "deeply-nested": {"body": "[" * 5000, "content_type": "application/json"},
    "huge-body": {"body": '{"stage": "' + "X" * 2_000_000 + '"}', "content_type": "application/json"},
}


@pytest.mark.parametrize("failure", sorted(FAILED_LOOKUPS))
@pytest.mark.parametrize("status, error_class", DOWN, ids=["404", "503"])
def test_a_failing_lookup_still_gives_the_original_error(rsps, failure, status, error_class):
    fail_config(rsps, status)
    rsps.add(responses.GET, RUNTIME, **FAILED_LOOKUPS[failure])
    with pytest.raises(error_class) as original:  # what the same outage gives a base_url client
        QVQClient(token=TOKEN, base_url=HF_BASE, max_retries=0).complete("hi")

    with pytest.raises(error_class) as info:
        QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi")
    assert info.value.status_code == status
    if failure == "huge-body":
        assert len(str(info.value)) < 1000  # a stage name is not quoted at any length
    else:
        assert str(info.value) == str(original.value)
        assert info.value.space_stage is None


@pytest.mark.parametrize("lookup_status", [401, 404])
def test_an_unknown_or_private_space_says_so(rsps, lookup_status):
    fail_config(rsps, 404)
    rsps.add(responses.GET, RUNTIME, status=lookup_status, json={"error": "Repository not found"})
    with pytest.raises(NotFoundError) as info:
        QVQClient(token=False, space=SPACE, max_retries=0).complete("hi")
    assert info.value.status_code == 404
    assert str(info.value).startswith("Not found (HTTP 404)")
    assert SPACE in str(info.value)


# -- the token and the lookup --------------------------------------------------------------------


def test_the_token_goes_to_huggingface_as_authorization_only(rsps):
    fail_config(rsps, 503)
    runtime_says(rsps, "SLEEPING")
    with pytest.raises(ServiceUnavailableError):
        QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi")
    (lookup,) = lookups(rsps)
    assert lookup.url == RUNTIME
    assert lookup.method == "GET"
    assert lookup.headers["Authorization"] == "Bearer " + TOKEN
    assert "X-HF-Authorization" not in lookup.headers
    assert TOKEN not in lookup.url


def test_without_a_token_the_lookup_sends_none(rsps):
    fail_config(rsps, 404)
    runtime_says(rsps, "PAUSED")
    with pytest.raises(NotFoundError) as info:
        QVQClient(token=False, space=SPACE, max_retries=0).complete("hi")
    (lookup,) = lookups(rsps)
    assert "Authorization" not in lookup.headers and "X-HF-Authorization" not in lookup.headers
    assert "PAUSED" in str(info.value)


@pytest.mark.parametrize("code", [302, 307])
def test_a_redirected_lookup_does_not_carry_the_token_off_huggingface(rsps, code):
    fail_config(rsps, 503)
    elsewhere = "https://status.example.org/spaces/runtime"
    rsps.add(responses.GET, RUNTIME, status=code, headers={"Location": elsewhere})
    rsps.add(responses.GET, elsewhere, json={"stage": "PAUSED"})
    with pytest.raises(ServiceUnavailableError):
        QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi")
    moved = [call.request for call in rsps.calls if call.request.url == elsewhere]
    assert len(moved) == 1
    assert "Authorization" not in moved[0].headers and "X-HF-Authorization" not in moved[0].headers


def test_the_space_never_gets_the_hub_only_treatment(rsps):
    """The Space itself still gets both headers; huggingface.co gets only Authorization."""
    fail_config(rsps, 503)
    runtime_says(rsps, "RUNNING")
    with pytest.raises(ServiceUnavailableError):
        QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi")
    config = rsps.calls[0].request
    assert config.url == HF_BASE + "/config"
    assert config.headers["Authorization"] == config.headers["X-HF-Authorization"] == "Bearer " + TOKEN


# -- base_url clients ----------------------------------------------------------------------------


@pytest.mark.parametrize("base", [HF_BASE, "http://127.0.0.1:7860"])
@pytest.mark.parametrize("status, error_class", DOWN, ids=["404", "503"])
def test_a_base_url_client_never_looks_anything_up(rsps, base, status, error_class):
    rsps.add(responses.GET, base + "/config", status=status, body="down")
    runtime_says(rsps, "PAUSED")
    with pytest.raises(error_class) as info:
        QVQClient(token=TOKEN, base_url=base, max_retries=0).complete("hi")
    assert lookups(rsps) == []
    assert "PAUSED" not in str(info.value)
    assert info.value.space_stage is None
