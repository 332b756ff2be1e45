"""The qvq command against a real Gradio stand-in, with stderr on a pseudo-terminal.

With one worker busy, the command's request waits in the queue: its status line must show
the queue position and the elapsed time while it waits, then clear before the answer.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import threading
import time

import pytest

from qvq_sdk import ProcessingStarted, QVQClient

LIMIT = 60.0


def run_with_tty_stderr(args, env):
    """Runs ``python -m qvq_sdk ARGS`` with stderr on a pty; returns (code, stdout, stderr)."""
    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "qvq_sdk", *args], stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    stderr = b""
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            stderr += data
        elif process.poll() is not None:
            break
    else:
        process.kill()
        pytest.fail("qvq did not finish in %s s" % LIMIT)
    stdout = process.stdout.read()
    process.stdout.close()
    os.close(master)
    return process.wait(LIMIT), stdout.decode(), stderr.decode()


@pytest.mark.parametrize("no_color", [False, True])
def test_status_line_shows_queue_position_and_elapsed_time(gradio_queue_server, no_color):
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    if no_color:
        env["NO_COLOR"] = "1"
    started = threading.Event()

    def occupy_the_worker():
        with QVQClient(base_url=gradio_queue_server.base_url) as client:
            for event in client.events("sleep 2.5"):
                if isinstance(event, ProcessingStarted):
                    started.set()

    busy = threading.Thread(target=occupy_the_worker, daemon=True)
    busy.start()
    assert started.wait(LIMIT), "the first job never started"
    code, stdout, stderr = run_with_tty_stderr(["hello", "--base-url", gradio_queue_server.base_url], env)
    busy.join(LIMIT)
    assert code == 0, stderr
    assert stdout == "You said: hello | image: none\n"
    assert "queue: position 1 of 1" in stderr
    assert "· 1 s" in stderr, "the elapsed time is redrawn while the request waits"
    assert stderr.endswith("\r\x1b[2K"), "the status line is cleared before the answer"
    assert ("\x1b[2m" in stderr) is (not no_color)
