"""pytest fixtures that run the QVQ Space stand-in on real Gradio servers (see servers.py).

Every test in this directory gets the ``realserver`` marker (deselect with
``-m "not realserver"``). Servers are started lazily, at most once per session per
configuration, and all stopped at the end of the session. A venv that cannot be built or a
server that cannot start is a test *error* naming the log, never a skip.

Fixtures (each parametrized over the Gradio versions, ids ``gradio5.9.1``, ``gradio5.50``, ``gradio6``):
    gradio_server          stream mode, concurrency 4
    gradio_return_server   return mode (the stream holds only the completion)
    gradio_queue_server    stream mode, concurrency 1 (to force queueing)
    gradio_tls_server      stream mode over HTTPS (Gradio's own TLS), certificates from ``certs``
    certs                  a CA and a server certificate for 127.0.0.1, made by trustme for the run
    realserver_pool        ``.get(version, mode=..., concurrency=..., max_file_size=..., tls=...)``
                           for any other configuration

``QVQ_GRADIO_VERSIONS`` (comma-separated, default ``5.9.1,5.50,6``) picks the versions, e.g. ``6`` for a
quick local run or ``4,5.9.1,6`` to include the optional Gradio 4.44 venv.

A test that runs longer than ``TREE_TIME_LIMIT`` seconds fails (tests/conftest.py; a module may
set its own ``TEST_TIME_LIMIT``). Building a venv and starting a server have time limits of their
own (servers.py), so they do not count, even when a test asks the pool for a server in its body.
"""

from __future__ import annotations

import contextlib
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: the netkit

import servers

HERE = os.path.dirname(os.path.abspath(__file__))
TREE_TIME_LIMIT = 120.0  # seconds a test here may run (the slowest take ~20 s); a module may set TEST_TIME_LIMIT


def _versions():
    try:
        return servers.selected_versions()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


VERSIONS = _versions()
VERSION_IDS = ["gradio" + v for v in VERSIONS]


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "realserver: runs against a local Gradio stand-in of the QVQ Space (builds gradio venvs on first use)",
    )
    # requests must reach 127.0.0.1 directly even if a proxy is configured.
    for key in ("NO_PROXY", "no_proxy"):
        os.environ[key] = ",".join(filter(None, [os.environ.get(key), servers.LOCAL_HOSTS]))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.realserver)


class ServerPool:
    """Starts each (version, mode, concurrency, max_file_size) server once; stops all at close."""

    def __init__(self, time_limits):
        self._time_limits = time_limits  # tests/conftest.py's TimeLimits
        self._stack = contextlib.ExitStack()
        self._servers = {}
        self._venv_errors = {}

    def get(self, version, mode="stream", concurrency=4, max_file_size=None, tls=None):
        key = (version, mode, concurrency, max_file_size, tls)
        if key not in self._servers:
            with self._time_limits.paused():  # not the test's time: servers.py has limits of its own
                # Build (or fail to build) each venv once, not once per fixture.
                if version not in self._venv_errors:
                    try:
                        servers.ensure_venv(version)
                        self._venv_errors[version] = None
                    except servers.HarnessError as exc:
                        self._venv_errors[version] = exc
                if self._venv_errors[version] is not None:
                    raise self._venv_errors[version]
                tls_option = {} if tls is None else {"tls": tls}
                self._servers[key] = self._stack.enter_context(
                    servers.start_server(
                        version, mode=mode, concurrency=concurrency, max_file_size=max_file_size, **tls_option
                    )
                )
        return self._servers[key]

    def close(self):
        self._stack.close()


@pytest.fixture
def tree_time_limit():
    """Seconds a real-server test may run (tests/conftest.py; a module's TEST_TIME_LIMIT overrides it)."""
    return TREE_TIME_LIMIT


@pytest.fixture(scope="session")
def realserver_pool(time_limits):
    pool = ServerPool(time_limits)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session", params=VERSIONS, ids=VERSION_IDS)
def gradio_version(request):
    return request.param


@pytest.fixture(scope="session")
def gradio_server(realserver_pool, gradio_version):
    return realserver_pool.get(gradio_version)


@pytest.fixture(scope="session")
def gradio_return_server(realserver_pool, gradio_version):
    return realserver_pool.get(gradio_version, mode="return")


@pytest.fixture(scope="session")
def gradio_queue_server(realserver_pool, gradio_version):
    return realserver_pool.get(gradio_version, concurrency=1)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    from netkit.tls import make_certs

    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def gradio_tls_server(realserver_pool, gradio_version, certs):
    return realserver_pool.get(gradio_version, tls=certs)
