"""Running the client processes: ``worker.py`` under a client's venv, in a clean environment.

Every chat is measured in a process of its own client (``worker.py``), started here with no
proxy variables, no token and Hugging Face's and Gradio's telemetry off; its figures come back
as the last line of its output, in JSON. A process that fails or hangs becomes a result with
``failed`` set, never an exception: the round goes on.
"""

from __future__ import annotations

import json
import os
import subprocess

from clients import CLIENTS, OPENAI_CLIENTS
from venvs import HERE, python_of


def client_env():
    env = dict(os.environ)
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(key, None)
    env.update(
        {
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "DO_NOT_TRACK": "1",
            "HF_TOKEN": "",
            "PYTHONDONTWRITEBYTECODE": "",
        }
    )
    env.pop("PYTHONPATH", None)
    env.pop("HF_TOKEN", None)
    return env


def run_worker(client, case, options, env, timeout):
    """Runs ``worker.py client case *options`` in the client's venv; its figures as a dict."""
    venv = (CLIENTS.get(client) or OPENAI_CLIENTS[client])[0]
    cmd = [python_of(venv), os.path.join(HERE, "worker.py"), client, case, *options]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"client": client, "case": case, "failed": "timed out after %d s" % timeout}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return {"client": client, "case": case, "failed": "exit %s: %s" % (done.returncode, tail[-300:])}
    return json.loads(lines[-1])
