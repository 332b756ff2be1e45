"""A real forward proxy for tests: ``proxy.py`` (PyPI ``proxy.py``, module ``proxy``) run as a
subprocess on 127.0.0.1 with a free port.

    with start_proxy() as proxy:                       # plain HTTP proxy
        requests.get(url, proxies={"http": proxy.url, "https": proxy.url})
    with start_proxy(tls_certs=certs) as proxy:        # the proxy speaks TLS: TLS-in-TLS
        requests.get("https://127.0.0.1:%d/" % port, proxies={"https": proxy.url}, verify=certs.ca_pem)
        assert [r.method for r in proxy.requests()] == ["CONNECT"]

Modes: ``http://`` targets are forwarded (``GET http://host:port/path``), ``https://`` targets
go through a ``CONNECT`` tunnel; with ``tls_certs`` (a ``tls.Certs``, or a ``(certfile,
keyfile)`` pair) the proxy's own listener is TLS, so ``proxy.url`` is ``https://...`` and a
client must trust the CA for the proxy too (requests uses ``verify`` for both).

What the proxy saw, from its side:

* ``proxy.requests()``: one ``ProxyRequest`` per request line the proxy parsed (each
  forwarded request, including later ones on a keep-alive connection, and each ``CONNECT``),
  written by a small proxy.py plugin the moment the request arrives.
* ``proxy.access_log()``: proxy.py's own access log, parsed: one ``AccessRecord`` per *client
  connection*, written only when that connection closes (for a tunnel: when the tunnel
  closes). It names only the connection's first request, and ``bytes`` counts the first
  response only (a tunnel: every byte from the server). Close the client's session (or use
  ``wait_for_access_log``) before asserting on it.

proxy.py quirks worth knowing (2.4.x):

* every request on one keep-alive client connection goes to the upstream of the connection's
  *first* request, whatever host the later ones name. ``ProxyRequest.upstream`` says where a
  request really went and ``misrouted`` flags the difference. requests/urllib3 share one
  proxy connection for all ``http://`` hosts, so keep one ``http://`` upstream per proxy.
* a client connection idle for ``timeout`` seconds (default here 60; proxy.py's own is 10) is
  closed by the proxy, also mid-response: pass a larger ``timeout`` for a long silent stream.
* chunked responses and tunnels are relayed as the bytes arrive (no buffering): an event
  stream's events reach the client as the server writes them.

The proxy runs under ``QVQ_PROXY_PYTHON`` if set, else this interpreter; proxy.py 2.4.10 runs
on CPython 3.7 to 3.13. It is started in its own session and with PR_SET_PDEATHSIG, and
stopped by signalling its process group, so no process outlives the test.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

__all__ = [
    "AccessRecord",
    "Proxy",
    "ProxyRequest",
    "ProxyUnavailable",
    "proxy_python",
    "start_proxy",
]

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

_PLUGIN_MODULE = "qvq_netkit_proxy_log"
_PLUGIN_SOURCE = '''\
"""Written by tests/netkit/proxy.py: records each request proxy.py parses as a JSON line."""
import json, os, time

from proxy.http.proxy import HttpProxyBasePlugin

_PATH = os.environ["QVQ_NETKIT_PROXY_RECORDS"]


def _text(value):
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    return value


def _write(record):
    line = (json.dumps(record, sort_keys=True) + "\\n").encode("utf-8")
    fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class RequestLog(HttpProxyBasePlugin):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._upstream = None

    def before_upstream_connection(self, request):
        return request

    def handle_client_request(self, request):
        host, port = _text(request.host), request.port
        target = "%s:%s" % (host, port)
        if self._upstream is None:
            self._upstream = target
        method = _text(request.method)
        try:
            client = "%s:%s" % tuple(self.client.addr[:2])
        except Exception:
            client = None
        _write({
            "method": method,
            "host": host,
            "port": port,
            "path": None if method == "CONNECT" else _text(request.path),
            "upstream": self._upstream,
            "client": client,
            "time": time.time(),
        })
        return request

    def handle_upstream_chunk(self, chunk):
        return chunk

    def on_upstream_connection_close(self):
        pass
'''

#: proxy.py's access log lines (DEFAULT_HTTP_PROXY_ACCESS_LOG_FORMAT and the HTTPS one).
_HTTP_LINE = re.compile(
    r"- (?P<client>\S+) - (?P<method>[A-Z]+) (?P<target>[^\s/]+)(?P<path>\S*) - "
    r"(?P<status>\S+) (?P<reason>.*?) - (?P<bytes>\d+) bytes - (?P<ms>[\d.]+)ms\s*$"
)
_TUNNEL_LINE = re.compile(
    r"- (?P<client>\S+) - (?P<method>CONNECT) (?P<target>\S+) - (?P<bytes>\d+) bytes - (?P<ms>[\d.]+)ms\s*$"
)


class ProxyUnavailable(RuntimeError):
    """proxy.py is not installed for the chosen interpreter, or did not start."""


class ProxyRequest(
    collections.namedtuple("ProxyRequest", "method host port path upstream client time"),
):
    """A request the proxy parsed. ``path`` is None for CONNECT; ``upstream`` is the
    ``host:port`` proxy.py really sent it to (see ``misrouted``); ``time`` is ``time.time()``."""

    @property
    def target(self):
        return "%s:%s" % (self.host, self.port)

    @property
    def misrouted(self):
        return self.upstream != self.target


class AccessRecord(collections.namedtuple("AccessRecord", "method target path status reason bytes ms client")):
    """A parsed proxy.py access-log line: one per client connection, at its close. ``path``,
    ``status`` and ``reason`` are None for a CONNECT tunnel; ``bytes`` is an int."""


def proxy_python():
    """The interpreter to run proxy.py with: ``$QVQ_PROXY_PYTHON``, else this one if it can
    import ``proxy``. Raises ProxyUnavailable otherwise."""
    explicit = os.environ.get("QVQ_PROXY_PYTHON")
    if explicit:
        return explicit
    spec = importlib.util.find_spec("proxy")
    if spec is not None and spec.submodule_search_locations:  # the package, not a stray proxy.py
        return sys.executable
    raise ProxyUnavailable(
        "proxy.py is not installed for %s: pip install proxy.py (or set QVQ_PROXY_PYTHON to a python that has it)"
        % sys.executable
    )


def _die_with_parent():
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _tls_files(tls_certs):
    if isinstance(tls_certs, (tuple, list)):
        return tls_certs[0], tls_certs[1]
    return tls_certs.cert_pem, tls_certs.key_pem


class Proxy:
    """A running proxy.py. ``url`` is ``http://127.0.0.1:PORT`` (``https://`` with TLS)."""

    def __init__(self, port, tls, work_dir, log_path, records_path, process):
        self.host = "127.0.0.1"
        self.port = port
        self.tls = tls
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", port)
        self.work_dir = work_dir
        self.log_path = log_path
        self.records_path = records_path
        self.process = process

    def __repr__(self):
        return "<Proxy %s pid=%s>" % (self.url, self.process.pid)

    @property
    def proxies(self):
        """A requests ``proxies=`` mapping sending both schemes through this proxy."""
        return {"http": self.url, "https": self.url}

    def requests(self):
        """Every request the proxy has parsed so far, in order (``ProxyRequest``)."""
        out = []
        try:
            with open(self.records_path, encoding="utf-8") as f:
                for line in f:
                    if line.endswith("\n"):
                        r = json.loads(line)
                        out.append(
                            ProxyRequest(
                                r["method"], r["host"], r["port"], r["path"], r["upstream"], r["client"], r["time"]
                            )
                        )
        except OSError:
            pass
        return out

    def access_log(self):
        """proxy.py's access log so far (``AccessRecord``): one per closed client connection."""
        out = []
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return out
        for line in lines:
            if "access_log" not in line:
                continue
            m = _TUNNEL_LINE.search(line)
            if m:
                out.append(
                    AccessRecord("CONNECT", m["target"], None, None, None, int(m["bytes"]), float(m["ms"]), m["client"])
                )
                continue
            m = _HTTP_LINE.search(line)
            if m:
                out.append(
                    AccessRecord(
                        m["method"],
                        m["target"],
                        m["path"],
                        int(m["status"]) if m["status"].isdigit() else None,
                        m["reason"],
                        int(m["bytes"]),
                        float(m["ms"]),
                        m["client"],
                    )
                )
        return out

    def wait_for_requests(self, count, timeout=5.0):
        """Wait until at least ``count`` requests are recorded; return ``requests()``."""
        return self._wait(self.requests, count, timeout)

    def wait_for_access_log(self, count, timeout=5.0):
        """Wait until at least ``count`` access-log records exist; return ``access_log()``."""
        return self._wait(self.access_log, count, timeout)

    def _wait(self, fetch, count, timeout):
        deadline = time.monotonic() + timeout
        while True:
            got = fetch()
            if len(got) >= count or time.monotonic() >= deadline:
                return got
            time.sleep(0.02)

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError as exc:
            return "(no log: %s)" % exc

    def stop(self, timeout=STOP_TIMEOUT):
        """Stop the proxy and every process it started (its process group)."""
        _stop(self.process, timeout)


