"""qvq_sdk._retry: Retry-After parsing and the backoff policy."""

import email.utils
import random
import time

import pytest
from requests.structures import CaseInsensitiveDict

from qvq_sdk import _retry
from qvq_sdk._retry import parse_retry_after, retry_delay, should_retry_status


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
