"""Knowing why a Space is down, and waiting for one that wakes up: a client that knows its
Space id (``space=``, alone or with ``base_url=``) and meets HTTP 404 or 503 asks Hugging
Face's API (``GET {HF_ENDPOINT}/api/spaces/<id>/runtime``) for the Space's stage.

- A Space that sleeps or starts (SLEEPING, STOPPED, BUILDING, APP_STARTING, RUNNING_BUILDING,
  RUNNING_APP_STARTING) is waited for: the stage is polled every few seconds and the Space
  asked again, until it answers, within ``wake_timeout=`` and ``deadline=``; past either,
  ``APITimeoutError`` naming the stage. ``events()`` yields ``WakingUp`` meanwhile. The
  waits are recorded, not slept (the ``clock`` fixture).
- A Space that needs its owner (PAUSED, BUILD_ERROR, RUNTIME_ERROR, CONFIG_ERROR, NO_APP_FILE)
  fails at once: ``ServiceUnavailableError`` with ``.space_stage`` and advice.
- Any other stage is named in the original error. A lookup that fails leaves the original
  error as it was; a client built with ``base_url=`` alone never looks anything up.

The token goes to the Hub as ``Authorization`` only (a private Space's runtime needs it),
never as ``X-HF-Authorization``, and never to wherever that API might redirect.
"""

from __future__ import annotations

import logging
import types

import pytest
import requests
import responses
from httpkit import ANSWER, BASE, HF_BASE, PNG, TOKEN, FakeSpace

from qvq_sdk import (
    APITimeoutError,
    AuthenticationError,
    Done,
    NotFoundError,
    QVQClient,
    RateLimitError,
    ServiceUnavailableError,
    TextUpdate,
    WakingUp,
)
from qvq_sdk._cancel import CancelToken
from qvq_sdk._deadline import Deadline

SPACE = "Qwen/QVQ-72B-preview"
RUNTIME = "https://huggingface.co/api/spaces/%s/runtime" % SPACE
HF_PREFIX = HF_BASE + "/gradio_api"

WAKING = ["SLEEPING", "STOPPED", "BUILDING", "APP_STARTING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"]
FAILED = ["PAUSED", "BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR", "NO_APP_FILE"]
ADVICE = {  # words the error must say, besides the stage
    "PAUSED": ["owner", "duplicate"],
    "BUILD_ERROR": ["failed to build", "owner"],
    "RUNTIME_ERROR": ["runtime error", "owner"],
    "CONFIG_ERROR": ["configuration", "owner"],
    "NO_APP_FILE": ["no app file", "owner"],
}
DOWN = [(404, NotFoundError), (503, ServiceUnavailableError)]


