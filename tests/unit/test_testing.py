"""qvq_sdk.testing.FakeSpace: the offline test kit, driven through the real client."""

from __future__ import annotations

import base64
import contextlib
import gc
import os
import threading
import time

import pytest
import requests

import qvq_sdk
from qvq_sdk import (
    APITimeoutError,
    AppError,
    Done,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    TextUpdate,
)
from qvq_sdk._events import Progress, SpaceLog, WakingUp
from qvq_sdk.cli import main
from qvq_sdk.testing import FakeSpace

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")


@pytest.fixture(params=["queue", "call"])
def protocol(request):
    return request.param


def test_answer_streams_its_chunks(protocol):
    space = FakeSpace().answer("Hel", "lo, ", "world")
    assert list(space.client(protocol=protocol).chat("hi")) == ["Hel", "lo, ", "world"]
    assert space.prompts == ["hi"]


def test_each_scripted_reply_answers_one_chat_in_order(protocol):
    space = FakeSpace().answer("one").answer("two")
    client = space.client(protocol=protocol)
    assert [client.complete("a"), client.complete("b")] == ["one", "two"]
    with pytest.raises(AppError, match="nothing scripted"):
        client.complete("c")
    assert space.prompts == ["a", "b", "c"]


def test_events_show_queue_text_and_done(protocol):
    events = list(FakeSpace().answer("a", "b").client(protocol=protocol).events("hi"))
    assert events[-1] == Done("ab")
    assert [e.text for e in events if isinstance(e, TextUpdate)] == ["a", "ab"]
    assert any(isinstance(e, qvq_sdk.QueuePosition) for e in events) == (protocol == "queue")


def test_rewrite_is_marked_as_a_replacement(protocol):
    client = FakeSpace().rewrite("Thinking...", "Answer: 42").client(protocol=protocol)
    updates = [e for e in client.events("q") if isinstance(e, TextUpdate)]
    assert [(u.delta, u.replaced) for u in updates] == [("Thinking...", False), ("Answer: 42", True)]


def test_empty_answer_completes_empty(protocol):
    client = FakeSpace().answer().client(protocol=protocol)
    assert list(client.events("q"))[-1] == Done("")


@pytest.mark.parametrize("message", ["Boom", None])
def test_app_error(protocol, message):
    client = FakeSpace().app_error(message, after=("partial",)).client(protocol=protocol)
    received = []
    with pytest.raises(AppError) as info:
        for text in client.chat("q"):
            received.append(text)
    assert received == ["partial"]
    assert info.value.message == message


@pytest.mark.parametrize("retry_after, expected", [(192, 192.0), (None, None), (3725, 3725.0)])
def test_quota_error(protocol, retry_after, expected):
    client = FakeSpace().quota_error(retry_after=retry_after).client(protocol=protocol)
    with pytest.raises(QuotaExceededError) as info:
        client.complete("q")
    assert info.value.retry_after == expected


@pytest.mark.parametrize("status, error", [(503, ServiceUnavailableError), (429, RateLimitError)])
def test_http_error_reaches_the_caller_without_retries(protocol, status, error):
    client = FakeSpace().http_error(status, "Queue is full").client(protocol=protocol)
    with pytest.raises(error) as info:
        client.complete("q")
    assert info.value.status_code == status


def test_http_error_then_answer_is_retried(protocol):
    space = FakeSpace().http_error(503, "Queue is full", retry_after=0).answer("ok")
    assert space.client(protocol=protocol, max_retries=1).complete("q") == "ok"
    assert space.prompts == ["q", "q"]


def test_image_is_uploaded_and_recorded(protocol):
    space = FakeSpace().answer("seen")
    assert space.client(protocol=protocol).complete("look", images=[PNG]) == "seen"
    assert space.images == [PNG]


def test_slow_stream_can_hit_a_deadline(protocol):
    client = FakeSpace().answer("a", "b", "c", delay=0.2).client(protocol=protocol)
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match="deadline"):
        client.complete("q", deadline=0.3)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("deadline", [0.3, 0.6])
