"""Where the benchmark keeps its files, its own venvs, and the qvq-sdk it measures.

Its venvs live under ``benchmarks/.venvs/``, its results under ``benchmarks/results/``.
Each venv is built on first use from its pip requirements and rebuilt when they change;
qvq-sdk is reinstalled into the ``sdk`` venv on every run, from the working tree or from a
commit, as a user would have it (not editable).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VENVS = os.path.join(HERE, ".venvs")
RESULTS = os.path.join(HERE, "results")

#: venv name -> pip requirements.
VENV_SPECS = {
    # qvq-sdk's dependencies; the raw floor uses its requests. qvq-sdk itself is installed
    # from this checkout on every run (install_sdk), as a user would have it: not editable.
    "sdk": ["requests", "sseclient-py"],
    "gradio_client": ["--upgrade", "gradio_client"],
    "g4f": ["g4f==0.5.3.1"],  # its last release with Qwen_QVQ_72B
    "chart": ["matplotlib"],
    "tls": ["trustme"],  # the network scenario's throw-away certificates (tests/netkit/tls.py)
    "openai": ["--upgrade", "openai"],  # the openai scenario's peer, openai-python (newest)
}


def python_of(venv):
    return os.path.join(VENVS, venv, "bin", "python")


def ensure_venv(name, base_python):
    spec = VENV_SPECS[name]
    path = os.path.join(VENVS, name)
    marker = os.path.join(path, ".bench-spec.json")
    try:
        with open(marker) as f:
            if json.load(f) == spec and os.path.exists(python_of(name)):
                return
    except (OSError, ValueError):
        pass
    log_path = os.path.join(VENVS, name + ".install.log")
    print("building the %s venv (log: %s) ..." % (name, log_path), flush=True)
    with open(log_path, "w") as log:
        for cmd in (
            [base_python, "-m", "venv", "--clear", path],
            [python_of(name), "-m", "pip", "install", "--disable-pip-version-check", *spec],
        ):
            log.write("$ %s\n" % " ".join(cmd))
            log.flush()
            if subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL):
                raise SystemExit("building the %s venv failed; see %s" % (name, log_path))
    with open(marker, "w") as f:
        json.dump(spec, f)


def install_sdk(rev=None):
    """(Re)installs qvq-sdk into the sdk venv, so the run measures this tree: the working tree,
    or with ``rev`` that commit's files (``git archive``), e.g. while others edit the tree."""
    log_path = os.path.join(VENVS, "sdk-qvq.install.log")
    with contextlib.ExitStack() as stack:
        source = REPO
        if rev:
            source = stack.enter_context(tempfile.TemporaryDirectory(prefix="qvq-sdk-src-"))
            archive = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", rev], capture_output=True)
            if archive.returncode:
                raise SystemExit("git archive %s failed: %s" % (rev, archive.stderr.decode(errors="replace")[-300:]))
            subprocess.run(["tar", "-x", "-C", source], input=archive.stdout, check=True)
        cmd = [
            python_of("sdk"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-deps",
            "--force-reinstall",
            source,
        ]
        with open(log_path, "w") as log:
            if subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=VENVS):
                raise SystemExit("installing qvq-sdk from %s failed; see %s" % (rev or REPO, log_path))


def checkout_state(rev=None):
    """The commit the run measured, with ``-dirty`` when the working tree had changes."""
    cmd = ["git", "-C", REPO, "describe", "--always"] + (["--dirty"] if not rev else [rev])
    done = subprocess.run(cmd, capture_output=True, text=True)
    return done.stdout.strip() or "not a git checkout"


def installed_version(venv, distribution):
    code = "import importlib.metadata as m; print(m.version(%r))" % distribution
    out = subprocess.run([python_of(venv), "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "?"
