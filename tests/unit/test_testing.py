"""qvq_sdk.testing.FakeSpace: the offline test kit, driven through the real client."""

from __future__ import annotations

import base64
import os
import time

import pytest

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
    with pytest.raises(APITimeoutError):
        client.complete("q", deadline=0.3)
    assert time.monotonic() - started < 2.0


def test_slow_stream_can_be_cancelled(protocol):
    client = FakeSpace().answer("a", "b", delay=30).client(protocol=protocol)
    chunks = client.chat("q")
    started = time.monotonic()
    with pytest.raises(StopIteration):
        chunks.close()
        next(chunks)
    assert time.monotonic() - started < 1.0


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
