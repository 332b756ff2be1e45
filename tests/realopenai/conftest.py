"""pytest fixtures that run a real OpenAI-compatible server (vLLM for CPU) on 127.0.0.1 (see vllm_server.py).

Every test in this directory gets the ``realopenai`` marker (deselect with ``-m "not realopenai"``).
The server is started once per session, on first use, and stopped at the end of the session. A
venv that cannot be built or a server that cannot start is a test *error* naming the log, never a
skip. The first run builds the venv (about 2 minutes, 3.5 GB under ``$QVQ_TEST_VENVS`` or
``<repo>/.venvs``); ``python tests/realopenai/vllm_server.py --build-venv`` does that ahead.

Fixtures:
    vllm_server     the running server (session scope), a ``vllm_server.Server``:
                    ``.base_url``       ``http://127.0.0.1:PORT/v1`` (the OpenAI base URL)
                    ``.url``            ``http://127.0.0.1:PORT`` (``/health``, ``/tokenize``)
                    ``.model``          ``"Qwen/QVQ-72B-Preview"`` (the served name)
                    ``.api_key``        the key it demands (a wrong or missing one gets 401)
                    ``.headers``        ``Authorization: Bearer <key>`` and a JSON content type
                    ``.pid``, ``.port``, ``.pids()``, ``.alive()``, ``.rss_bytes()``,
                    ``.max_model_len`` (512), ``.startup_seconds``
                    ``.metric(name)``   a /metrics value, e.g. ``vllm:num_requests_running`` (0
                                        again ~0.1 s after a client closes its stream) or
                                        ``vllm:generation_tokens_total``
                    ``.log_path``, ``.log_tail(n)``, ``.log_mark()`` + ``.log_since(mark)``
                    (what the server logged after a point, e.g. around one request)

A test using ``vllm_server`` fails with the server log's tail if the server is dead before it
or dies during it.
"""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import vllm_server as harness  # noqa: E402

#: Seconds a test here may run, where tests/conftest.py sets per-test time limits (the server's
#: start is a session fixture's, with its own bounded wait; the slowest test starts a server
#: that dies at once, ~10 s).
TREE_TIME_LIMIT = 120.0


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "realopenai: runs against a real OpenAI-compatible server (vLLM for CPU) on 127.0.0.1 "
        "(builds its venv on first use)",
    )
    # requests must reach 127.0.0.1 directly even if a proxy is configured.
    for key in ("NO_PROXY", "no_proxy"):
        os.environ[key] = ",".join(filter(None, [os.environ.get(key), harness.LOCAL_HOSTS]))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.realopenai)


@pytest.fixture
def tree_time_limit():
    """Seconds a test here may run (used by tests/conftest.py's time limits, where present)."""
    return TREE_TIME_LIMIT


@pytest.fixture(scope="session")
def vllm_server():
    with harness.start_server() as server:
        yield server


@pytest.fixture(autouse=True)
def _vllm_server_still_up(request):
    """A test using ``vllm_server`` fails clearly, with the server log's tail, if the server is
    dead before it starts or died during it (instead of a bare "connection refused")."""
    if "vllm_server" not in request.fixturenames:
        yield
        return
    server = request.getfixturevalue("vllm_server")
    if not server.alive():
        pytest.fail(
            "the vLLM server (pid %d) died before this test (exit %s); log tail:\n%s"
            % (server.pid, server.process.returncode, server.log_tail()),
            pytrace=False,
        )
    yield
    if not server.alive():
        pytest.fail(
            "the vLLM server (pid %d) died during this test (exit %s); log tail:\n%s"
            % (server.pid, server.process.returncode, server.log_tail()),
            pytrace=False,
        )
