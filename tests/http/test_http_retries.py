"""Which requests are retried, how often, and after which (recorded, never slept) delays."""

import email.utils
import json

import pytest
import requests
import responses
import urllib3
from httpkit import ANSWER, BASE, PNG, PREFIX, FakeSpace, calls_to, multipart_parts

import qvq_sdk._transport.retry
from qvq_sdk import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    InputError,
    NotFoundError,
    QVQClient,
    RateLimitError,
    ServiceUnavailableError,
)

IMAGE_URL = "https://images.example.com/cat.png"
# What a chat raises once a request failed for good (a failed image download is an InputError).
QVQErrorTypes = (APIStatusError, InputError)

# The requests that start a chat: (name, protocol, method, path).
RETRIED = [
    ("config", "queue", "GET", "/config"),
    ("download", "queue", "GET", "/cat.png"),
    ("upload", "queue", "POST", "/gradio_api/upload"),
    ("join", "queue", "POST", "/gradio_api/queue/join"),
    ("call", "call", "POST", "/gradio_api/call/generate"),
]
RETRIED_IDS = [r[0] for r in RETRIED]


def url_of(stage):
    return IMAGE_URL if stage[0] == "download" else BASE + stage[3]


def arrange(rsps, stage, failures, then_ok=True):
    """A working Space whose request at ``stage`` first answers each of ``failures``
    (keyword arguments of ``responses.add``), then works (unless not ``then_ok``).

    ``responses`` answers a URL's registrations in order, so the failures go first."""
    name, protocol = stage[0], stage[1]
    for failure in failures:
        rsps.add(stage[2], url_of(stage), **failure)
    space = FakeSpace(rsps)
    working = {
        "download": lambda: rsps.add(responses.GET, IMAGE_URL, body=PNG, content_type="image/png"),
        "config": space.config,
        "upload": space.upload,
        "join": space.queue,
        "call": space.call,
    }
    if protocol == "call":
        del working["join"]
    else:
        del working["call"]
    for step, register in working.items():
        if then_ok or step != name:
            register()
    return protocol


def run(rsps, stage, failures, then_ok=True, **client_options):
    protocol = arrange(rsps, stage, failures, then_ok)
    client = QVQClient(base_url=BASE, protocol=protocol, **client_options)
    image = IMAGE_URL if stage[0] == "download" else PNG
    if stage[0] == "config":
        image = None
    return client.complete("hi", images=image)


def attempts(rsps, stage):
    """The calls made to the stage's URL (every attempt at it)."""
    return [c for c in rsps.calls if c.request.method == stage[2] and c.request.url.split("?")[0] == url_of(stage)]