def test_a_deadline_ends_a_long_wait_in_time(protocol, deadline):
    # Each chunk comes after 3 s: the deadline must end the wait, not the next chunk.
    client = FakeSpace().answer("a", "b", delay=3).client(protocol=protocol)
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match="deadline") as info:
        client.complete("q", deadline=deadline)
    took = time.monotonic() - started
    assert deadline <= took < deadline + 0.5
    assert "read timeout" not in str(info.value)


def test_a_read_timeout_fires_as_with_a_slow_space(protocol):
    client = FakeSpace().answer("a", "b", delay=1).client(protocol=protocol, timeout=(1, 0.3))
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match="read timeout") as info:
        list(client.chat("q"))
    assert 0.3 <= time.monotonic() - started < 0.8
    assert "0.3 s" in str(info.value)


def test_a_wait_shorter_than_the_read_timeout_is_fine(protocol):
    client = FakeSpace().answer("a", "b", delay=0.2).client(protocol=protocol, timeout=(1, 0.5))
    assert client.complete("q") == "ab"


def test_slow_stream_can_be_cancelled(protocol):
    space = FakeSpace().answer("a", "b", delay=0.05).answer("c", "d", "e", delay=0.5)
    client = space.client(protocol=protocol)
    assert client.complete("whole") == "ab"
    chunks = client.chat("q")
    assert next(chunks) == "c"  # the stream is open, "d" is 0.5 s away
    assert space.cancelled == []
    started = time.monotonic()
    chunks.close()
    # The client closed the stream (it did not wait for "d"): the Space saw the chat go away.
    assert space.cancelled == ["q"]
    assert time.monotonic() - started < 0.3
    with pytest.raises(StopIteration):
        next(chunks)
    client.close()
    assert space.cancelled == ["q"]  # "whole" was read to its end


def test_a_stream_closed_from_another_thread_ends_the_wait(protocol):
    space = FakeSpace().answer("a", "b", delay=0.2).answer("c", delay=30)
    client = space.client(protocol=protocol)
    assert client.complete("first") == "ab"
    chunks = client.chat("q")
    threading.Timer(0.2, client.close).start()
    started = time.monotonic()
    received = []
    with contextlib.suppress(qvq_sdk.QVQError):  # how a closed client ends a chat is its own business
        received.extend(chunks)
    assert received == []
    assert time.monotonic() - started < 2.0
    assert space.cancelled == ["q"]


def test_patch_routes_the_qvq_command(capsys, monkeypatch):
    monkeypatch.delenv("QVQ_BASE_URL", raising=False)
    space = FakeSpace().answer("from ", "the fake").app_error("Boom")
    with space.patch():
        assert main(["hello"]) == 0
        assert main(["again"]) == 1
    out, err = capsys.readouterr()
    assert out == "from the fake\n"
    assert err == "qvq: error: The Space's app failed: Boom\n"
    assert space.prompts == ["hello", "again"]
    assert "QVQ_BASE_URL" not in os.environ


def test_patch_routes_clients_made_inside(monkeypatch):
    monkeypatch.setenv("QVQ_BASE_URL", "http://127.0.0.1:1")
    space = FakeSpace().answer("patched")
    with space.patch(), qvq_sdk.QVQClient(token=False) as client:
        assert client.complete("q") == "patched"
    assert os.environ["QVQ_BASE_URL"] == "http://127.0.0.1:1"


def test_a_rewrite_to_empty_text_is_still_yielded_by_chat(protocol):
    client = FakeSpace().rewrite("Thinking...", "").client(protocol=protocol)
    assert list(client.chat("q")) == ["Thinking...", ""]


# -- the Space's log messages and progress ---------------------------------------------------


def test_logs_and_progress_come_before_the_text_in_order():
    space = FakeSpace().warning("Image was resized").progress(0.25, desc="Thinking").info("Model loaded")
    space.answer("A ", "cat")
    events = list(space.client().events("q"))
    said = [e for e in events if isinstance(e, (SpaceLog, Progress, TextUpdate, Done))]
    assert said == [
        SpaceLog("warning", "Image was resized", "Warning"),
        Progress(0.25, None, None, "steps", "Thinking"),
        SpaceLog("info", "Model loaded", "Info"),
        TextUpdate("A "),
        said[4],
        Done("A cat"),
    ]
    assert said[4].text == "A cat"


