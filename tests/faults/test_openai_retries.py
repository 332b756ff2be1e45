"""protocol="openai" over real sockets: which chat POSTs are sent again, and after how long.

The POST starts a generation, so it is sent again only when it cannot have started one: a
refusal (429, honouring ``Retry-After``; 503) or a connection that failed before anything was
sent. A POST that may have reached the server (reset or timed out after it was read, a
gateway's 502/504) is never sent twice. The retry waits are recorded by the faults conftest's
``sleeps`` fixture instead of slept."""

from __future__ import annotations

import email.utils
import socket
import time

import pytest
from faultopenai import (
    ANSWER,
    STALL,
    TOKEN,
    error_status,
    make_openai_fixture,  # noqa: F401  (pytest fixture)
    openai_server_fixture,  # noqa: F401  (pytest fixture)
    reset,
    sse,
    stall,
    too_many_requests,
    unavailable,
)

from qvq_sdk import (
    APIConnectionError,
    APITimeoutError,
    RateLimitError,
    ServiceUnavailableError,
)


def test_a_429_is_retried_after_its_retry_after(openai_server, make_openai, sleeps):
    openai_server.on("chat", too_many_requests(3), times=1)
    assert make_openai().complete("hi") == ANSWER
    assert sleeps == [3.0]
    assert len(openai_server.chats) == 2


def test_the_retried_post_is_the_same_request(openai_server, make_openai, sleeps):
    openai_server.on("chat", too_many_requests(1), times=1)
    make_openai().complete("hi", max_tokens=9, extra_body={"top_p": 0.5})
    first, second = openai_server.chats
    assert first.body == second.body
    assert first.headers["authorization"] == second.headers["authorization"] == "Bearer " + TOKEN


def test_each_429_is_waited_for_as_it_says(openai_server, make_openai, sleeps):
    openai_server.on("chat", too_many_requests(2), times=1)
    openai_server.on("chat", too_many_requests("5"), times=1)
    assert make_openai().complete("hi") == ANSWER
    assert sleeps == [2.0, 5.0]
    assert len(openai_server.chats) == 3


def test_a_retry_after_as_an_http_date_is_honoured(openai_server, make_openai, sleeps):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    openai_server.on("chat", too_many_requests(when), times=1)
    assert make_openai().complete("hi") == ANSWER
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 31


def test_a_503_is_retried_with_backoff(openai_server, make_openai, sleeps):
    openai_server.on("chat", unavailable(), times=2)
    assert make_openai().complete("hi") == ANSWER
    assert len(openai_server.chats) == 3
    first, second = sleeps
    assert 0.375 <= first <= 0.5 and 0.75 <= second <= 1.0  # 0.5 s doubling, less up to a quarter


def test_a_503_with_retry_after_is_waited_for_as_it_says(openai_server, make_openai, sleeps):
    openai_server.on("chat", error_status(503, "loading", headers={"Retry-After": "4"}), times=1)
    assert make_openai().complete("hi") == ANSWER
    assert sleeps == [4.0]


def test_refusals_until_the_retries_run_out_are_the_last_refusals_error(openai_server, make_openai, sleeps):
    openai_server.on("chat", unavailable("still loading"))
    with pytest.raises(ServiceUnavailableError) as info:
        make_openai().complete("hi")
    assert "still loading" in str(info.value)
    assert len(openai_server.chats) == 3 and len(sleeps) == 2  # max_retries=2 by default


def test_max_retries_set_on_the_client_applies_to_the_next_chat(openai_server, make_openai, sleeps):
    openai_server.on("chat", too_many_requests(1))
    client = make_openai()
    client.max_retries = 4
    with pytest.raises(RateLimitError):
        client.complete("hi")
    assert len(openai_server.chats) == 5 and sleeps == [1.0] * 4


def test_a_429_asking_for_more_than_a_minute_is_not_waited_for(openai_server, make_openai, sleeps):
    openai_server.on("chat", too_many_requests(120))
    with pytest.raises(RateLimitError) as info:
        make_openai().complete("hi")
    assert info.value.retry_after == 120.0
    assert sleeps == [] and len(openai_server.chats) == 1


def test_a_retry_after_beyond_the_deadline_ends_the_chat_at_once(openai_server, make_openai, sleeps):
    openai_server.on("chat", too_many_requests(30))
    started = time.monotonic()
    with pytest.raises(APITimeoutError) as info:
        make_openai().complete("hi", deadline=5)
    assert time.monotonic() - started < 2
    assert "deadline" in str(info.value)
    assert sleeps == [] and len(openai_server.chats) == 1


@pytest.mark.parametrize("code", [500, 502, 504])
def test_a_failure_after_the_post_was_read_is_never_sent_again(openai_server, make_openai, sleeps, code):
    openai_server.on("chat", error_status(code, "upstream failed"))
    with pytest.raises(ServiceUnavailableError):
        make_openai(max_retries=5).complete("hi")
    assert len(openai_server.chats) == 1 and sleeps == []


def test_a_reset_after_the_post_was_read_says_the_job_may_have_started(openai_server, make_openai, sleeps):
    openai_server.on("chat", reset())
    with pytest.raises(APIConnectionError) as info:
        make_openai(max_retries=5).complete("hi")
    assert "may have started" in str(info.value) and "not sent again" in str(info.value)
    assert len(openai_server.requests) == 1 and sleeps == []  # a retry would have come before the raise


def test_a_post_that_got_no_answer_in_time_is_not_sent_again(openai_server, make_openai, sleeps):
    openai_server.on("chat", stall())
    with pytest.raises(APITimeoutError) as info:
        make_openai(max_retries=5, timeout=(2, 0.3)).complete("hi")
    assert "may have started" in str(info.value)
    assert len(openai_server.chats) == 1 and sleeps == []


def test_a_stream_that_stalls_after_its_headers_is_not_sent_again(openai_server, make_openai, sleeps):
    openai_server.on("chat", sse(STALL))
    with pytest.raises(APITimeoutError):
        make_openai(max_retries=5, timeout=(2, 0.3)).complete("hi")
    assert len(openai_server.chats) == 1 and sleeps == []


def test_a_refused_connection_is_retried_since_nothing_was_sent(make_openai, sleeps):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(APIConnectionError) as info:
        make_openai(base_url="http://127.0.0.1:%d/v1" % port).complete("hi")
    assert "refused" in str(info.value)
    assert "may have started" not in str(info.value)
    assert len(sleeps) == 2