def connection_error():
    """A connection refused, as requests raises it: nothing was sent."""
    refused = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: Connection refused")
    return {"body": requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", refused))}


def reset_after_sending():
    """A connection reset after the request was written, as requests raises it."""
    reset = ConnectionResetError(104, "Connection reset by peer")
    return {"body": requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted.", reset))}


FAILURES = {
    "connection": connection_error,
    "429": lambda: {"status": 429, "body": "busy"},
    "502": lambda: {"status": 502, "body": "bad gateway"},
    "503": lambda: {"status": 503, "body": "asleep"},
    "504": lambda: {"status": 504, "body": "gateway timeout"},
}


def assert_backoff(delays, count):
    """0.5 s doubling, minus at most 25 % jitter."""
    assert len(delays) == count
    for attempt, delay in enumerate(delays):
        nominal = 0.5 * 2**attempt
        assert 0.75 * nominal <= delay <= nominal, (attempt, delay)


def passed_on_by_a_gateway(stage, failure):
    """A 502 or 504 to a job start: the gateway may have passed the job on, so it is not retried."""
    return stage[0] in ("join", "call") and failure in ("502", "504")


@pytest.mark.parametrize("stage", RETRIED, ids=RETRIED_IDS)
@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_retried_twice_then_succeeds(rsps, sleeps, stage, failure):
    if passed_on_by_a_gateway(stage, failure):
        with pytest.raises(ServiceUnavailableError):
            run(rsps, stage, [FAILURES[failure](), FAILURES[failure]()])
        assert len(attempts(rsps, stage)) == 1
        assert sleeps == []
        return
    answer = run(rsps, stage, [FAILURES[failure](), FAILURES[failure]()])

    assert answer == ANSWER
    assert len(attempts(rsps, stage)) == 3
    assert_backoff(sleeps, 2)


@pytest.mark.parametrize("stage", RETRIED, ids=RETRIED_IDS)
@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_gives_up_after_max_retries(rsps, sleeps, stage, failure):
    with pytest.raises((APIConnectionError, APIStatusError, InputError)) as info:
        run(rsps, stage, [FAILURES[failure]()] * 3)

    tries = 1 if passed_on_by_a_gateway(stage, failure) else 3
    assert len(attempts(rsps, stage)) == tries
    assert_backoff(sleeps, tries - 1)
    error = info.value
    if stage[0] == "download":
        # A URL that keeps failing is a bad input, named; a connection failure stays one.
        if failure == "connection":
            assert isinstance(error, APIConnectionError)
        else:
            assert isinstance(error, InputError) and error.input == "images[0]"
            assert failure in str(error)
    elif failure == "connection":
        assert isinstance(error, APIConnectionError)
    elif failure == "429":
        assert isinstance(error, RateLimitError)
    else:
        assert isinstance(error, ServiceUnavailableError) and error.status_code == int(failure)


@pytest.mark.parametrize("stage", RETRIED, ids=RETRIED_IDS)
def test_max_retries_is_configurable(rsps, sleeps, stage):
    failures = [FAILURES["503"]()] * 5
    with pytest.raises(QVQErrorTypes):
        run(rsps, stage, failures, max_retries=4)
    assert len(attempts(rsps, stage)) == 5
    assert_backoff(sleeps, 4)


@pytest.mark.parametrize("stage", RETRIED, ids=RETRIED_IDS)
def test_max_retries_zero_means_one_attempt(rsps, sleeps, stage):
    with pytest.raises(QVQErrorTypes):
        run(rsps, stage, [FAILURES["503"]()], max_retries=0)

    assert len(attempts(rsps, stage)) == 1
    assert sleeps == []


@pytest.mark.parametrize("stage", RETRIED, ids=RETRIED_IDS)
def test_max_retries_zero_connection_error(rsps, sleeps, stage):
    with pytest.raises(APIConnectionError):
        run(rsps, stage, [connection_error()], max_retries=0)

    assert len(attempts(rsps, stage)) == 1
    assert sleeps == []


def test_backoff_doubles_and_caps_at_eight_seconds(rsps, sleeps):
    stage = RETRIED[0]
    answer = run(rsps, stage, [FAILURES["502"]()] * 6, max_retries=6)

    assert answer == ANSWER
    assert len(sleeps) == 6
    for attempt, delay in enumerate(sleeps):
        nominal = min(8.0, 0.5 * 2**attempt)
        assert 0.75 * nominal <= delay <= nominal


@pytest.mark.parametrize("stage", RETRIED, ids=RETRIED_IDS)
def test_retry_after_is_honoured(rsps, sleeps, stage):
    failures = [
        {"status": 429, "body": "busy", "headers": {"Retry-After": "3"}},
        {"status": 503, "body": "waking up", "headers": {"Retry-After": "0.25"}},
    ]
    assert run(rsps, stage, failures) == ANSWER

    assert sleeps == [3.0, 0.25]


def test_retry_after_as_http_date(rsps, sleeps, monkeypatch):
    now = 1_700_000_000.0
    monkeypatch.setattr(qvq_sdk._transport.retry.time, "time", lambda: now)
    when = email.utils.formatdate(now + 5, usegmt=True)
    assert run(rsps, RETRIED[0], [{"status": 503, "body": "", "headers": {"Retry-After": when}}]) == ANSWER
    assert sleeps == [5.0]


@pytest.mark.parametrize("stage", RETRIED, ids=RETRIED_IDS)
def test_retry_after_over_a_minute_is_not_waited_for(rsps, sleeps, stage):
    with pytest.raises((RateLimitError, InputError)) as info:
        run(rsps, stage, [{"status": 429, "body": "busy", "headers": {"Retry-After": "120"}}])

    assert len(attempts(rsps, stage)) == 1
    assert sleeps == []
    if stage[0] != "download":
        assert info.value.retry_after == 120.0
        assert "120" in str(info.value)


@pytest.mark.parametrize("stage", RETRIED, ids=RETRIED_IDS)
@pytest.mark.parametrize("status", [500, 400, 401, 403, 404, 410, 413, 422])
def test_other_statuses_are_not_retried(rsps, sleeps, stage, status):
    with pytest.raises((APIStatusError, InputError)):
        run(rsps, stage, [{"status": status, "body": "no"}])

    assert len(attempts(rsps, stage)) == 1
    assert sleeps == []


@pytest.mark.parametrize(
    "protocol, path", [("queue", "/gradio_api/queue/data"), ("call", "/gradio_api/call/generate/abc123")]
)
@pytest.mark.parametrize(
    "failure, error_class",
    [
        ({"status": 503, "body": "asleep"}, ServiceUnavailableError),
        ({"status": 429, "body": "busy", "headers": {"Retry-After": "1"}}, RateLimitError),
        ({"status": 502, "body": "bad gateway"}, ServiceUnavailableError),
        ({"body": requests.exceptions.ConnectionError("reset")}, APIConnectionError),
    ],
    ids=["503", "429", "502", "connection"],
)
def test_the_stream_get_is_never_retried(rsps, sleeps, protocol, path, failure, error_class):
    FakeSpace(rsps).config()
    if protocol == "queue":
        rsps.add_callback(
            responses.POST,
            PREFIX + "/queue/join",
            callback=lambda request: (200, {}, json.dumps({"event_id": "e1"})),
            content_type="application/json",
        )
    else:
        rsps.add(responses.POST, PREFIX + "/call/generate", json={"event_id": "abc123"})
    rsps.add(responses.GET, BASE + path, **failure)
    client = QVQClient(base_url=BASE, protocol=protocol)

    with pytest.raises(error_class):
        client.complete("hi")

    assert len(calls_to(rsps, "GET", path)) == 1
    assert sleeps == []
    # Nor is the join/call POST repeated to start over.
    assert len([c for c in rsps.calls if c.request.method == "POST"]) == 1


JOB_STARTS = [s for s in RETRIED if s[0] in ("join", "call")]


@pytest.mark.parametrize("stage", JOB_STARTS, ids=[s[0] for s in JOB_STARTS])
def test_a_read_timeout_on_a_job_start_is_not_retried(rsps, sleeps, stage):
    with pytest.raises(APITimeoutError) as info:
        run(rsps, stage, [{"body": requests.exceptions.ReadTimeout("read timed out")}], then_ok=True)

    assert len(attempts(rsps, stage)) == 1
    assert sleeps == []
    assert "timeout" in str(info.value).lower()


def test_a_read_timeout_on_an_upload_is_retried(rsps, sleeps):
    """The upload starts no job: one that timed out after it was sent is sent again."""
    stage = RETRIED[2]
    answer = run(rsps, stage, [{"body": requests.exceptions.ReadTimeout("read timed out")}])

    assert answer == ANSWER
    assert len(attempts(rsps, stage)) == 2
    assert_backoff(sleeps, 1)


def test_a_connect_timeout_is_retried(rsps, sleeps):
    stage = RETRIED[3]  # join: nothing reached the Space, so trying again is safe
    answer = run(rsps, stage, [{"body": requests.exceptions.ConnectTimeout("connect timed out")}])

    assert answer == ANSWER
    assert len(attempts(rsps, stage)) == 2
    assert_backoff(sleeps, 1)


def test_a_read_timeout_on_config_is_reported_as_a_timeout(rsps, sleeps):
    rsps.add(responses.GET, BASE + "/config", body=requests.exceptions.ReadTimeout("read timed out"))
    client = QVQClient(base_url=BASE, timeout=(2, 9))

    with pytest.raises(APITimeoutError) as info:
        client.complete("hi")

    assert "9" in str(info.value)


def test_retrying_does_not_mask_a_later_different_error(rsps, sleeps):
    stage = RETRIED[0]
    with pytest.raises(NotFoundError):
        run(rsps, stage, [FAILURES["503"](), {"status": 404, "body": "gone"}], then_ok=False)

    assert len(attempts(rsps, stage)) == 2
    assert len(sleeps) == 1


def test_retry_of_an_upload_resends_the_whole_file(rsps, sleeps):
    stage = RETRIED[2]
    assert run(rsps, stage, [FAILURES["503"]()]) == ANSWER

    uploads = [c.request for c in attempts(rsps, stage)]
    assert len(uploads) == 2
    assert [multipart_parts(r)[0]["data"] for r in uploads] == [PNG, PNG]


@pytest.mark.parametrize("stage", RETRIED, ids=RETRIED_IDS)
def test_a_job_start_that_failed_after_sending_is_not_retried(rsps, sleeps, stage):
    """Only the requests that start a job (join, call) are never sent twice; the others are."""
    starts_a_job = stage[0] in ("join", "call")
    if starts_a_job:
        with pytest.raises(APIConnectionError) as info:
            run(rsps, stage, [reset_after_sending()])
        assert len(attempts(rsps, stage)) == 1
        assert sleeps == []
        assert "may have started" in str(info.value) and "reset" in str(info.value)
    else:
        assert run(rsps, stage, [reset_after_sending()]) == ANSWER
        assert len(attempts(rsps, stage)) == 2
