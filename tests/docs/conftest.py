"""Fixtures for the documentation tests: a Gradio stand-in of the Space and example files.

The stand-in is the one the real-server tests use (``tests/realserver/servers.py``), started
here in a session fixture of our own, because the fixtures of ``tests/realserver/conftest.py``
are visible only under that directory. It runs Gradio 5.9.1, the QVQ Space's version (or the
first version in ``QVQ_GRADIO_VERSIONS``), and starts only if a test needs it.

A test that runs longer than ``TREE_TIME_LIMIT`` seconds fails (tests/conftest.py; a module may
set its own ``TEST_TIME_LIMIT``); starting the stand-in, which has a limit of its own, does not
count, even when a test asks for it in its body.
"""

from __future__ import annotations

import contextlib
import os
import sys

import pytest
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REALSERVER = os.path.join(os.path.dirname(HERE), "realserver")
sys.path.insert(0, REALSERVER)

import servers  # noqa: E402  (tests/realserver/servers.py)

TREE_TIME_LIMIT = 180.0  # seconds a test here may run (an example may run EXAMPLE_TIMEOUT, 120 s)

#: The files the examples mention, made fresh for every example: real, small JPEGs.
EXAMPLE_IMAGES = {"cat.jpg": ((64, 48), (200, 120, 40)), "photo.jpg": ((80, 60), (40, 120, 200))}


@pytest.fixture
def tree_time_limit():
    """Seconds a documentation test may run (tests/conftest.py; a module's TEST_TIME_LIMIT overrides it)."""
    return TREE_TIME_LIMIT


@pytest.fixture(scope="session")
def standin(time_limits):
    """A running stand-in of the Space (stream mode) on 127.0.0.1."""
    wanted = os.environ.get("QVQ_GRADIO_VERSIONS") or servers.DEFAULT_VERSIONS[0]
    version = wanted.split(",")[0].strip()
    with contextlib.ExitStack() as stack:
        with time_limits.paused():  # not the test's time: servers.py has limits of its own
            server = stack.enter_context(servers.start_server(version))
        yield server


@pytest.fixture(scope="session")
def example_images(tmp_path_factory):
    """{name: path} of the images the examples open."""
    folder = tmp_path_factory.mktemp("example-images")
    paths = {}
    for name, (size, colour) in EXAMPLE_IMAGES.items():
        path = folder / name
        Image.new("RGB", size, colour).save(path, format="JPEG")
        paths[name] = path
    return paths
