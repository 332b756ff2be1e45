"""Waiting for a sleeping Space over real sockets: a Hub stand-in on 127.0.0.1 (``HF_ENDPOINT``)
says the Space's stage, and a FaultSpace in front answers 503 while the Space "sleeps".

The client is given both ``space=`` (what it asks the Hub about) and ``base_url=`` (where it
talks). The wait's pauses are real but short (``WAKE_POLL_SECONDS`` patched to 0.05 s),
except where a test checks that a stop cuts a real 3 s pause short: that one waits for the
wait to say it has begun a pause (``PauseSignal``, wrapping ``qvq_sdk._waking.CLOCK``, the
wait's clock that tests may replace) and for the reader to be in it, not for a fixed time.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "faults"))

from faultspace import ANSWER, FaultSpace, status, wait_until_in
from hubkit import HubStandIn

from qvq_sdk import APITimeoutError, Done, QVQClient, ServiceUnavailableError, WakingUp

SPACE = "Qwen/QVQ-72B-preview"
TOKEN = "hf_WakingTestTokenDoNotLeak0123456789"
ASLEEP = status(503, '{"error": "The Space is waking up"}', "application/json")


class PauseSignal:
    """The waking wait's clock, as it is (real pauses), and ``pausing``: set as a pause begins."""

    def __init__(self, clock):
        self._clock = clock
        self.pausing = threading.Event()

    def monotonic(self):
        return self._clock.monotonic()

    def sleep(self, seconds, *args):
        self.pausing.set()
        self._clock.sleep(seconds, *args)


@pytest.fixture
def pauses(monkeypatch):
    import qvq_sdk._waking

    signal = PauseSignal(qvq_sdk._waking.CLOCK)
    monkeypatch.setattr("qvq_sdk._waking.CLOCK", signal)
    return signal


@pytest.fixture
def quick_polls(monkeypatch):
    monkeypatch.setattr("qvq_sdk._waking.WAKE_POLL_SECONDS", 0.05)


@pytest.fixture
def front():
    with FaultSpace() as server:
        yield server
    assert server.errors == []


@pytest.fixture
def hub(monkeypatch):
    with HubStandIn(space=SPACE) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def client_of(front, **options):
    options.setdefault("token", TOKEN)
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", (2, 5))
    return QVQClient(space=SPACE, base_url=front.base_url, **options)


def test_a_sleeping_space_is_waited_for_and_answers(front, hub, quick_polls):
    front.on("config", ASLEEP, times=3)
    hub.set_stages("SLEEPING", "SLEEPING", "APP_STARTING", "RUNNING")
    with client_of(front) as client:
        events = list(client.events("hi"))
    waking = [event for event in events if isinstance(event, WakingUp)]
    assert [event.stage for event in waking] == ["SLEEPING", "SLEEPING", "APP_STARTING"]
    assert [event.waited for event in waking] == sorted(event.waited for event in waking)
    assert events[-1] == Done(ANSWER)
    assert len(front.requests_to("config")) == 4
    lookups = hub.lookups()
    assert len(lookups) == 3
    for path, headers in lookups:
        assert path == "/api/spaces/%s/runtime" % SPACE
        assert headers["authorization"] == "Bearer " + TOKEN
        assert "x-hf-authorization" not in headers


def test_a_paused_space_fails_at_once(front, hub, quick_polls):
    front.on("config", ASLEEP)
    hub.set_stages("PAUSED")
    with client_of(front) as client, pytest.raises(ServiceUnavailableError) as info:
        client.complete("hi")
    assert info.value.space_stage == "PAUSED" and "owner" in str(info.value)
    assert len(front.requests_to("config")) == 1 and len(hub.lookups()) == 1


def test_the_wait_ends_at_wake_timeout(front, hub, quick_polls):
    front.on("config", ASLEEP)
    hub.set_stages("BUILDING")
    started = time.monotonic()
    with client_of(front, wake_timeout=0.5) as client, pytest.raises(APITimeoutError) as info:
        client.complete("hi")
    assert 0.5 <= time.monotonic() - started < 3
    assert "BUILDING" in str(info.value) and "wake_timeout" in str(info.value)


def test_the_wait_ends_at_the_deadline(front, hub, quick_polls):
    front.on("config", ASLEEP)
    hub.set_stages("SLEEPING")
    started = time.monotonic()
    with client_of(front) as client, pytest.raises(APITimeoutError) as info:
        client.complete("hi", deadline=0.5)
    assert time.monotonic() - started < 3
    assert "SLEEPING" in str(info.value) and "deadline" in str(info.value)


def test_a_stop_from_another_thread_cuts_the_wait_short(front, hub, pauses):
    """The real 3 s pause between two looks at the stage ends at once on stop()."""
    front.on("config", ASLEEP)
    hub.set_stages("SLEEPING")
    with client_of(front) as client:
        chat = client.events("hi")
        seen = []
        waiting = threading.Event()

        def read():
            for event in chat:
                seen.append(event)
                waiting.set()

        reader = threading.Thread(target=read)
        reader.start()
        assert waiting.wait(10)
        assert pauses.pausing.wait(10), "the wait never began its pause"
        assert wait_until_in(reader, "threading.py", "wait"), "the reader is not waiting in the pause"
        stopped_at = time.monotonic()
        chat.stop()
        reader.join(5)
        assert not reader.is_alive()
        assert time.monotonic() - stopped_at < 1.0
    assert chat.stopped and seen == [WakingUp("SLEEPING", seen[0].waited)]
    assert len(front.requests_to("config")) == 1  # nothing asked after the stop


def test_a_client_with_base_url_only_does_not_wait(front, hub, quick_polls):
    front.on("config", ASLEEP)
    hub.set_stages("SLEEPING")
    with QVQClient(token=TOKEN, base_url=front.base_url, max_retries=0) as client:
        with pytest.raises(ServiceUnavailableError) as info:
            client.complete("hi")
    assert info.value.space_stage is None and hub.lookups() == []
