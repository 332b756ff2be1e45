"""Fixtures of the fault tests: a FaultSpace (faultspace.py) per test, a client for it, and a
time limit on every test.

Each test gets a fresh server on 127.0.0.1 and stops it at the end (all its threads joined,
all its sockets closed). No test can hang: tests/conftest.py's ``time_limit`` (autouse) fails
any test still running after ``TREE_TIME_LIMIT`` seconds (a test module may set its own
``TEST_TIME_LIMIT``), by SIGALRM in the main thread, which interrupts a blocked socket
read. The SDK's retry sleeps are recorded instead of slept.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faultspace import TOKEN, FaultSpace

from qvq_sdk import QVQClient

TREE_TIME_LIMIT = 30.0  # seconds a test here may run, unless its module sets TEST_TIME_LIMIT


@pytest.fixture
def tree_time_limit():
    """Seconds a fault test may run (tests/conftest.py; a module's TEST_TIME_LIMIT overrides it)."""
    return TREE_TIME_LIMIT


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No token, base URL or proxy from the environment; 127.0.0.1 is always reached directly."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "QVQ_BASE_URL", "QVQ_PROTOCOL", "QVQ_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


@pytest.fixture(autouse=True)
def sleeps(monkeypatch):
    """The retry delays the SDK asked for, recorded instead of slept (the clock is real)."""
    delays = []

    def record(cancel, seconds):
        delays.append(seconds)
        cancel.check()  # a cancelled chat still ends here

    monkeypatch.setattr("qvq_sdk._transport.transport.pause", record)
    return delays


@pytest.fixture
def space():
    """A FaultSpace, healthy until the test scripts a fault; stopped (and checked) at the end."""
    with FaultSpace() as server:
        yield server
    assert server.errors == [], "the FaultSpace itself failed: %r" % server.errors


@pytest.fixture
def other_host():
    """A second FaultSpace: another origin (port), for redirects."""
    with FaultSpace() as server:
        yield server
    assert server.errors == []


@pytest.fixture
def make_client(space):
    """``make_client(protocol, **options)``: a client of ``space`` with the token and short timeouts."""
    clients = []

    def make(protocol="queue", **options):
        options.setdefault("token", TOKEN)
        options.setdefault("timeout", (2, 5))
        options.setdefault("base_url", space.base_url)
        client = QVQClient(protocol=protocol, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