def _stop(process, timeout=STOP_TIMEOUT):
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except OSError:
            process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # proxy.py's acceptor processes share the group: make sure none is left, and wait (a
    # little) until the group is gone (an acceptor may take a moment to be reaped).
    deadline = time.monotonic() + 2.0
    signalled = False
    while True:
        try:
            os.killpg(process.pid, 0 if signalled else signal.SIGKILL)
        except OSError:
            break
        signalled = True
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if process.poll() is None:
        process.kill()
        process.wait(timeout)


def _connectable(port):
    try:
        with contextlib.closing(socket.create_connection(("127.0.0.1", port), timeout=1)):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def start_proxy(tls_certs=None, timeout=60.0, python=None, extra_args=(), startup_timeout=STARTUP_TIMEOUT):
    """Run proxy.py on 127.0.0.1 (a free port); yield a ready ``Proxy``; stop it on exit.

    tls_certs: None for a plain proxy; a ``tls.Certs`` or ``(certfile, keyfile)`` to make the
    proxy's listener TLS (``--cert-file`` / ``--key-file``).
    timeout: proxy.py's ``--timeout`` (whole seconds): seconds of client inactivity before it drops a connection.
    python: the interpreter (default ``proxy_python()``); extra_args: more proxy.py flags.
    """
    python = python or proxy_python()
    work = tempfile.mkdtemp(prefix="qvq-proxy-")
    log_path = os.path.join(work, "proxy.log")
    records_path = os.path.join(work, "requests.jsonl")
    port_file = os.path.join(work, "port")
    with open(os.path.join(work, _PLUGIN_MODULE + ".py"), "w") as f:
        f.write(_PLUGIN_SOURCE)
    open(records_path, "w").close()
    cmd = [
        python,
        "-m",
        "proxy",
        "--hostname",
        "127.0.0.1",
        "--port",
        "0",
        "--port-file",
        port_file,
        "--num-acceptors",
        "1",
        "--num-workers",
        "1",
        "--timeout",
        str(int(max(1, round(timeout)))),
        "--log-level",
        "INFO",
        "--log-file",
        log_path,
        "--data-dir",
        os.path.join(work, "data"),
        "--plugins",
        _PLUGIN_MODULE + ".RequestLog",
    ]
    if tls_certs is not None:
        certfile, keyfile = _tls_files(tls_certs)
        cmd += ["--cert-file", os.fspath(certfile), "--key-file", os.fspath(keyfile)]
    cmd += list(extra_args)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [work, env.get("PYTHONPATH")]))
    env["QVQ_NETKIT_PROXY_RECORDS"] = records_path
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONHOME", None)
    with open(os.path.join(work, "stdout.log"), "w") as out:
        try:
            process = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=work,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise ProxyUnavailable("cannot run %s: %s" % (python, exc)) from exc
    try:
        deadline = time.monotonic() + startup_timeout
        port = None
        while True:
            if port is None:
                try:
                    with open(port_file) as f:
                        text = f.read().split()
                    port = int(text[0]) if text else None
                except (OSError, ValueError):
                    port = None
            if port is not None and _connectable(port):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(work, "stdout.log"), errors="replace") as f:
                    out_text = f.read()[-4000:]
                raise ProxyUnavailable(
                    "proxy.py (%s) %s; output:\n%s\nlog:\n%s"
                    % (
                        " ".join(cmd),
                        "exited with %s" % process.returncode if process.poll() is not None else "did not start",
                        out_text,
                        Proxy(0, False, work, log_path, records_path, process).log_tail(),
                    )
                )
            time.sleep(0.02)
        yield Proxy(port, tls_certs is not None, work, log_path, records_path, process)
    finally:
        _stop(process)
        shutil.rmtree(work, ignore_errors=True)