class Clock:
    """The waking wait's clock (qvq_sdk._waking.CLOCK) and the deadline's, in one fake time
    that moves only when the wait pauses; the pauses are recorded."""

    def __init__(self):
        self.now = 1000.0
        self.pauses = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds, signal):
        self.pauses.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr("qvq_sdk._waking.CLOCK", fake)
    monkeypatch.setattr("qvq_sdk._deadline.time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


def lookups(rsps):
    return [call.request for call in rsps.calls if call.request.url.startswith("https://huggingface.co/")]


def runtime_says(rsps, *stages):
    """The Hub's answers, in order; the last one is repeated."""
    for stage in stages:
        rsps.add(responses.GET, RUNTIME, json={"stage": stage, "hardware": {"current": "cpu-basic"}})


def fail_config(rsps, status, times=1):
    for _ in range(times):
        rsps.add(responses.GET, HF_BASE + "/config", status=status, json={"detail": "Space is down"})


def config_requests(rsps):
    return [c for c in rsps.calls if c.request.url == HF_BASE + "/config"]


# -- a Space that needs its owner fails at once ----------------------------------------------------


@pytest.mark.parametrize("stage", FAILED)
@pytest.mark.parametrize("status", [404, 503])
def test_a_space_that_needs_its_owner_fails_at_once(rsps, clock, stage, status):
    fail_config(rsps, status)
    runtime_says(rsps, stage)
    with pytest.raises(ServiceUnavailableError) as info:
        QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi")
    error = info.value
    assert error.status_code == status
    assert error.space_stage == stage
    assert stage in str(error) and SPACE in str(error)
    for words in ADVICE[stage]:
        assert words in str(error)
    assert clock.pauses == []
    assert len(lookups(rsps)) == 1 and len(config_requests(rsps)) == 1


# -- other stages are named ------------------------------------------------------------------------


@pytest.mark.parametrize("stage, words", [("RUNNING", "RUNNING"), ("DELETING", "deleted"), ("NEW_STAGE", "NEW_STAGE")])
@pytest.mark.parametrize("status, error_class", DOWN, ids=["404", "503"])
def test_the_error_names_a_stage_that_is_not_waited_for(rsps, clock, stage, words, status, error_class):
    fail_config(rsps, status)
    runtime_says(rsps, stage)
    with pytest.raises(error_class) as info:
        QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi")
    error = info.value
    assert error.status_code == status
    assert words in str(error)
    assert error.space_stage == stage
    assert str(error).startswith("Not found (HTTP 404)" if status == 404 else "The Space is unavailable")
    assert clock.pauses == []


@pytest.mark.parametrize("stage", WAKING)
@pytest.mark.parametrize("status, error_class", DOWN, ids=["404", "503"])
def test_wake_timeout_0_names_a_waking_stage_without_waiting(rsps, clock, stage, status, error_class):
    fail_config(rsps, status)
    runtime_says(rsps, stage)
    with pytest.raises(error_class) as info:
        QVQClient(token=TOKEN, space=SPACE, max_retries=0, wake_timeout=0).complete("hi")
    assert info.value.space_stage == stage
    assert stage in str(info.value) and "retry in" in str(info.value)
    assert clock.pauses == [] and len(lookups(rsps)) == 1


@pytest.mark.parametrize("where", ["config", "upload", "join", "queue-stream", "call", "call-stream"])
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
    with pytest.raises(ServiceUnavailableError) as info:
        QVQClient(token=TOKEN, space=SPACE, protocol=protocol, max_retries=0).complete(
            "hi", images=PNG if where == "upload" else None
        )
    assert info.value.status_code == status
    assert info.value.space_stage == "PAUSED"
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
    runtime_says(rsps, "RUNNING")
    client = QVQClient(token=TOKEN, space=SPACE, max_retries=2)
    with pytest.raises(ServiceUnavailableError):
        client.complete("hi")
    assert len(config_requests(rsps)) == 3
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
    "stage-lower-case": {"json": {"stage": "sleeping"}},
    "deeply-nested": {"body": "[" * 5000, "content_type": "application/json"},
    "huge-body": {"body": '{"stage": "' + "X" * 2_000_000 + '"}', "content_type": "application/json"},
}


@pytest.mark.parametrize("failure", sorted(FAILED_LOOKUPS))
@pytest.mark.parametrize("status, error_class", DOWN, ids=["404", "503"])
def test_a_failing_lookup_still_gives_the_original_error(rsps, clock, failure, status, error_class):
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
    assert clock.pauses == []  # a stage it does not know is not waited for


@pytest.mark.parametrize("lookup_status", [401, 404])
def test_an_unknown_or_private_space_says_so(rsps, lookup_status):
    fail_config(rsps, 404)
    rsps.add(responses.GET, RUNTIME, status=lookup_status, json={"error": "Repository not found"})
    with pytest.raises(NotFoundError) as info:
        QVQClient(token=False, space=SPACE, max_retries=0).complete("hi")
    assert info.value.status_code == 404
    assert str(info.value).startswith("Not found (HTTP 404)")
    assert SPACE in str(info.value)


# -- waiting for a Space that wakes up ---------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 404])
def test_a_sleeping_space_is_waited_for_until_it_answers(rsps, clock, status):
    fail_config(rsps, status, times=3)  # the first ask and two more while it wakes
    FakeSpace(rsps, base=HF_BASE).config().queue()
    runtime_says(rsps, "SLEEPING", "APP_STARTING", "APP_STARTING")
    client = QVQClient(token=TOKEN, space=SPACE, max_retries=0)

    events = list(client.events("hi"))

    waking = [event for event in events if isinstance(event, WakingUp)]
    assert waking == [WakingUp("SLEEPING", 0.0), WakingUp("APP_STARTING", 3.0), WakingUp("APP_STARTING", 6.0)]
    assert events[: len(waking)] == waking  # before anything else of the chat
    assert events[-1] == Done(ANSWER)
    assert clock.pauses == [3.0, 3.0, 3.0]
    assert len(config_requests(rsps)) == 4  # asked again after each pause
    assert len(lookups(rsps)) == 3


