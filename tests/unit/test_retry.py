"""qvq_sdk._transport.retry: Retry-After parsing and the policy: which request kind is sent
again after which failure, and how long to wait first."""

import email.utils
import random
import time

import pytest
from requests.structures import CaseInsensitiveDict

from qvq_sdk._transport import retry as _retry
from qvq_sdk._transport.retry import JOB_START, ONCE, PREPARE, after_failure, after_status, parse_retry_after
from qvq_sdk._transport.retry import backoff as retry_delay


def should_retry_status(status, starts_job=False):
    return after_status(JOB_START if starts_job else PREPARE, status, None, 0) is not None


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 5 ", 5.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: go now
    ],
)
def test_parse_retry_after(value, seconds):
    assert parse_retry_after({"Retry-After": value}) == seconds


@pytest.mark.parametrize("value", ["", "   ", "soon", "nan", "Wed, 99 Foo 2015 07:28:00 GMT", "12 apples"])
def test_parse_retry_after_garbage(value):
    assert parse_retry_after({"Retry-After": value}) is None


def test_parse_retry_after_missing():
    assert parse_retry_after({}) is None
    assert parse_retry_after(CaseInsensitiveDict({"Content-Type": "text/plain"})) is None


def test_parse_retry_after_case_insensitive_headers():
    assert parse_retry_after(CaseInsensitiveDict({"retry-after": "7"})) == 7.0


def test_parse_retry_after_http_date_in_the_future():
    value = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = parse_retry_after({"Retry-After": value})
    assert seconds is not None
    assert 28.0 <= seconds <= 30.0  # the date has whole seconds


@pytest.mark.parametrize(
    "status, retried",
    [
        (429, True),
        (502, True),
        (503, True),
        (504, True),
        (500, False),
        (501, False),
        (404, False),
        (410, False),
        (401, False),
        (200, False),
    ],
)
def test_should_retry_status(status, retried):
    assert should_retry_status(status) is retried


BASE_DELAYS = [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (20, 8.0)]


@pytest.mark.parametrize("attempt, base", BASE_DELAYS)
def test_retry_delay_jitter_bounds(monkeypatch, attempt, base):
    monkeypatch.setattr(_retry.random, "random", lambda: 0.0)
    assert retry_delay(attempt, None) == base
    monkeypatch.setattr(_retry.random, "random", lambda: 1.0)
    assert retry_delay(attempt, None) == pytest.approx(0.75 * base)


@pytest.mark.parametrize("attempt, base", BASE_DELAYS)
def test_retry_delay_is_random_within_bounds(attempt, base):
    random.seed(1234)
    delays = [retry_delay(attempt, None) for _ in range(200)]
    assert all(0.75 * base <= delay <= base for delay in delays)
    assert len(set(delays)) > 100  # jittered, not fixed


@pytest.mark.parametrize("retry_after", [0.0, 1.0, 30.0, 59.9, 60.0])
def test_retry_after_is_honoured_up_to_a_minute(retry_after):
    assert retry_delay(0, retry_after) == retry_after
    assert retry_delay(5, retry_after) == retry_after


@pytest.mark.parametrize("retry_after", [60.1, 120.0, 3600.0, float("inf")])
def test_longer_retry_after_means_give_up(retry_after):
    assert retry_delay(0, retry_after) is None


@pytest.mark.parametrize("status, retried", [(429, True), (503, True), (502, False), (504, False), (500, False)])
def test_a_job_start_is_retried_only_on_a_refusal(status, retried):
    """502/504 come from a gateway that may have passed the job on: never start it twice."""
    assert should_retry_status(status, starts_job=True) is retried


def test_the_backoff_does_not_overflow_on_a_large_attempt():
    assert retry_delay(1024, None) <= 8.0
    assert retry_delay(10**6, None) <= 8.0


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_a_request_sent_once_is_never_retried(status):
    assert after_status(ONCE, status, None, 0) is None
    assert after_failure(ONCE, unsent=True, untrusted=False, attempt=0) is None


@pytest.mark.parametrize("unsent", [True, False])
def test_a_request_that_starts_no_job_is_retried_even_after_it_was_sent(unsent):
    """An upload or /config that timed out or broke after it was sent starts nothing: retry it."""
    assert after_failure(PREPARE, unsent=unsent, untrusted=False, attempt=0) is not None


def test_a_job_start_is_retried_after_a_failure_only_when_unsent():
    assert after_failure(JOB_START, unsent=True, untrusted=False, attempt=0) is not None
    assert after_failure(JOB_START, unsent=False, untrusted=False, attempt=0) is None


@pytest.mark.parametrize("kind", [PREPARE, JOB_START])
def test_an_untrusted_certificate_is_never_retried(kind):
    assert after_failure(kind, unsent=True, untrusted=True, attempt=0) is None


def test_retry_after_reaches_the_delay():
    assert after_status(JOB_START, 429, 3.0, 0) == 3.0
    assert after_status(PREPARE, 503, 61.0, 0) is None  # too long to wait silently
