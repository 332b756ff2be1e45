"""The "qvq_sdk" logger: one DEBUG line per request and per stream, nothing louder, no token."""

from __future__ import annotations

import logging
import re

import pytest

from qvq_sdk import AppError
from qvq_sdk.testing import FakeSpace

TOKEN = "hf_LogSecret0123456789abcdef"


def sdk_records(caplog):
    return [r for r in caplog.records if r.name == "qvq_sdk"]


@pytest.mark.parametrize("protocol", ["queue", "call"])
def test_debug_lines_for_each_request_and_the_stream(caplog, protocol):
    caplog.set_level(logging.DEBUG, logger="qvq_sdk")
    client = FakeSpace().answer("Hel", "lo").client(token=TOKEN, protocol=protocol)
    assert client.complete("hi") == "Hello"
    lines = [r.getMessage() for r in sdk_records(caplog)]
    requests = [line for line in lines if " -> " in line]
    assert [line.split()[0] for line in requests] == ["GET", "POST", "GET"]  # config, job, stream
    assert all(re.search(r" -> 200 in \d+\.\d{3}s$", line) for line in requests)
    streams = [line for line in lines if line.startswith("stream ")]
    assert len(streams) == 1
    assert re.search(r" complete: \d+ events, \d+ bytes in \d+\.\d{3}s$", streams[0])
    assert all(r.levelno == logging.DEBUG for r in sdk_records(caplog))
    assert not any(TOKEN in r.getMessage() for r in caplog.records)


def test_a_cancelled_stream_says_so(caplog):
    caplog.set_level(logging.DEBUG, logger="qvq_sdk")
    chunks = FakeSpace().answer("a", "b", delay=0.01).client().chat("hi")
    next(chunks)
    chunks.close()
    assert any(r.getMessage().startswith("stream ") and " cancelled: " in r.getMessage() for r in caplog.records)


def test_nothing_at_info_or_above_for_a_chat_even_a_failed_one(caplog):
    caplog.set_level(logging.INFO, logger="qvq_sdk")
    client = FakeSpace().answer("ok").app_error("Boom").client(token=TOKEN)
    assert client.complete("hi") == "ok"
    with pytest.raises(AppError):
        client.complete("again")
    assert sdk_records(caplog) == []
