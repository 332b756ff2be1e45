"""Shared set-up for the pure unit tests: no network, no environment leftovers.

Every test runs with the Hugging Face and qvq-sdk environment variables removed and
HOME pointing at an empty temporary directory, so that a developer's saved token or
``QVQ_BASE_URL`` can never change a result. A test that runs longer than
``TREE_TIME_LIMIT`` seconds fails (tests/conftest.py; a module may set its own
``TEST_TIME_LIMIT``).
"""

import pytest

TREE_TIME_LIMIT = 20.0  # seconds a test here may run, unless its module sets TEST_TIME_LIMIT

ENV_VARS = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HOME",
    "QVQ_BASE_URL",
    "QVQ_PROTOCOL",
    "QVQ_API_KEY",
)


@pytest.fixture
def tree_time_limit():
    """Seconds a unit test may run (tests/conftest.py; a module's TEST_TIME_LIMIT overrides it)."""
    return TREE_TIME_LIMIT


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    return home