def test_chat_and_complete_wait_too_and_say_so_in_the_log(rsps, clock, caplog):
    caplog.set_level(logging.INFO, logger="qvq_sdk")
    fail_config(rsps, 503, times=2)
    FakeSpace(rsps, base=HF_BASE).config().queue()
    runtime_says(rsps, "SLEEPING")
    client = QVQClient(token=TOKEN, space=SPACE, max_retries=0)
    assert list(client.chat("hi")) == ["Hel", "lo", " world"]  # WakingUp is not text
    assert client.complete("again") == ANSWER  # the config is known now: no wait
    assert clock.pauses == [3.0, 3.0]
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("waking up (SLEEPING)" in line for line in said)


def test_every_waking_stage_is_waited_for(rsps, clock):
    fail_config(rsps, 503, times=len(WAKING))
    FakeSpace(rsps, base=HF_BASE).config().queue()
    runtime_says(rsps, *WAKING)
    events = list(QVQClient(token=TOKEN, space=SPACE, max_retries=0).events("hi"))
    assert [event.stage for event in events if isinstance(event, WakingUp)] == WAKING
    assert events[-1] == Done(ANSWER)


@pytest.mark.parametrize("protocol, start", [("queue", "/queue/join"), ("call", "/call/generate")])
def test_a_job_start_that_meets_a_sleeping_space_waits_and_starts_one_job(rsps, clock, protocol, start):
    space = FakeSpace(rsps, base=HF_BASE).config()
    client = QVQClient(token=TOKEN, space=SPACE, protocol=protocol, max_retries=0)
    known = types.SimpleNamespace(cancel=CancelToken(), deadline=Deadline(None))
    client._runner._get_config(known)  # the config is known: the job start is the first request
    for _ in range(2):
        rsps.add(responses.POST, HF_PREFIX + start, status=503, body="waking")
    space.queue() if protocol == "queue" else space.call()
    runtime_says(rsps, "SLEEPING")
    assert client.complete("hi") == ANSWER
    starts = [c for c in rsps.calls if c.request.url == HF_PREFIX + start]
    assert [c.response.status_code for c in starts] == [503, 503, 200]  # 503: not queued; one job started
    assert clock.pauses == [3.0, 3.0]


def test_an_upload_that_meets_a_sleeping_space_waits(rsps, clock):
    space = FakeSpace(rsps, base=HF_BASE).config()
    rsps.add(responses.POST, HF_PREFIX + "/upload", status=503, body="waking")
    space.upload().queue()
    runtime_says(rsps, "STOPPED")
    assert QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi", images=PNG) == ANSWER
    assert clock.pauses == [3.0]


def test_a_stream_that_meets_an_outage_is_not_waited_for(rsps, clock):
    FakeSpace(rsps, base=HF_BASE).config()
    rsps.add(responses.POST, HF_PREFIX + "/queue/join", json={"event_id": "e1"})
    rsps.add(responses.GET, HF_PREFIX + "/queue/data", status=503, body="down")
    runtime_says(rsps, "SLEEPING")
    with pytest.raises(ServiceUnavailableError) as info:
        QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi")
    assert info.value.space_stage == "SLEEPING"  # named, but the job was started: not sent again
    assert clock.pauses == []


def test_the_wait_ends_at_wake_timeout_with_the_stage_named(rsps, clock):
    fail_config(rsps, 503)
    runtime_says(rsps, "BUILDING")
    client = QVQClient(token=TOKEN, space=SPACE, max_retries=0, wake_timeout=10)
    with pytest.raises(APITimeoutError) as info:
        list(client.events("hi"))
    assert "BUILDING" in str(info.value) and "wake_timeout" in str(info.value)
    assert clock.pauses == [3.0, 3.0, 3.0, 1.0]  # never past the limit
    assert len(config_requests(rsps)) == 5


def test_the_default_wake_timeout_is_minutes(rsps, clock):
    assert QVQClient().wake_timeout == 300.0
    fail_config(rsps, 503)
    runtime_says(rsps, "APP_STARTING")
    with pytest.raises(APITimeoutError) as info:
        QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi")
    assert sum(clock.pauses) == pytest.approx(300.0)
    assert "APP_STARTING" in str(info.value) and "300 s" in str(info.value)


def test_the_wait_ends_at_the_deadline_with_the_stage_named(rsps, clock):
    fail_config(rsps, 503)
    runtime_says(rsps, "SLEEPING")
    client = QVQClient(token=TOKEN, space=SPACE, max_retries=0)
    with pytest.raises(APITimeoutError) as info:
        client.complete("hi", deadline=7)
    assert "SLEEPING" in str(info.value) and "deadline" in str(info.value)
    assert sum(clock.pauses) == pytest.approx(7.0)
    assert max(clock.pauses) <= 3.0


