"""Client options that reach every request (proxies, timeout, session), closing, logging."""

import logging

import pytest
import requests
import responses
from httpkit import ANSWER, BASE, PNG, TOKEN, FakeSpace

from qvq_sdk import QVQClient, QVQError

IMAGE_URL = "https://images.example.com/cat.png"


def full_chat(rsps, protocol="queue", **client_options):
    """One chat making every kind of request; returns the requests sent."""
    rsps.add(responses.GET, IMAGE_URL, body=PNG, content_type="image/png")
    space = FakeSpace(rsps).config().upload()
    if protocol == "queue":
        space.queue()
    else:
        space.call()
    with QVQClient(base_url=BASE, protocol=protocol, **client_options) as client:
        assert client.complete("hi", images=IMAGE_URL) == ANSWER
    requests_sent = [call.request for call in rsps.calls]
    assert len(requests_sent) == 5  # download, config, upload, join/call, stream
    return requests_sent


@pytest.mark.parametrize("protocol", ["queue", "call"])
def test_proxies_go_to_every_request_including_the_stream(rsps, protocol):
    proxies = {"http": "http://proxy.example.net:3128", "https": "http://proxy.example.net:3129"}

    for request in full_chat(rsps, protocol, proxies=proxies):
        sent = request.req_kwargs["proxies"]
        assert {key: sent.get(key) for key in proxies} == proxies, request.url


def test_no_proxies_by_default(rsps):
    for request in full_chat(rsps):
        assert not request.req_kwargs["proxies"]


@pytest.mark.parametrize("protocol", ["queue", "call"])
@pytest.mark.parametrize(
    "timeout, expected",
    [((3, 7.5), (3.0, 7.5)), (12, (12.0, 12.0)), (None, (10.0, 60.0))],
    ids=["pair", "one", "default"],
)
def test_timeout_goes_to_every_request(rsps, protocol, timeout, expected):
    options = {} if timeout is None else {"timeout": timeout}

    for request in full_chat(rsps, protocol, **options):
        assert request.req_kwargs["timeout"] == expected, request.url


def test_the_stream_is_read_lazily(rsps):
    requests_sent = full_chat(rsps)
    assert [r.req_kwargs["stream"] for r in requests_sent] == [False, False, False, False, True]


class RecordingSession(requests.Session):
    instances = []

    def __init__(self):
        super().__init__()
        self.close_calls = 0
        RecordingSession.instances.append(self)

    def close(self):
        self.close_calls += 1
        super().close()


@pytest.fixture
def recording_sessions(monkeypatch):
    RecordingSession.instances = []
    monkeypatch.setattr(requests, "Session", RecordingSession)
    return RecordingSession.instances


def test_a_callers_session_is_used_and_not_closed(rsps):
    session = RecordingSession()
    session.headers["X-Caller"] = "mine"

    requests_sent = full_chat(rsps, session=session)  # closes its client

    for request in requests_sent:
        assert request.headers["X-Caller"] == "mine", request.url
    assert session.close_calls == 0


def test_a_callers_session_stays_usable_after_the_client_closes(rsps):
    session = requests.Session()
    client = QVQClient(base_url=BASE, session=session)
    FakeSpace(rsps).config().queue()
    assert client.complete("hi") == ANSWER
    client.close()

    assert QVQClient(base_url=BASE, session=session).complete("again") == ANSWER


def test_the_clients_own_session_is_closed_by_close(rsps, recording_sessions):
    client = QVQClient(base_url=BASE)
    FakeSpace(rsps).config().queue()
    assert client.complete("hi") == ANSWER
    (session,) = recording_sessions
    assert session.close_calls == 0

    client.close()

    assert session.close_calls == 1
    with pytest.raises(QVQError):
        client.complete("hi")


def test_the_clients_own_session_is_closed_by_with(rsps, recording_sessions):
    FakeSpace(rsps).config().queue()
    with QVQClient(base_url=BASE) as client:
        assert client.complete("hi") == ANSWER
        assert recording_sessions[0].close_calls == 0

    assert [s.close_calls for s in recording_sessions] == [1]


def test_the_clients_own_session_is_closed_when_with_raises(rsps, recording_sessions):
    with pytest.raises(KeyError):
        with QVQClient(base_url=BASE):
            raise KeyError("boom")

    assert [s.close_calls for s in recording_sessions] == [1]


def test_nothing_is_sent_before_the_first_chat(rsps):
    QVQClient(token=TOKEN, base_url=BASE).close()
    assert len(rsps.calls) == 0


# -- logging --------------------------------------------------------------------------------


def request_lines(caplog):
    """The log lines that report a request (its outcome, or its failure)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "qvq_sdk" and (" -> " in r.getMessage() or " failed after " in r.getMessage())
    ]


@pytest.mark.parametrize("protocol", ["queue", "call"])
def test_one_debug_line_per_request_and_never_the_token(rsps, caplog, protocol):
    caplog.set_level(logging.DEBUG, logger="qvq_sdk")

    requests_sent = full_chat(rsps, protocol, token=TOKEN)

    lines = request_lines(caplog)
    assert len(lines) == len(requests_sent) == 5
    for line, request in zip(lines, requests_sent):
        assert line.startswith(request.method + " " + request.url.split("?")[0])
        assert "-> 200" in line
    everything = "\n".join(r.getMessage() for r in caplog.records) + "\n" + caplog.text
    assert TOKEN not in everything


def test_failures_and_retries_are_logged_without_the_token(rsps, caplog):
    caplog.set_level(logging.DEBUG, logger="qvq_sdk")
    rsps.add(responses.GET, BASE + "/config", body=requests.exceptions.ConnectionError("refused"))
    rsps.add(responses.GET, BASE + "/config", status=503, body="waking up")
    FakeSpace(rsps).config().queue()

    assert QVQClient(token=TOKEN, base_url=BASE).complete("hi") == ANSWER

    lines = request_lines(caplog)
    assert len(lines) == len(rsps.calls) == 5
    assert " failed after " in lines[0]
    assert "-> 503" in lines[1]
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying")]
    assert len(retries) == 2
    assert TOKEN not in caplog.text


def test_nothing_is_logged_above_debug_on_success(rsps, caplog):
    caplog.set_level(logging.DEBUG, logger="qvq_sdk")
    full_chat(rsps)
    assert [r for r in caplog.records if r.levelno > logging.DEBUG] == []
