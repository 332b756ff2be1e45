"""Stopping one chat from another thread, and waiting for a sleeping Space, against real Gradio.

- ``ChatStream.stop()`` from another thread while a reader is blocked in the ``slow ID``
  command's stream: the reader's loop ends at once and quietly, the app records that it
  stopped within 1 s of the stop, and another chat of the same client goes on to its end.
  The stop comes once the app's own record says it is generating (``Server.ticks``) and the
  reader is in a socket read, not after a fixed pause.
- A Space "sleeping" behind a front that answers 503 (hubkit.SleepingFront, then a plain
  relay to the Gradio server) while a Hub stand-in (``HF_ENDPOINT``) says SLEEPING, then
  APP_STARTING: the chat waits (``WakingUp`` events) and then gets the Space's real answer.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "faults"))

from faultspace import wait_until_in
from hubkit import HubStandIn, SleepingFront

from qvq_sdk import Done, QVQClient, ServiceUnavailableError, WakingUp

PROTOCOLS = ["queue", "call"]
SPACE = "Qwen/QVQ-72B-preview"
WAIT_LIMIT = 20.0


def _record_id(request, suffix):
    return "%s-%s-%d" % (request.node.name.replace("[", "-").replace("]", ""), suffix, os.getpid())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stop_from_another_thread_stops_the_space_within_a_second(gradio_server, request, protocol):
    record_id = _record_id(request, protocol)
    other_id = _record_id(request, protocol + "-other")
    with QVQClient(base_url=gradio_server.base_url, protocol=protocol, timeout=(5, 30)) as client:
        chat = client.chat(f"slow {record_id} 2000")
        other = client.chat(f"slow {other_id} 30")  # 1.5 s of ticks, then its answer
        received, errors, other_text = [], [], []
        reading = threading.Event()

        def read():
            try:
                for text in chat:
                    received.append(text)
                    reading.set()
            except BaseException as exc:
                errors.append(exc)

        def read_other():
            other_text.append("".join(other))

        reader = threading.Thread(target=read)
        other_reader = threading.Thread(target=read_other)
        reader.start()
        other_reader.start()
        assert reading.wait(WAIT_LIMIT), "no text from the slow chat"
        deadline = time.monotonic() + WAIT_LIMIT
        while gradio_server.ticks(record_id) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # a poll of the app's record, bounded by the deadline
        assert gradio_server.ticks(record_id) >= 3, "the app did not go on generating"
        assert not gradio_server.app_stopped(record_id)  # it is generating as the stop comes
        assert wait_until_in(reader, "socket.py", "readinto"), "the reader never waited in a read"

        stopped_at = time.monotonic()
        chat.stop()
        reader.join(5)
        ended_after = time.monotonic() - stopped_at
        while not gradio_server.app_stopped(record_id) and time.monotonic() - stopped_at < WAIT_LIMIT:
            time.sleep(0.01)
        app_stopped_after = time.monotonic() - stopped_at

        other_reader.join(WAIT_LIMIT)
    assert not reader.is_alive() and ended_after < 0.5, "the reader's loop did not end at once"
    assert errors == [] and chat.stopped
    assert "".join(received).startswith("tick 0 ")
    assert app_stopped_after < 1.0, "the Space went on generating for %.2f s after the stop" % app_stopped_after
    assert not other_reader.is_alive()
    assert other_text == [" ".join("tick %d" % i for i in range(30)) + " "]  # the other chat went on, whole


@pytest.fixture
def quick_polls(monkeypatch):
    monkeypatch.setattr("qvq_sdk._waking.WAKE_POLL_SECONDS", 0.05)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_sleeping_space_is_waited_for_then_answers(gradio_server, monkeypatch, quick_polls, protocol):
    with SleepingFront(gradio_server.port, sleeping_requests=3) as front, HubStandIn(
        ["SLEEPING", "SLEEPING", "APP_STARTING", "RUNNING"], space=SPACE
    ) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with QVQClient(space=SPACE, base_url=front.url, protocol=protocol, max_retries=0, timeout=(5, 30)) as client:
            events = list(client.events("hi"))
            assert client.complete("again") == "You said: again | image: none"  # awake now: no wait
        assert front.sleeping_answers == 3 and front.relayed_connections >= 1
        assert len(hub.lookups()) == 3
    waking = [event for event in events if isinstance(event, WakingUp)]
    assert [event.stage for event in waking] == ["SLEEPING", "SLEEPING", "APP_STARTING"]
    assert events[-1] == Done("You said: hi | image: none")


def test_a_paused_space_fails_at_once_with_its_stage(gradio_server, monkeypatch, quick_polls):
    with SleepingFront(gradio_server.port) as front, HubStandIn(["PAUSED"], space=SPACE) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with QVQClient(space=SPACE, base_url=front.url, max_retries=0) as client:
            with pytest.raises(ServiceUnavailableError) as info:
                client.complete("hi")
    assert info.value.space_stage == "PAUSED" and "owner" in str(info.value)
    assert front.sleeping_answers == 1