def test_log_levels_titles_and_steps():
    space = FakeSpace().log("success", "Saved", title="Done!").log("error", "Careful")
    space.progress(index=2, length=6, unit="steps", desc="Reading").answer("ok")
    events = [e for e in space.client().events("q") if isinstance(e, (SpaceLog, Progress))]
    assert events == [
        SpaceLog("success", "Saved", "Done!"),
        SpaceLog("error", "Careful", "Error"),
        Progress(None, 2, 6, "steps", "Reading"),
    ]


def test_logs_go_with_the_next_reply_that_streams_only():
    space = FakeSpace().answer("first").warning("for the second").http_error(503, retry_after=0).answer("second")
    client = space.client(max_retries=1)
    first = list(client.events("a"))
    assert not any(isinstance(e, SpaceLog) for e in first)
    second = list(client.events("b"))  # the 503 is retried, then "second" streams with its warning
    assert [e for e in second if isinstance(e, SpaceLog)] == [SpaceLog("warning", "for the second", "Warning")]
    assert second[-1] == Done("second")


def test_logs_scripted_last_go_with_the_unscripted_reply():
    space = FakeSpace().warning("nothing left")
    events = []
    with pytest.raises(AppError, match="nothing scripted"):
        events.extend(space.client().events("q"))
    assert SpaceLog("warning", "nothing left", "Warning") in events


def test_the_call_protocol_carries_no_logs_or_progress():
    space = FakeSpace().warning("dropped").progress(0.5).answer("ok")
    events = list(space.client(protocol="call").events("q"))
    assert not any(isinstance(e, (SpaceLog, Progress)) for e in events)
    assert events[-1] == Done("ok")


def test_a_warning_reaches_chat_callers_as_text_and_the_answer_is_intact():
    space = FakeSpace().warning("Image was resized").answer("A ", "cat")
    assert list(space.client().chat("q")) == ["A ", "cat"]


# -- the Space's life on Hugging Face: asleep, paused ------------------------------------------


def runtime(session, space_id=FakeSpace.space_id):
    response = session.get(f"{FakeSpace.hub_url}/api/spaces/{space_id}/runtime")
    assert response.status_code == 200
    return response.json()["stage"]


def test_asleep_answers_503_then_runs_and_the_hub_says_so():
    space = FakeSpace().asleep(2, stages=["SLEEPING", "APP_STARTING"]).answer("ok")
    with space.session() as session:
        assert runtime(session) == "SLEEPING"
        assert space.stage == "APP_STARTING"
        config = session.get(space.url + "/config")
        assert config.status_code == 503
        assert "text/html" in config.headers["Content-Type"]
        assert runtime(session) == "APP_STARTING"
        assert session.post(space.url + "/gradio_api/queue/join", json={}).status_code == 503
        assert runtime(session) == "APP_STARTING"  # until the Space answers a request
        assert session.get(space.url + "/config").status_code == 200
        assert runtime(session) == "RUNNING"
        assert session.get(space.url + "/config").status_code == 200
    assert space.runtime_lookups == [FakeSpace.space_id] * 4


def test_paused_answers_503_until_running_again():
    space = FakeSpace().paused()
    with space.session() as session:
        for _ in range(3):
            assert session.get(space.url + "/config").status_code == 503
            assert runtime(session, "someone/else") == "PAUSED"
        space.running()
        assert session.get(space.url + "/config").status_code == 200
        assert runtime(session) == "RUNNING"
    assert space.runtime_lookups == ["someone/else"] * 3 + [FakeSpace.space_id]
    broken = FakeSpace().paused("RUNTIME_ERROR", status=404)
    with broken.session() as session:
        assert session.get(broken.url + "/config").status_code == 404
        assert runtime(session) == "RUNTIME_ERROR"


@pytest.mark.parametrize("path", ["/api/spaces/just-a-name/runtime", "/api/spaces/a/b/c/runtime", "/api/models/a/b"])
def test_the_fake_hub_knows_only_the_runtime_route(path):
    space = FakeSpace()
    with space.session() as session:
        assert session.get(FakeSpace.hub_url + path).status_code == 404
    assert space.runtime_lookups == []


