"""Gradio venvs and stand-in server processes for the real-server tests.

Gradio is not installed in the test venv: each supported Gradio version gets its own venv
(``ensure_venv``), built once under ``$QVQ_TEST_VENVS`` (default ``<repo>/.venvs/``), and
``start_server`` runs ``standin_app.py`` under it as a subprocess on 127.0.0.1.

Run a stand-in by hand (installs the venv on first use), then point the SDK at the URL::

    python tests/realserver/servers.py --gradio 6 [--mode stream|return] [--port 7860]
        [--ssl-certfile CHAIN.pem --ssl-keyfile KEY.pem [--ssl-cafile CA.pem]]   # HTTPS

It says so when it builds the venv; a failure (a busy port, a venv that does not build, a
server that does not start) is one message on stderr and exit status 1; Ctrl-C stops it.
Each server works in a ``qvq-gradio*`` folder under the temporary directory (its log, the
app's records, Gradio's uploads), removed when the server stops.

``start_server(..., tls=certs)`` serves HTTPS with Gradio's own TLS (``launch(ssl_certfile=...,
ssl_keyfile=...)``): ``certs`` is a ``netkit.tls.Certs`` or a ``(certfile, keyfile, cafile)``
tuple of PEM paths (this module never imports trustme).

Environment:
    QVQ_TEST_VENVS      where the venvs live (default ``<repo>/.venvs``).
    QVQ_GRADIO_PYTHON   the Python (>= 3.10) to build them with; else this interpreter if it
                        is >= 3.10, else a python3.1x found on PATH or under pyenv.

What it shares with tests/realopenai/vllm_server.py (finding a Python, building a venv under a
lock, ports, log tails, the server's environment) is in tests/serverkit.py, which this module
puts on ``sys.path``. Needs only the standard library, so it also runs outside the test venv.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/: serverkit.py, shared with realopenai/vllm_server.py

import serverkit  # noqa: E402
from serverkit import LOCAL_HOSTS, HarnessError, free_port, venvs_dir  # noqa: E402, F401  (LOCAL_HOSTS: for conftest.py)

APP = os.path.join(HERE, "standin_app.py")

#: venv name -> pip requirements. gradio 5.9.1 is what the QVQ Space declared; it breaks with
#: pydantic >= 2.11 and huggingface_hub >= 1.0, hence the pins. "5.50" is the newest 5.x
#: (5.50.0 when added): it needs no pins (it works with huggingface_hub 1.x). "4" (no
#: /gradio_api prefix) is optional, not run by default; its pins avoid today's
#: fastapi/starlette/huggingface_hub.
VENV_SPECS = {
    "5.9.1": ["gradio==5.9.1", "pydantic==2.10.6", "huggingface_hub<1.0"],
    "5.50": ["gradio>=5.50,<6"],
    "6": ["gradio>=6,<7"],
    "4": ["gradio==4.44.1", "fastapi<0.113", "starlette<0.39", "huggingface_hub<0.26", "pydantic<2.11"],
}
#: The versions the test fixtures use unless QVQ_GRADIO_VERSIONS says otherwise.
DEFAULT_VERSIONS = ["5.9.1", "5.50", "6"]


def selected_versions():
    """The versions that ``QVQ_GRADIO_VERSIONS`` (comma-separated) names, else DEFAULT_VERSIONS."""
    wanted = os.environ.get("QVQ_GRADIO_VERSIONS")
    if not wanted:
        return list(DEFAULT_VERSIONS)
    versions = [v.strip() for v in wanted.split(",") if v.strip()]
    unknown = [v for v in versions if v not in VENV_SPECS]
    if unknown:
        raise ValueError("QVQ_GRADIO_VERSIONS: unknown %s (known: %s)" % (unknown, ", ".join(VENV_SPECS)))
    return versions


STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0


def find_gradio_python():
    """An interpreter >= 3.10 (Gradio 5 and 6 need it) with the venv module."""
    return serverkit.find_python(
        lambda version: (version or (0, 0)) >= (3, 10),
        "QVQ_GRADIO_PYTHON",
        ["python3.%d" % minor for minor in (12, 11, 10, 13, 14)],
        "3.1[0-9]*",
        "Python >= 3.10",
        "the Gradio venvs",
    )


def venv_python(name):
    return os.path.join(venvs_dir(), "gradio-" + name, "bin", "python")


def ensure_venv(name, on_build=None):
    """Build the venv for VENV_SPECS[name] unless already built; return its python.

    Idempotent (a marker file records the spec) and safe to call from concurrent processes
    (an fcntl lock). Raises HarnessError naming the install log on failure. ``on_build(path,
    log_path)`` is called when, and only when, the venv is about to be built.
    """
    if name not in VENV_SPECS:
        raise HarnessError("unknown gradio venv %r (known: %s)" % (name, ", ".join(VENV_SPECS)))
    spec = VENV_SPECS[name]

    def steps(base_python, path, python):
        return [
            [base_python, "-m", "venv", "--clear", path],
            [python, "-m", "pip", "install", "--disable-pip-version-check", *spec],
            [python, "-c", "import gradio, PIL; print('gradio', gradio.__version__)"],
        ]

    what = "the gradio %s venv" % name
    return serverkit.ensure_venv("gradio-" + name, {"spec": spec}, steps, find_gradio_python, what, on_build)


def _tls_paths(tls):
    """(certfile, keyfile, cafile) from a netkit.tls.Certs-like object or a 2/3-tuple of paths."""
    if tls is None:
        return None
    if isinstance(tls, (tuple, list)):
        if len(tls) not in (2, 3):
            raise HarnessError("tls= takes (certfile, keyfile[, cafile]), not %r" % (tls,))
        paths = tuple(tls) + (None,) * (3 - len(tls))
    else:
        paths = (tls.certfile, tls.keyfile, getattr(tls, "cafile", None))
    return tuple(None if p is None else os.path.abspath(os.fspath(p)) for p in paths)


def _ssl_context(cafile):
    """A client context trusting ``cafile`` (or, without one, not verifying at all)."""
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _get_config(base_url, cafile=None):
    """GET /config without any proxy; the parsed JSON, or None if not (yet) answering 200.
    An https URL is verified against ``cafile`` (unverified if None)."""
    handlers = [urllib.request.ProxyHandler({})]
    if base_url.startswith("https:"):
        handlers.append(urllib.request.HTTPSHandler(context=_ssl_context(cafile)))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(base_url + "/config", timeout=5) as resp:
            if resp.status == 200:
                return json.loads(resp.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        pass
    return None


class Server:
    """A running stand-in. ``base_url`` has no trailing slash (``https://`` when served with
    TLS; then ``cafile`` is the CA bundle that verifies it, if one was given)."""

    def __init__(self, venv_name, mode, concurrency, max_file_size, port, record_dir, log_path, process, tls=None):
        self.venv_name = venv_name
        self.mode = mode
        self.concurrency = concurrency
        self.max_file_size = max_file_size
        self.port = port
        self.tls = tls
        self.cafile = tls[2] if tls else None
        self.scheme = "https" if tls else "http"
        self.base_url = "%s://127.0.0.1:%d" % (self.scheme, port)
        self.record_dir = record_dir
        self.log_path = log_path
        self.process = process
        self.config = {}
        self.version = None

    def __repr__(self):
        return "<Server gradio %s %s %s>" % (self.version, self.mode, self.base_url)

    def record_lines(self, record_id):
        """Lines the ``slow {record_id}`` command has written so far ([] if none)."""
        try:
            with open(os.path.join(self.record_dir, record_id + ".log")) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def app_stopped(self, record_id):
        """Whether the app recorded that its ``slow {record_id}`` generator stopped."""
        lines = self.record_lines(record_id)
        return bool(lines) and lines[-1].startswith("stopped at")

    def ticks(self, record_id):
        """How many ticks the ``slow {record_id}`` command made."""
        return sum(1 for line in self.record_lines(record_id) if line.startswith("tick"))

    def log_tail(self, lines=40):
        return serverkit.log_tail(self.log_path, lines)


def _server_env(gradio_tmp):
    # server_env: Gradio checks its own URL with httpx at launch, never through a proxy.
    return serverkit.server_env(
        {
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_SSR_MODE": "false",
            "GRADIO_TEMP_DIR": gradio_tmp,
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )


def _stop(process, timeout=STOP_TIMEOUT):
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: only what we started
    except OSError:
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            process.kill()
        process.wait(timeout)


@contextlib.contextmanager
def start_server(
    venv_name,
    mode="stream",
    concurrency=4,
    max_file_size=None,
    record_dir=None,
    port=None,
    startup_timeout=STARTUP_TIMEOUT,
    tls=None,
    on_build=None,
):
    """Run the stand-in under the named gradio venv; yield a ready ``Server``; stop it on exit.

    Waits until ``GET /config`` answers 200 (at most ``startup_timeout`` s) and raises
    HarnessError with the server log's tail if the process dies or the wait runs out (the log
    goes with the server's folder).
    ``tls``: serve HTTPS with these PEM files: a ``netkit.tls.Certs`` (anything with
    ``certfile``, ``keyfile`` and ``cafile`` attributes) or ``(certfile, keyfile[, cafile])``;
    the readiness check trusts ``cafile``. ``on_build``: see ``ensure_venv``.

    The server works in a new ``qvq-gradio*`` folder under the temporary directory (its log,
    its records unless ``record_dir`` is given, Gradio's uploads): removed once the server
    has stopped, whether it started or not.
    """
    tls = _tls_paths(tls)
    if port and not serverkit.port_is_free(port):  # before a venv build that can take minutes
        raise HarnessError("port %d on 127.0.0.1 is already in use: pick another with --port" % port)
    python = ensure_venv(venv_name, on_build=on_build)
    work = tempfile.mkdtemp(prefix="qvq-gradio%s-%s-" % (venv_name, mode))
    try:
        with _serve(
            python, work, venv_name, mode, concurrency, max_file_size, record_dir, port, startup_timeout, tls
        ) as server:
            yield server
    finally:
        shutil.rmtree(work, ignore_errors=True)  # after _serve stopped the server


@contextlib.contextmanager
def _serve(python, work, venv_name, mode, concurrency, max_file_size, record_dir, port, startup_timeout, tls):
    """start_server's body, in its folder ``work``: the ready server; stopped on exit."""
    record_dir = os.path.abspath(record_dir or os.path.join(work, "records"))
    os.makedirs(record_dir, exist_ok=True)
    gradio_tmp = os.path.join(work, "gradio-tmp")
    os.makedirs(gradio_tmp, exist_ok=True)
    log_path = os.path.join(work, "server.log")
    attempts = 1 if port else 3  # a picked free port can be taken before gradio binds it
    for attempt in range(attempts):
        use_port = port or free_port()
        cmd = [
            python,
            APP,
            "--port",
            str(use_port),
            "--host",
            "127.0.0.1",
            "--mode",
            mode,
            "--concurrency",
            str(concurrency),
            "--record-dir",
            record_dir,
        ]
        if max_file_size is not None:
            cmd += ["--max-file-size", str(max_file_size)]
        if tls:
            cmd += ["--ssl-certfile", tls[0], "--ssl-keyfile", tls[1]]
        process = serverkit.spawn(
            cmd,
            log_path,
            env=_server_env(gradio_tmp),
            cwd=work,
            start_new_session=True,
            preexec_fn=serverkit.die_with_parent,
        )
        server = Server(venv_name, mode, concurrency, max_file_size, use_port, record_dir, log_path, process, tls)
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                config = _get_config(server.base_url, server.cafile)
                if config is not None:
                    break
                if process.poll() is not None:
                    tail = serverkit.log_tail(log_path)
                    if attempt + 1 < attempts and ("port" in tail.lower()):
                        break
                    raise HarnessError(
                        "the gradio %s stand-in exited with %s before serving; the end of its log:\n%s"
                        % (venv_name, process.returncode, tail)
                    )
                if time.monotonic() > deadline:
                    raise HarnessError(
                        "the gradio %s stand-in did not answer /config within %.0f s; the end of its log:\n%s"
                        % (venv_name, startup_timeout, serverkit.log_tail(log_path))
                    )
                time.sleep(0.2)
            if config is None:
                continue  # port clash: try another port
            server.config = config
            server.version = config.get("version")
            yield server
            return
        finally:
            _stop(process)
    raise HarnessError(
        "could not start the gradio %s stand-in on a free port; the end of its log:\n%s"
        % (venv_name, serverkit.log_tail(log_path))
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog=os.path.basename(__file__),
        description="Serve the QVQ Space stand-in locally (installs its gradio venv if needed).",
    )
    parser.add_argument("--gradio", choices=sorted(VENV_SPECS), default="6")
    parser.add_argument("--mode", choices=["stream", "return"], default="stream")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-file-size", default=None)
    parser.add_argument("--ssl-certfile", default=None, help="serve HTTPS: the certificate chain (PEM)")
    parser.add_argument("--ssl-keyfile", default=None, help="serve HTTPS: its private key (PEM)")
    parser.add_argument("--ssl-cafile", default=None, help="the CA that verifies it (for the readiness check)")
    args = parser.parse_args(argv)
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        parser.error("--ssl-certfile and --ssl-keyfile go together")
    tls = (args.ssl_certfile, args.ssl_keyfile, args.ssl_cafile) if args.ssl_certfile else None

    def building(path, log_path):
        print(
            "preparing the gradio %s venv in %s (first run only: a few minutes; log: %s) ..."
            % (args.gradio, path, log_path),
            flush=True,
        )

    try:
        with start_server(
            args.gradio,
            mode=args.mode,
            concurrency=args.concurrency,
            max_file_size=args.max_file_size,
            port=args.port,
            tls=tls,
            on_build=building,
        ) as server:
            print(
                "gradio %s stand-in (%s mode) serving at %s  (log: %s; Ctrl-C to stop)"
                % (server.version, server.mode, server.base_url, server.log_path),
                flush=True,
            )
            try:
                while server.process.poll() is None:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
            else:
                print("the server exited; log tail:\n" + server.log_tail(), file=sys.stderr)
                return 1
    except HarnessError as exc:
        print("%s: error: %s" % (parser.prog, exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # while the venv was built or the server started
        print("%s: interrupted" % parser.prog, file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