def test_wake_timeout_none_waits_as_long_as_the_deadline_allows(rsps, clock):
    fail_config(rsps, 503)
    runtime_says(rsps, "SLEEPING")
    client = QVQClient(token=TOKEN, space=SPACE, max_retries=0, wake_timeout=None, deadline=900)
    with pytest.raises(APITimeoutError) as info:
        client.complete("hi")
    assert "deadline" in str(info.value)
    assert sum(clock.pauses) == pytest.approx(900.0)


def test_a_space_that_turns_paused_while_waited_for_fails_then(rsps, clock):
    fail_config(rsps, 503)
    runtime_says(rsps, "SLEEPING", "SLEEPING", "PAUSED")
    with pytest.raises(ServiceUnavailableError) as info:
        QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi")
    assert info.value.space_stage == "PAUSED"
    assert clock.pauses == [3.0, 3.0]


def test_a_space_that_runs_but_still_fails_is_asked_once_more_then_fails(rsps, clock):
    fail_config(rsps, 503)
    runtime_says(rsps, "APP_STARTING", "RUNNING")
    with pytest.raises(ServiceUnavailableError) as info:
        QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi")
    assert info.value.space_stage == "RUNNING"
    assert clock.pauses == [3.0, 3.0]  # one more look after it said RUNNING (its proxy may lag)


def test_a_hub_that_stops_answering_during_the_wait_does_not_end_it(rsps, clock):
    fail_config(rsps, 503, times=3)
    FakeSpace(rsps, base=HF_BASE).config().queue()
    runtime_says(rsps, "SLEEPING")
    rsps.add(responses.GET, RUNTIME, status=502, body="hub down")
    rsps.add(responses.GET, RUNTIME, body=requests.exceptions.ConnectionError("refused"))
    events = list(QVQClient(token=TOKEN, space=SPACE, max_retries=0).events("hi"))
    assert [e.stage for e in events if isinstance(e, WakingUp)] == ["SLEEPING"] * 3
    assert events[-1] == Done(ANSWER)


def test_stopping_a_chat_during_the_wait_ends_it_quietly(rsps, clock):
    fail_config(rsps, 503)
    runtime_says(rsps, "SLEEPING")
    chat = QVQClient(token=TOKEN, space=SPACE, max_retries=0).events("hi")
    assert isinstance(next(chat), WakingUp)
    chat.stop()
    assert list(chat) == []
    assert chat.stopped
    assert len(config_requests(rsps)) == 1  # nothing asked after the stop


def test_the_stage_lookups_follow_hf_endpoint(rsps, clock, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.mirror.example/")
    mirror = "https://hub.mirror.example/api/spaces/%s/runtime" % SPACE
    fail_config(rsps, 503)
    rsps.add(responses.GET, mirror, json={"stage": "PAUSED"})
    with pytest.raises(ServiceUnavailableError) as info:
        QVQClient(token=TOKEN, space=SPACE, max_retries=0).complete("hi")
    assert info.value.space_stage == "PAUSED"
    assert lookups(rsps) == []
    (lookup,) = [c.request for c in rsps.calls if c.request.url == mirror]
    assert lookup.headers["Authorization"] == "Bearer " + TOKEN


# -- the token and the lookup --------------------------------------------------------------------


def test_the_token_goes_to_huggingface_as_authorization_only(rsps):
    fail_config(rsps, 503)
    runtime_says(rsps, "PAUSED")
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
    with pytest.raises(ServiceUnavailableError) as info:
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


def test_a_client_with_space_and_base_url_talks_to_base_url_and_asks_about_space(rsps, clock):
    rsps.add(responses.GET, BASE + "/config", status=503, body="asleep")
    FakeSpace(rsps).config().queue()
    runtime_says(rsps, "SLEEPING")
    client = QVQClient(token=TOKEN, space=SPACE, base_url=BASE, max_retries=0)
    assert (client.base_url, client.space) == (BASE, SPACE)
    events = list(client.events("hi"))
    assert [e for e in events if isinstance(e, WakingUp)] == [WakingUp("SLEEPING", 0.0)]
    assert isinstance(events[-2], TextUpdate) and events[-1] == Done(ANSWER)
    assert {c.request.url.split("/")[2] for c in rsps.calls} == {"127.0.0.1:7860", "huggingface.co"}