@pytest.mark.parametrize("bad", [{"times": 0}, {"times": True}, {"stages": []}, {"stages": [""]}])
def test_asleep_refuses_a_bad_script(bad):
    with pytest.raises(ValueError):
        FakeSpace().asleep(**bad)


@pytest.fixture
def fast_waking(monkeypatch):
    """The client polls the Hub every few seconds; here, at once."""
    from qvq_sdk import _waking

    monkeypatch.setattr(_waking, "WAKE_POLL_SECONDS", 0.01)


def test_a_sleeping_space_is_waited_for(protocol, fast_waking):
    space = FakeSpace().asleep(3).answer("awake")
    events = list(space.client(protocol=protocol).events("q"))
    waking = [e for e in events if isinstance(e, WakingUp)]
    assert [e.stage for e in waking] == ["SLEEPING", "APP_STARTING", "APP_STARTING"]
    assert all(isinstance(e.waited, float) for e in waking)
    assert events[-1] == Done("awake")
    assert space.prompts == ["q"]
    assert set(space.runtime_lookups) == {FakeSpace.space_id}
    hub = [r for r in space.requests if r.url.startswith(FakeSpace.hub_url)]
    assert len(hub) == len(space.runtime_lookups) >= 3


def test_a_paused_space_fails_at_once(fast_waking):
    space = FakeSpace().paused()
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as info:
        space.client().complete("q")
    assert time.monotonic() - started < 1.0
    assert info.value.space_stage == "PAUSED"
    assert space.runtime_lookups == [FakeSpace.space_id]


def test_a_client_without_a_space_id_gets_the_503(fast_waking):
    space = FakeSpace().asleep(1).answer("ok")
    with pytest.raises(ServiceUnavailableError):
        qvq_sdk.QVQClient(token=False, max_retries=0, base_url=space.url, session=space.session()).complete("q")
    assert space.runtime_lookups == []


def test_client_asks_the_fake_hub_about_the_space_it_is_given(fast_waking, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1")
    space = FakeSpace().asleep(1).answer("ok")
    client = space.client(space="someone/duplicate")
    assert os.environ["HF_ENDPOINT"] == "http://127.0.0.1:1"  # set only while the client was made
    assert client.complete("q") == "ok"
    assert space.runtime_lookups == ["someone/duplicate"]


# -- the clients of space.client() --------------------------------------------------------


def test_clients_share_one_session_closed_with_the_space(monkeypatch):
    made = []
    original = requests.Session.__init__

    def counting(self, *args, **kwargs):
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "__init__", counting)
    closed = []
    monkeypatch.setattr(requests.Session, "close", lambda self: closed.append(self))
    with FakeSpace() as space:
        for index in range(5):
            space.answer(str(index))
            with space.client() as client:
                assert client.complete("q") == str(index)
        assert len(made) == 1
        assert closed == []  # a client does not close a session it was given
    assert closed == made
    space.answer("again")
    assert space.client().complete("q") == "again"  # a new session after close()
    assert len(made) == 2


def test_a_session_of_your_own_gets_the_fake_mounted():
    space = FakeSpace().answer("mine")
    with requests.Session() as session:
        assert space.client(session=session).complete("q") == "mine"
        assert session.get_adapter(space.url) is session.get_adapter(space.hub_url)


def test_patch_routes_the_space_id_and_the_hub_too(monkeypatch, fast_waking):
    monkeypatch.delenv("QVQ_BASE_URL", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    space = FakeSpace().asleep(1).answer("by id")
    with space.patch():
        assert os.environ["HF_ENDPOINT"] == FakeSpace.hub_url
        client = qvq_sdk.QVQClient(token=False, space=FakeSpace.space_id, max_retries=0)
        assert client.complete("q") == "by id"
    assert "HF_ENDPOINT" not in os.environ
    assert space.runtime_lookups == [FakeSpace.space_id]


def test_an_abandoned_stream_is_not_counted_twice():
    space = FakeSpace().answer("a", "b", delay=0.2)
    chunks = space.client().chat("q")
    assert next(chunks) == "a"
    del chunks
    gc.collect()
    assert space.cancelled == ["q"]
