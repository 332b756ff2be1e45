"""Shared set-up for the pure unit tests: no network, no environment leftovers.

Every test runs with the Hugging Face and qvq-sdk environment variables removed and
HOME pointing at an empty temporary directory, so that a developer's saved token or
``QVQ_BASE_URL`` can never change a result.
"""

import pytest

ENV_VARS = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HOME",
    "QVQ_BASE_URL",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    return home
