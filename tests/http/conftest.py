"""Shared fixtures of the HTTP-layer tests: a Gradio 5 Space faked with ``responses``.

Nothing here touches the network: every request goes to a ``responses`` mock, and an
unmatched one fails the test (``responses`` raises ConnectionError for it). The fake Space
serves a canned Gradio 5 ``/config`` (``api_prefix`` ``"/gradio_api"``, the ``generate``
endpoint at ``fn_index`` 1), an upload route, and both streaming protocols with canned
server-sent-event bodies built by the helpers in httpkit.py. A test that runs longer than
``TREE_TIME_LIMIT`` seconds fails (tests/conftest.py; a module may set its own
``TEST_TIME_LIMIT``).
"""

from __future__ import annotations

from typing import Any, List

import pytest
import responses
from httpkit import FakeSpace

TREE_TIME_LIMIT = 20.0  # seconds a test here may run, unless its module sets TEST_TIME_LIMIT


@pytest.fixture
def tree_time_limit() -> float:
    """Seconds an HTTP test may run (tests/conftest.py; a module's TEST_TIME_LIMIT overrides it)."""
    return TREE_TIME_LIMIT


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No token, base URL or proxy from the environment can leak into a test."""
    for name in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HOME",
        "HF_TOKEN_PATH",
        "QVQ_BASE_URL",
        "QVQ_PROTOCOL",
        "QVQ_API_KEY",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
    # An empty HF home: no saved token file can be found either.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """The retry delays the transport asked for, instead of sleeping them."""
    delays = []

    def record(cancel, seconds):
        delays.append(seconds)
        cancel.check()  # a cancelled chat still ends here

    monkeypatch.setattr("qvq_sdk._transport.transport.pause", record)
    return delays


@pytest.fixture
def rsps() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def space(rsps: responses.RequestsMock) -> FakeSpace:
    return FakeSpace(rsps)
