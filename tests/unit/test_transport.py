"""qvq_sdk._transport.transport: which credentials go where (redirects included), which request
kind is sent again after which failure and how long it waits (Retry-After, the deadline, a
cancel), close() and track(), redaction, and how the errors name the server. The HTTP layer
is faked with ``responses``: nothing goes on the network."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time

import pytest
import requests
import responses
import urllib3

from qvq_sdk._cancel import CLOSED, STOPPED, Cancelled, CancelToken
from qvq_sdk._deadline import Deadline
from qvq_sdk._openai import SERVER
from qvq_sdk._transport import transport as transport_module
from qvq_sdk._transport.retry import JOB_START, ONCE, PREPARE
from qvq_sdk._transport.statuses import SPACE
from qvq_sdk._transport.streamed_body import StreamedBody
from qvq_sdk._transport.transport import CLOSED_MESSAGE, HUB, NONE, ORIGIN, Transport, loggable, pause
from qvq_sdk.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AppError,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    StreamError,
)

SPACE_URL = "https://space.example"
HUB_URL = "https://hub.example"
TOKEN = "hf_origin_secret"
HUB_TOKEN = "hf_hub_secret"


def make(**overrides):
    kwargs = {
        "origin": SPACE_URL,
        "token": TOKEN,
        "hub": HUB_URL,
        "hub_token": HUB_TOKEN,
        "session": None,
        "proxies": None,
        "timeout": (2.0, 3.0),
        "max_retries": 2,
    }
    kwargs.update(overrides)
    return Transport(**kwargs)


@pytest.fixture
def transport():
    made = make()
    yield made
    made.close()


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def waits(monkeypatch):
    """The pauses between attempts, recorded instead of slept."""
    recorded = []

    def fake_pause(cancel, seconds):
        recorded.append(seconds)
        cancel.check()

    monkeypatch.setattr(transport_module, "pause", fake_pause)
    return recorded


def get(transport, url=SPACE_URL + "/config", *, cancel=None, deadline=None, **kwargs):
    response, _ = transport.request(
        "GET", url, cancel=cancel or CancelToken(), deadline=deadline or Deadline(None), **kwargs
    )
    return response


def sent_reset():
    """A connection reset after the request was written: it may have reached the server."""
    return requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    )


def refused():
    """A refused connection: nothing was sent."""
    inner = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", inner))


def read_timed_out():
    inner = urllib3.exceptions.ReadTimeoutError(None, "/", "Read timed out. (read timeout=3)")
    return requests.exceptions.ReadTimeout(inner)


def untrusted():
    """A certificate that was not trusted: retrying cannot help."""
    cert = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    return requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(None, "/", cert))


# -- credentials -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, credentials, expected",
    [
        (SPACE_URL + "/config", ORIGIN, "Bearer " + TOKEN),
        ("https://space.example:443/config", ORIGIN, "Bearer " + TOKEN),  # the default port is the origin's
        ("https://SPACE.example/config", ORIGIN, "Bearer " + TOKEN),  # host names are case-insensitive
        ("http://space.example/config", ORIGIN, None),  # another scheme
        ("https://space.example:8443/config", ORIGIN, None),  # another port
        ("https://space.example.evil.example/config", ORIGIN, None),
        ("https://evil.example/config", ORIGIN, None),
        (HUB_URL + "/api", ORIGIN, None),  # the Space's token never goes to the Hub
        (HUB_URL + "/api", HUB, "Bearer " + HUB_TOKEN),
        (SPACE_URL + "/config", HUB, None),  # nor the Hub's to the Space
        ("https://evil.example/api", HUB, None),
        (SPACE_URL + "/config", NONE, None),
        (HUB_URL + "/api", NONE, None),
    ],
)
def test_credentials_go_to_their_own_origin_only(transport, http, url, credentials, expected):
    http.add(responses.GET, url, json={})
    get(transport, url, credentials=credentials)
    headers = http.calls[0].request.headers
    assert headers.get("Authorization") == expected
    assert headers.get("X-HF-Authorization") is None
    assert TOKEN not in str(headers) or expected == "Bearer " + TOKEN
    assert HUB_TOKEN not in str(headers) or expected == "Bearer " + HUB_TOKEN


def test_the_token_goes_in_every_auth_header_of_the_origin(http):
    transport = make(auth_headers=("Authorization", "X-HF-Authorization"))
    http.add(responses.GET, SPACE_URL + "/config", json={})
    http.add(responses.GET, HUB_URL + "/api", json={})
    get(transport, SPACE_URL + "/config")
    get(transport, HUB_URL + "/api", credentials=HUB)
    assert http.calls[0].request.headers["Authorization"] == "Bearer " + TOKEN
    assert http.calls[0].request.headers["X-HF-Authorization"] == "Bearer " + TOKEN
    assert http.calls[1].request.headers["Authorization"] == "Bearer " + HUB_TOKEN
    assert "X-HF-Authorization" not in http.calls[1].request.headers
    transport.close()


def test_no_token_no_header(http):
    transport = make(token=None, hub_token=None)
    http.add(responses.GET, SPACE_URL + "/config", json={})
    http.add(responses.GET, HUB_URL + "/api", json={})
    get(transport, SPACE_URL + "/config")
    get(transport, HUB_URL + "/api", credentials=HUB)
    assert all("Authorization" not in call.request.headers for call in http.calls)
    assert not transport.authenticated
    transport.close()


def test_every_request_says_who_sends_it(transport, http):
    http.add(responses.GET, SPACE_URL + "/config", json={})
    get(transport, headers={"X-Extra": "1"})
    headers = http.calls[0].request.headers
    assert headers["User-Agent"].startswith("qvq-sdk/")
    assert headers["X-Extra"] == "1"


def test_a_redirect_to_another_host_drops_the_token(transport, http):
    http.add(responses.GET, SPACE_URL + "/config", status=302, headers={"Location": "https://cdn.example/config"})
    http.add(responses.GET, "https://cdn.example/config", json={"ok": True})
    response = get(transport)
    assert response.json() == {"ok": True}
    assert http.calls[0].request.headers["Authorization"] == "Bearer " + TOKEN
    assert "Authorization" not in http.calls[1].request.headers


def test_a_redirect_from_the_hub_elsewhere_drops_the_hub_token(transport, http):
    http.add(responses.GET, HUB_URL + "/api", status=307, headers={"Location": "https://mirror.example/api"})
    http.add(responses.GET, "https://mirror.example/api", json={})
    get(transport, HUB_URL + "/api", credentials=HUB)
    assert http.calls[0].request.headers["Authorization"] == "Bearer " + HUB_TOKEN
    assert "Authorization" not in http.calls[1].request.headers


def test_a_redirect_within_the_origin_keeps_the_token(transport, http):
    http.add(responses.GET, SPACE_URL + "/config", status=301, headers={"Location": "/gradio_api/config"})
    http.add(responses.GET, SPACE_URL + "/gradio_api/config", json={})
    get(transport)
    assert [call.request.url for call in http.calls] == [SPACE_URL + "/config", SPACE_URL + "/gradio_api/config"]
    assert http.calls[1].request.headers["Authorization"] == "Bearer " + TOKEN


def test_a_303_after_a_post_is_followed_with_a_get_without_the_body(transport, http):
    http.add(responses.POST, SPACE_URL + "/join", status=303, headers={"Location": "/joined"})
    http.add(responses.GET, SPACE_URL + "/joined", json={})
    transport.request(
        "POST", SPACE_URL + "/join", json={"a": 1}, cancel=CancelToken(), deadline=Deadline(None), kind=PREPARE
    )
    assert http.calls[1].request.method == "GET"
    assert not http.calls[1].request.body


def test_a_307_after_a_post_keeps_the_method_and_the_body(transport, http):
    http.add(responses.POST, SPACE_URL + "/join", status=307, headers={"Location": "/join2"})
    http.add(responses.POST, SPACE_URL + "/join2", json={})
    transport.request("POST", SPACE_URL + "/join", json={"a": 1}, cancel=CancelToken(), deadline=Deadline(None))
    assert http.calls[1].request.method == "POST"
    assert http.calls[1].request.body == b'{"a": 1}'


def test_too_many_redirects_is_an_error_and_not_retried(transport, http, waits):
    http.add(responses.GET, SPACE_URL + "/loop", status=302, headers={"Location": "/loop"})
    with pytest.raises(APIConnectionError, match=r"Too many redirects \(more than 5\), last to https://space"):
        get(transport, SPACE_URL + "/loop")
    assert len(http.calls) == 6
    assert waits == []


def test_loggable_drops_credentials_from_a_url():
    assert loggable("https://user:pw@host.example:8443/p?q=1") == "https://host.example:8443/p?q=1"
    assert loggable("http://host.example/p") == "http://host.example/p"


def test_the_session_s_own_verify_goes_with_each_request(http):
    session = requests.Session()
    session.verify = False
    transport = make(session=session)
    http.add(responses.GET, SPACE_URL + "/config", json={})
    get(transport)
    assert http.calls[0].request.req_kwargs["verify"] is False


def test_the_deadline_bounds_each_attempt_s_timeout(transport, http):
    http.add(responses.GET, SPACE_URL + "/config", json={})
    _, timeout = transport.request("GET", SPACE_URL + "/config", cancel=CancelToken(), deadline=Deadline(1.0))
    assert timeout[0] <= 1.0 and timeout[1] <= 1.0
    assert http.calls[0].request.req_kwargs["timeout"] == timeout
    _, timeout = transport.request("GET", SPACE_URL + "/config", cancel=CancelToken(), deadline=Deadline(None))
    assert timeout == (2.0, 3.0)


# -- retries -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, status, attempts",
    [
        (PREPARE, 429, 3),
        (PREPARE, 502, 3),
        (PREPARE, 503, 3),
        (PREPARE, 504, 3),
        (PREPARE, 500, 1),
        (PREPARE, 404, 1),
        (JOB_START, 429, 3),  # refused: nothing was queued
        (JOB_START, 503, 3),
        (JOB_START, 502, 1),  # a gateway's 502/504: the job may be running
        (JOB_START, 504, 1),
        (ONCE, 503, 1),
        (ONCE, 429, 1),
    ],
)
def test_which_statuses_are_retried_per_kind(transport, http, waits, kind, status, attempts):
    http.add(responses.GET, SPACE_URL + "/x", status=status, body="busy")
    with pytest.raises(APIStatusError) as caught:
        get(transport, SPACE_URL + "/x", kind=kind)
    assert caught.value.status_code == status
    assert len(http.calls) == attempts
    assert len(waits) == attempts - 1


@pytest.mark.parametrize(
    "kind, failure, attempts",
    [
        (PREPARE, sent_reset, 3),  # nothing starts: sent again even after it was sent
        (PREPARE, refused, 3),
        (PREPARE, read_timed_out, 3),
        (PREPARE, untrusted, 1),  # retrying cannot help
        (JOB_START, refused, 3),  # nothing reached the server
        (JOB_START, sent_reset, 1),  # it may have: never a second job
        (JOB_START, read_timed_out, 1),
        (ONCE, refused, 1),
        (ONCE, sent_reset, 1),
    ],
)
def test_which_connection_failures_are_retried_per_kind(transport, http, waits, kind, failure, attempts):
    http.add(responses.GET, SPACE_URL + "/x", body=failure())
    with pytest.raises(APIConnectionError):
        get(transport, SPACE_URL + "/x", kind=kind)
    assert len(http.calls) == attempts
    assert len(waits) == attempts - 1


def test_a_retry_that_succeeds_returns_the_response(transport, http, waits):
    http.add(responses.GET, SPACE_URL + "/x", status=503)
    http.add(responses.GET, SPACE_URL + "/x", body=refused())
    http.add(responses.GET, SPACE_URL + "/x", json={"ok": 1})
    assert get(transport, SPACE_URL + "/x").json() == {"ok": 1}
    assert len(http.calls) == 3
    assert 0.375 <= waits[0] <= 0.5 and 0.75 <= waits[1] <= 1.0  # backoff with jitter


def test_max_retries_is_read_at_each_request(transport, http, waits):
    http.add(responses.GET, SPACE_URL + "/x", status=503)
    transport.max_retries = 0
    with pytest.raises(ServiceUnavailableError):
        get(transport, SPACE_URL + "/x")
    assert len(http.calls) == 1
    transport.max_retries = 4
    with pytest.raises(ServiceUnavailableError):
        get(transport, SPACE_URL + "/x")
    assert len(http.calls) == 1 + 5


@pytest.mark.parametrize("server, who", [(SPACE, "the Space"), (SERVER, "the server")])
def test_a_job_start_that_failed_after_sending_may_have_started(http, waits, server, who):
    transport = make(server=server)
    http.add(responses.POST, SPACE_URL + "/join", body=sent_reset())
    with pytest.raises(APIConnectionError) as caught:
        transport.request("POST", SPACE_URL + "/join", cancel=CancelToken(), deadline=Deadline(None), kind=JOB_START)
    message = str(caught.value)
    assert message.startswith("Could not talk to space.example: the connection was reset by the other end.")
    assert f"the address of {who}" in message
    assert f"the job may have started on {who}; it was not sent again, to never start a job twice." in message
    assert isinstance(caught.value.__cause__, requests.exceptions.ConnectionError)
    assert waits == []


def test_a_job_start_read_timeout_keeps_its_class_and_may_have_started(transport, http, waits):
    http.add(responses.POST, SPACE_URL + "/join", body=read_timed_out())
    with pytest.raises(APITimeoutError, match=r"sent nothing for 3 s .*the job may have started on the Space"):
        transport.request("POST", SPACE_URL + "/join", cancel=CancelToken(), deadline=Deadline(None), kind=JOB_START)


@pytest.mark.parametrize("kind, failure", [(JOB_START, refused), (PREPARE, sent_reset), (ONCE, sent_reset)])
def test_only_a_job_start_sent_is_said_to_have_maybe_started(transport, http, waits, kind, failure):
    http.add(responses.POST, SPACE_URL + "/x", body=failure())
    with pytest.raises(APIConnectionError) as caught:
        transport.request("POST", SPACE_URL + "/x", cancel=CancelToken(), deadline=Deadline(None), kind=kind)
    assert "may have started" not in str(caught.value)


def test_a_failed_request_keeps_no_headers_with_the_token(transport, http, waits):
    prepared = requests.Request("GET", SPACE_URL + "/x", headers={"Authorization": "Bearer " + TOKEN}).prepare()
    http.add(responses.GET, SPACE_URL + "/x", body=requests.exceptions.ConnectionError("boom", request=prepared))
    with pytest.raises(APIConnectionError) as caught:
        get(transport, SPACE_URL + "/x", kind=ONCE)
    cause = caught.value.__cause__
    assert cause.request is None and cause.response is None


def test_retry_after_is_honoured(transport, http, waits):
    http.add(responses.GET, SPACE_URL + "/x", status=503, headers={"Retry-After": "7"})
    http.add(responses.GET, SPACE_URL + "/x", status=429, headers={"Retry-After": "0"})
    http.add(responses.GET, SPACE_URL + "/x", json={})
    get(transport, SPACE_URL + "/x")
    assert waits == [7.0, 0.0]


def test_a_retry_after_over_a_minute_goes_to_the_caller(transport, http, waits):
    http.add(responses.GET, SPACE_URL + "/x", status=429, headers={"Retry-After": "120"})
    with pytest.raises(RateLimitError) as caught:
        get(transport, SPACE_URL + "/x")
    assert caught.value.retry_after == 120.0
    assert "retry in 120 s" in str(caught.value)
    assert len(http.calls) == 1 and waits == []


def test_a_cancel_cuts_the_retry_after_wait_short(transport, http):
    http.add(responses.GET, SPACE_URL + "/x", status=503, headers={"Retry-After": "30"})
    cancel = CancelToken()
    threading.Timer(0.1, cancel.cancel, args=(STOPPED,)).start()
    started = time.monotonic()
    with pytest.raises(Cancelled) as caught:
        get(transport, SPACE_URL + "/x", cancel=cancel)
    assert caught.value.reason == STOPPED
    assert time.monotonic() - started < 1.0
    assert len(http.calls) == 1  # nothing sent after the cancel


def test_close_cuts_the_wait_of_a_tracked_chat_short(transport, http):
    http.add(responses.GET, SPACE_URL + "/x", status=503, headers={"Retry-After": "30"})
    cancel = CancelToken()
    transport.track(cancel)
    threading.Timer(0.1, transport.close).start()
    started = time.monotonic()
    with pytest.raises(Cancelled) as caught:
        get(transport, SPACE_URL + "/x", cancel=cancel)
    assert caught.value.reason == CLOSED
    assert time.monotonic() - started < 1.0


def test_pause_waits_and_a_cancel_during_it_raises_cancelled():
    cancel = CancelToken()
    started = time.monotonic()
    pause(cancel, 0.05)
    assert time.monotonic() - started >= 0.05
    threading.Timer(0.05, cancel.cancel, args=(STOPPED,)).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        pause(cancel, 10.0)
    assert time.monotonic() - started < 1.0


def test_a_deadline_shorter_than_the_retry_after_fails_at_once(transport, http):
    http.add(responses.GET, SPACE_URL + "/x", status=503, headers={"Retry-After": "5"})
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match=r"did not finish within its deadline of 0\.5 s"):
        get(transport, SPACE_URL + "/x", deadline=Deadline(0.5))
    assert time.monotonic() - started < 0.3  # no wait for what cannot be used
    assert len(http.calls) == 1


def test_a_deadline_shorter_than_the_backoff_fails_at_once(transport, http, waits):
    http.add(responses.GET, SPACE_URL + "/x", body=refused())
    with pytest.raises(APITimeoutError, match=r"deadline of 0\.2 s"):
        get(transport, SPACE_URL + "/x", deadline=Deadline(0.2))  # the first backoff is 0.375 s or more
    assert waits == [] and len(http.calls) == 1


def test_a_deadline_that_passes_during_an_attempt_is_the_deadline_error(transport, http, waits):
    def slow_failure(request):
        time.sleep(0.1)
        raise refused()

    http.add_callback(responses.GET, SPACE_URL + "/x", callback=slow_failure)
    with pytest.raises(APITimeoutError, match=r"deadline of 0\.05 s") as caught:
        get(transport, SPACE_URL + "/x", deadline=Deadline(0.05), kind=ONCE)  # not the connection's error
    assert caught.value.__cause__ is None
    assert len(http.calls) == 1 and waits == []


# -- cancel, close, track ----------------------------------------------------------------


def test_a_cancelled_chat_sends_nothing(transport, http):
    http.add(responses.GET, SPACE_URL + "/x", json={})
    cancel = CancelToken()
    cancel.cancel(STOPPED)
    with pytest.raises(Cancelled):
        get(transport, SPACE_URL + "/x", cancel=cancel)
    assert len(http.calls) == 0


def test_a_failure_after_a_cancel_is_the_cancel(transport, http, waits):
    cancel = CancelToken()

    def cancelled_then_failed(request):
        cancel.cancel(STOPPED)
        raise refused()

    http.add_callback(responses.GET, SPACE_URL + "/x", callback=cancelled_then_failed)
    with pytest.raises(Cancelled):
        get(transport, SPACE_URL + "/x", cancel=cancel)
    assert len(http.calls) == 1 and waits == []


def test_a_request_leaves_nothing_registered_with_the_token(transport, http, waits):
    http.add(responses.GET, SPACE_URL + "/ok", json={})
    http.add(responses.GET, SPACE_URL + "/bad", body=refused())
    cancel = CancelToken()
    get(transport, SPACE_URL + "/ok", cancel=cancel)
    with pytest.raises(APIConnectionError):
        get(transport, SPACE_URL + "/bad", cancel=cancel)
    assert cancel._aborts == {}


def test_close_cancels_every_tracked_chat_with_closed():
    transport = make()
    first, second, untracked, finished = CancelToken(), CancelToken(), CancelToken(), CancelToken()
    for cancel in (first, second, untracked, finished):
        transport.track(cancel)
    transport.untrack(untracked)
    finished.finish("done")
    assert not transport.closed
    transport.close()
    assert transport.closed
    assert first.reason == CLOSED and second.reason == CLOSED
    assert untracked.reason is None
    assert finished.reason is None  # its answer was complete


def test_track_after_close_raises():
    transport = make()
    transport.close()
    with pytest.raises(APIConnectionError) as caught:
        transport.track(CancelToken())
    assert str(caught.value) == CLOSED_MESSAGE


def test_a_closed_transport_sends_nothing(http):
    transport = make()
    http.add(responses.GET, SPACE_URL + "/x", json={})
    transport.close()
    with pytest.raises(Cancelled) as caught:
        get(transport, SPACE_URL + "/x")
    assert caught.value.reason == CLOSED
    assert len(http.calls) == 0


def test_close_closes_the_session_it_made_only(monkeypatch):
    closed = []
    monkeypatch.setattr(transport_module, "close_session", closed.append)
    own = make()
    own.close()
    assert closed == [own._session]
    given = requests.Session()
    make(session=given).close()
    assert closed == [own._session]  # the caller's session is the caller's to close


# -- redaction ---------------------------------------------------------------------------


def test_redact_hides_both_tokens_in_an_error():
    transport = make()
    error = APIStatusError(
        f"refused {TOKEN} and {HUB_TOKEN}",
        status_code=401,
        body=f"echo {TOKEN}",
        url=f"https://space.example/?t={HUB_TOKEN}",
    )
    error.args = (*error.args, 42)
    transport.redact(error)
    assert error.args == ("refused hf_*** and hf_***", 42)
    assert error.body == "echo hf_***"
    assert error.url == "https://space.example/?t=hf_***"
    app_error = AppError(f"the app said {TOKEN}", message=f"said {TOKEN}")
    transport.redact(app_error)
    assert TOKEN not in str(app_error) and app_error.message == "said hf_***"


def test_redact_without_tokens_changes_nothing():
    transport = make(token=None, hub_token=None)
    error = APIStatusError("hf_abc stays", status_code=401, body="hf_abc", url=None)
    transport.redact(error)
    assert error.args == ("hf_abc stays",) and error.body == "hf_abc" and error.url is None
    assert transport.redact_text("hf_abc") == "hf_abc"


def test_redact_text_hides_both_tokens():
    transport = make()
    assert transport.redact_text(f"a {TOKEN} b {HUB_TOKEN} c {TOKEN}") == "a hf_*** b hf_*** c hf_***"
    assert make(hub_token=None).redact_text(f"{TOKEN} {HUB_TOKEN}") == f"hf_*** {HUB_TOKEN}"


def test_the_debug_lines_never_hold_a_token(transport, http, waits, caplog):
    caplog.set_level(logging.DEBUG, logger="qvq_sdk")
    inner = urllib3.exceptions.NewConnectionError(None, f"refused; the proxy said Bearer {TOKEN} and {HUB_TOKEN}")
    echoed = requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", inner))
    http.add(responses.GET, SPACE_URL + "/x", body=echoed)
    with pytest.raises(APIConnectionError):
        get(transport, SPACE_URL + "/x")
    lines = [record.getMessage() for record in caplog.records if record.name == "qvq_sdk"]
    assert any("failed after" in line for line in lines) and any(line.startswith("retrying") for line in lines)
    assert all(TOKEN not in line and HUB_TOKEN not in line for line in lines)
    assert any("Bearer hf_*** and hf_***" in line for line in lines)


# -- how errors name the server ------------------------------------------------------------


@pytest.mark.parametrize("server", [SPACE, SERVER])
def test_status_errors_name_the_server(http, server):
    transport = make(server=server)
    name = server.name[0].upper() + server.name[1:]
    http.add(responses.GET, SPACE_URL + "/a", status=401)
    http.add(responses.GET, SPACE_URL + "/b", status=404)
    with pytest.raises(AuthenticationError) as caught:
        get(transport, SPACE_URL + "/a")
    assert str(caught.value) == f"{name} refused access (HTTP 401). {server.bad_token}"
    with pytest.raises(NotFoundError) as caught:
        get(transport, SPACE_URL + "/b")
    assert str(caught.value).endswith(server.not_found)
    transport.close()


def test_connection_errors_name_the_server(http, waits):
    transport = make(server=SERVER)
    http.add(responses.GET, SPACE_URL + "/x", body=refused())
    with pytest.raises(APIConnectionError) as caught:
        get(transport, SPACE_URL + "/x", kind=ONCE)
    assert "the address of the server" in str(caught.value)
    assert "Space" not in str(caught.value)
    transport.close()


# -- json, content, stream ---------------------------------------------------------------


def test_json_and_content(transport, http):
    http.add(responses.GET, SPACE_URL + "/j", json={"a": [1]})
    http.add(responses.GET, SPACE_URL + "/c", body=b"\x00bytes")
    assert transport.json("GET", SPACE_URL + "/j", cancel=CancelToken(), deadline=Deadline(None)) == {"a": [1]}
    assert transport.content("GET", SPACE_URL + "/c", cancel=CancelToken(), deadline=Deadline(None)) == b"\x00bytes"


def test_json_that_is_not_json_is_a_stream_error(transport, http):
    http.add(responses.GET, SPACE_URL + "/j?x=1", body="<html>a login page</html>")
    with pytest.raises(StreamError) as caught:
        transport.json("GET", SPACE_URL + "/j?x=1", cancel=CancelToken(), deadline=Deadline(None))
    message = str(caught.value)
    assert message.startswith("https://space.example/j?x=1 answered with something that is not JSON")
    assert "a login page" in message and message.endswith("is the address right?")
    assert caught.value.__context__ is None


def test_stream_asks_for_an_uncompressed_event_stream_and_is_sent_once(transport, http, waits):
    http.add(responses.GET, SPACE_URL + "/s", status=503, body="busy", headers={"Content-Type": "text/plain"})
    with pytest.raises(ServiceUnavailableError, match="busy"):
        transport.stream("GET", SPACE_URL + "/s", cancel=CancelToken(), deadline=Deadline(None))
    assert len(http.calls) == 1 and waits == []
    headers = http.calls[0].request.headers
    assert headers["Accept"] == "text/event-stream"
    assert headers["Accept-Encoding"] == "identity"
    assert headers["Cache-Control"] == "no-cache"
    assert http.calls[0].request.req_kwargs["stream"] is True


def test_stream_returns_the_unread_body(transport, http):
    http.add(
        responses.GET,
        SPACE_URL + "/s?session_hash=abc",
        body=b"data: 1\n\n",
        content_type="text/event-stream",  # not headers=: older responses (Python 3.7's) add text/plain too
    )
    body = transport.stream(
        "GET", SPACE_URL + "/s", params={"session_hash": "abc"}, cancel=CancelToken(), deadline=Deadline(None)
    )
    assert isinstance(body, StreamedBody)
    assert body.url == SPACE_URL + "/s"  # without the query
    assert body.content_type == "text/event-stream"
    assert b"".join(body.chunks()) == b"data: 1\n\n"
    body.close()


# -- a cancel reaches a request in flight (a real request to 127.0.0.1) --------------------


@pytest.fixture
def stalling_server():
    """A server on 127.0.0.1 that reads a request and never answers; ``received`` is set
    once a request head arrived, ``gone`` once the client closed its connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    received, gone = threading.Event(), threading.Event()
    accepted = []

    def serve():
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        accepted.append(connection)
        data = b""
        try:
            while True:
                piece = connection.recv(65536)
                if not piece:
                    break
                data += piece
                if b"\r\n\r\n" in data:
                    received.set()
        except OSError:
            pass
        gone.set()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", received, gone
    listener.close()
    for connection in accepted:
        connection.close()


@pytest.mark.parametrize("how", ["stop", "close"])
def test_a_cancel_ends_a_request_in_flight_at_once(stalling_server, how):
    url, received, gone = stalling_server
    transport = make(origin=url, timeout=(5.0, 5.0))
    cancel = CancelToken()
    transport.track(cancel)

    def cancel_once_sent():
        assert received.wait(5.0)
        time.sleep(0.05)  # into the blocked read
        if how == "stop":
            cancel.cancel(STOPPED)
        else:
            transport.close()

    threading.Thread(target=cancel_once_sent, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(Cancelled) as caught:
        get(transport, url + "/config", cancel=cancel)
    assert time.monotonic() - started < 1.0  # not the read timeout of 5 s
    assert caught.value.reason == (STOPPED if how == "stop" else CLOSED)
    assert gone.wait(1.0)  # the server sees the connection close: it stops the job
    assert cancel._aborts == {}
    transport.close()
