"""qvq-sdk against gradio_client, the g4f reference provider and two raw-requests floors.

    python benchmarks/run.py                               # 9 rounds of both scenarios
    python benchmarks/run.py --scenario network --rounds 5  # the network scenario alone (~1 min)

Builds the clients' venvs under ``benchmarks/.venvs/`` on first use (qvq-sdk from this
checkout, the newest ``gradio_client``, ``g4f==0.5.3.1``, matplotlib for the chart, trustme
for the certificates), and measures two scenarios, every client as its own process
(``worker.py``), alternating them within each round, for several rounds:

- **loopback**: the ``gradio==5.9.1`` stand-in of the Space (``tests/realserver/``) on
  127.0.0.1 behind a byte-counting loopback proxy; five cases, six clients. The short case
  also makes LOOP_COLD_CLIENTS new clients per process, one chat each: the cold samples.
- **network**: the same stand-in serving HTTPS (throw-away certificates from
  ``tests/netkit/tls.py``) behind ``tests/netkit/shaper.py`` at 40 ms RTT; short answers,
  cold (new client) and warm chats, new connections counted, for qvq-sdk, the raw floor
  (plain ``requests`` reusing its connection) and gradio_client.

Prints the tables of medians and every target with its figures and PASS or MISS, writes
``benchmarks/results/results.json`` and ``table.md`` (``results-network.json`` for the network
scenario alone), draws ``docs/benchmarks.png``, and exits 1 if a target was missed.

Needs only the standard library; run it with any Python >= 3.10.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VENVS = os.path.join(HERE, ".venvs")
RESULTS = os.path.join(HERE, "results")
CHART = os.path.join(REPO, "docs", "benchmarks.png")
GRADIO = "5.9.1"

#: venv name -> pip requirements.
VENV_SPECS = {
    # qvq-sdk's dependencies; the raw floor uses its requests. qvq-sdk itself is installed
    # from this checkout on every run (install_sdk), as a user would have it: not editable.
    "sdk": ["requests", "sseclient-py"],
    "gradio_client": ["--upgrade", "gradio_client"],
    "g4f": ["g4f==0.5.3.1"],  # its last release with Qwen_QVQ_72B
    "chart": ["matplotlib"],
    "tls": ["trustme"],  # the network scenario's throw-away certificates (tests/netkit/tls.py)
}
#: client -> (venv, label)
CLIENTS = {
    "raw": ("sdk", "raw floor"),
    "raw-timeout": ("sdk", "raw floor + timeout"),
    "sdk-queue": ("sdk", "qvq-sdk queue"),
    "sdk-call": ("sdk", "qvq-sdk call"),
    "gradio_client": ("gradio_client", "gradio_client"),
    "g4f": ("g4f", "g4f 0.5.3.1"),
}
CASES = ["short", "long", "fine", "upload", "concurrent"]
CASE_TITLES = {
    "short": "short answer (10 words)",
    "long": "long answer (20,000 words in 400 updates)",
    "fine": "fine-grained stream (5,000 one-word updates)",
    "upload": "20 MB image upload",
    "concurrent": "16 concurrent chats, one client",
}
#: import-time rows: (label, venv, module)
IMPORTS = [
    ("requests", "sdk", "requests"),
    ("qvq_sdk", "sdk", "qvq_sdk"),
    ("gradio_client", "gradio_client", "gradio_client"),
    ("g4f provider", "g4f", "g4f.Provider.hf_space.Qwen_QVQ_72B"),
]
BASELINE = "sdk-queue"
#: the floor the issue's targets are defined against, and the same floor with qvq-sdk's
#: default timeout=(10, 60) (shown beside it, for information)
FLOOR = "raw"
TIMEOUT_FLOOR = "raw-timeout"
CONCURRENCY = 16
#: the network scenario: its clients, round-trip time and sequential chats per client process
NET_CLIENTS = ["raw", "sdk-queue", "gradio_client"]
NET_RTT = 0.040
NET_CHATS = 8
#: further new clients per network process, one chat each: with the first, its cold samples
NET_COLD_CLIENTS = 2
#: loopback, short case: new clients per process after its warm chats, one chat each (the cold
#: samples; each opens a new connection and reads /config itself)
LOOP_COLD_CLIENTS = 8
IMAGE_SIDE = 2600  # 2600 x 2600 RGB, stored uncompressed in a PNG: 20.3 MB


def load_servers():
    """The real-server harness of the tests, imported by path."""
    path = os.path.join(REPO, "tests", "realserver", "servers.py")
    spec = importlib.util.spec_from_file_location("qvq_realserver_servers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_shaper():
    """tests/netkit/shaper.py's ``Shaper`` (standard library only), imported by path."""
    path = os.path.join(REPO, "tests", "netkit", "shaper.py")
    spec = importlib.util.spec_from_file_location("qvq_netkit_shaper", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Shaper


def make_certs(directory):
    """A throw-away CA and server certificate for 127.0.0.1 (tests/netkit/tls.py, trustme, run
    in the tls venv); returns ``(certfile, keyfile, cafile)``."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from netkit.tls import make_certs; "
        "c = make_certs(sys.argv[2]); print(c.cert_pem); print(c.key_pem); print(c.ca_pem)"
    )
    done = subprocess.run(
        [python_of("tls"), "-c", code, os.path.join(REPO, "tests"), directory], capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit("making the TLS certificates failed: %s" % done.stderr[-500:])
    return tuple(done.stdout.split())


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


# -- a byte-counting loopback proxy ----------------------------------------------------------


class CountingProxy:
    """Forwards 127.0.0.1:port to the server and counts the bytes the server sends.

    ``counter_port`` answers each connection with the running count, one line of ASCII.
    """

    def __init__(self, target_port):
        self.target_port = target_port
        self.received = 0
        self._lock = threading.Lock()
        self._listener = self._listen()
        self._counter = self._listen()
        self.port = self._listener.getsockname()[1]
        self.counter_port = self._counter.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._answer_counts, daemon=True).start()

    @staticmethod
    def _listen():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        return sock

    def _answer_counts(self):
        while True:
            conn, _ = self._counter.accept()
            with conn:
                with self._lock:
                    count = self.received
                conn.sendall(b"%d\n" % count)

    def _accept(self):
        while True:
            client, _ = self._listener.accept()
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source, sink, count):
        buffer = bytearray(256 * 1024)
        view = memoryview(buffer)
        try:
            while True:
                n = source.recv_into(buffer)
                if not n:
                    break
                if count:
                    with self._lock:
                        self.received += n
                sink.sendall(view[:n])
        except OSError:
            pass
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass
        if count:  # the server-to-client pump closes both sockets last
            source.close()
            sink.close()


class ShaperStats:
    """Answers each connection to ``port`` with ``"<connections> <bytes>\\n"``: the connections
    the shaper has accepted so far and the bytes it has delivered to its clients."""

    def __init__(self, shaper):
        self.shaper = shaper
        self._listener = CountingProxy._listen()
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._answer, daemon=True).start()

    def _answer(self):
        while True:
            conn, _ = self._listener.accept()
            with conn:
                received = sum(c.bytes_down for c in self.shaper.connection_info())
                conn.sendall(b"%d %d\n" % (self.shaper.connections, received))


# -- inputs ---------------------------------------------------------------------------------


def make_png(path, side=IMAGE_SIDE):
    """A real PNG of ``side`` x ``side`` RGB pixels (a gradient), deflate-stored: ~3 * side² bytes."""
    if os.path.exists(path):
        return
    row_bytes = bytes((x * 255 // side) for x in range(side)) * 3
    raw = b"".join(b"\x00" + row_bytes[y % 7 :] + row_bytes[: y % 7] for y in range(side))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b"")
    with open(path + ".tmp", "wb") as f:
        f.write(png)
    os.replace(path + ".tmp", path)


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


# -- running ---------------------------------------------------------------------------------


def run_worker(client, case, proxy, image, env):
    venv = CLIENTS[client][0]
    cmd = [
        python_of(venv),
        os.path.join(HERE, "worker.py"),
        client,
        case,
        "--base-url",
        "http://127.0.0.1:%d" % proxy.port,
        "--counter-port",
        str(proxy.counter_port),
        "--image",
        image,
        "--concurrency",
        str(CONCURRENCY),
    ]
    if case == "short":
        cmd += ["--cold-clients", str(LOOP_COLD_CLIENTS)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired:
        return {"client": client, "case": case, "failed": "timed out after 600 s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return {"client": client, "case": case, "failed": "exit %s: %s" % (done.returncode, tail[-300:])}
    return json.loads(lines[-1])


def import_time(venv, module, env):
    """Microseconds ``import module`` takes, from ``python -X importtime``.

    The sum of the cumulative times of the top-level imports that ``-c pass`` does not make
    (the interpreter's own start-up imports are not the module's).
    """

    def top_level(code):
        done = subprocess.run(
            [python_of(venv), "-X", "importtime", "-c", code], capture_output=True, text=True, env=env
        )
        if done.returncode:
            raise SystemExit("%r failed in the %s venv: %s" % (code, venv, done.stderr[-500:]))
        found = {}
        for line in done.stderr.splitlines():
            match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)$", line)
            if match:  # exactly one space after the bar: imported at top level
                found[match.group(2)] = int(match.group(1))
        return found

    startup = set(top_level("pass"))
    return sum(us for name, us in top_level("import " + module).items() if name not in startup)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def warm_figure(run, key):
    """A process's warm figure: the median over its warm chats (all but the first)."""
    return median(chat[key] for chat in run["chats"][1:])


def loop_cold(run):
    """A loopback process's cold samples: the chats of its new clients (short case), else its
    first chat."""
    return run.get("cold") or run["chats"][:1]


def loop_problem(run):
    """Why a loopback process failed (its own error, or the first error of its chats), else None."""
    chats = run.get("chats", []) + run.get("cold", [])
    return run.get("failed") or next((c["error"] for c in chats if "error" in c), None)


def summarize(runs, imports):
    """Medians over rounds of each process's warm figures (its chats after the first), and
    medians over all the cold samples of all rounds, per (client, case)."""
    summary = {}
    for client in CLIENTS:
        for case in CASES:
            mine = [r for r in runs if r["client"] == client and r["case"] == case]
            good = [r for r in mine if not loop_problem(r)]
            errors = [loop_problem(r) for r in mine if r not in good]
            entry = {"rounds": len(mine), "ok": len(good), "errors": sorted(set(errors))}
            if good:
                entry.update(
                    {key: median(warm_figure(r, key) for r in good) for key in ("wall", "cpu", "first", "bytes")}
                )
                entry.update(
                    {
                        # every new client's chat of every round (short), else each first chat
                        "cold_first": median(c["first"] for r in good for c in loop_cold(r)),
                        "cold_wall": median(c["wall"] for r in good for c in loop_cold(r)),
                        "cold_cpu": median(c["cpu"] for r in good for c in loop_cold(r)),
                        "cold_bytes": median(c["bytes"] for r in good for c in loop_cold(r)),
                        "cold_samples": sum(len(loop_cold(r)) for r in good),
                        # each process's first chat (its client made before the clock)
                        "first_chat_first": median(r["chats"][0]["first"] for r in good),
                        "peak_rss": median(r["peak_rss"] for r in good),
                        "idle_rss": median(r.get("idle_rss") for r in good),
                        "setup": median(r["setup"] for r in good),
                    }
                )
            summary["%s/%s" % (client, case)] = entry
    summary["imports"] = {label: median(values) for label, values in imports.items()}
    return summary


# -- reporting -------------------------------------------------------------------------------

ROWS = [
    # (case, metric, title, format)
    ("long", "bytes", "wire bytes received", "bytes"),
    ("long", "cpu", "client CPU", "ms"),
    ("long", "wall", "wall time", "ms"),
    ("long", "first", "submit → first text", "ms"),
    ("long", "peak_rss", "peak RSS", "mb"),
    ("fine", "bytes", "wire bytes received", "bytes"),
    ("fine", "cpu", "client CPU", "ms"),
    ("fine", "wall", "wall time", "ms"),
    ("fine", "first", "submit → first text", "ms"),
    ("short", "bytes", "wire bytes received", "bytes"),
    ("short", "cpu", "client CPU", "ms"),
    ("short", "wall", "wall time", "ms"),
    ("short", "first", "submit → first text", "ms"),
    ("short", "cold_first", "cold client: new client → first text", "ms"),
    ("short", "cold_cpu", "cold client: client CPU", "ms"),
    ("short", "cold_bytes", "cold client: wire bytes received", "bytes"),
    ("upload", "wall", "wall time (upload + answer)", "ms"),
    ("upload", "cpu", "client CPU", "ms"),
    ("upload", "idle_rss", "peak RSS before the upload", "mb"),
    ("upload", "peak_rss", "peak RSS after the upload", "mb"),
    ("concurrent", "wall", "wall time, all 16", "ms"),
    ("concurrent", "cpu", "client CPU, all 16", "ms"),
    ("concurrent", "bytes", "wire bytes received, all 16", "bytes"),
]

#: rows of the second table: qvq-sdk against both floors
FLOOR_ROWS = [row for row in ROWS if row[1] in ("cpu", "wall")]


def fmt(value, kind):
    if value is None:
        return "—"
    if kind == "bytes":
        return (
            "%.1f MB" % (value / 1e6) if value >= 1e6 else "%.0f KB" % (value / 1e3) if value >= 1e4 else "%d B" % value
        )
    if kind == "mb":
        return "%.1f MB" % (value / 2**20)
    if kind == "ms":
        return "%.1f ms" % (value * 1e3) if value < 0.1 else "%.0f ms" % (value * 1e3)
    return str(value)


def ratio(value, base):
    if value is None or not base:
        return ""
    return " (%.2f×)" % (value / base)


def table(summary):
    header = ["case", "measure"] + [CLIENTS[c][1] for c in CLIENTS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for case, metric, title, kind in ROWS:
        base = summary["%s/%s" % (BASELINE, case)].get(metric)
        cells = []
        for client in CLIENTS:
            entry = summary["%s/%s" % (client, case)]
            if not entry.get("ok"):
                cells.append("failed")
                continue
            value = entry.get(metric)
            cell = fmt(value, kind)
            if client != BASELINE:
                cell += ratio(value, base)
            if entry["ok"] < entry["rounds"]:
                cell += " †"
            cells.append(cell)
        lines.append("| %s | %s | %s |" % (case, title, " | ".join(cells)))
    lines.append("")
    lines.append("| case | measure | qvq-sdk queue ÷ raw floor | qvq-sdk queue ÷ raw floor + timeout |")
    lines.append("|---|---|---|---|")
    for case, metric, title, _ in FLOOR_ROWS:
        sdk = summary["%s/%s" % (BASELINE, case)].get(metric)
        cells = []
        for floor in (FLOOR, TIMEOUT_FLOOR):
            base = summary["%s/%s" % (floor, case)].get(metric)
            cells.append("%.2f×" % (sdk / base) if sdk is not None and base else "—")
        lines.append("| %s | %s | %s |" % (case, title, " | ".join(cells)))
    imports = summary["imports"]
    base = imports["qvq_sdk"]
    lines.append("")
    lines.append("| import (`python -X importtime`, cumulative) | time | vs `import qvq_sdk` |")
    lines.append("|---|---|---|")
    for label, value in imports.items():
        lines.append("| `import %s` | %.1f ms | %.2f× |" % (label, value / 1e3, value / base))
    return "\n".join(lines)


def failures(summary):
    notes = []
    for key, entry in summary.items():
        if key != "imports" and entry.get("errors"):
            client, case = key.split("/")
            notes.append(
                "%s, %s: %d of %d rounds failed: %s"
                % (CLIENTS[client][1], case, entry["rounds"] - entry["ok"], entry["rounds"], "; ".join(entry["errors"]))
            )
    return notes


def targets(summary, image_bytes, partial=False):
    """The loopback targets as ``(name, met, figures)``; a target without data is missed
    (``met`` None). ``partial`` (a run of some clients or cases): a target whose case or
    clients the run did not measure is left out instead."""

    def get(client, case, metric):
        return summary["%s/%s" % (client, case)].get(metric)

    checks = []

    def check(name, value, limit, passed_when_le=True, unit="", extra=None, case=None, peers=(), figures=None):
        if partial and any(not summary["%s/%s" % (c, case)]["rounds"] for c in (BASELINE, FLOOR, *peers)):
            return  # not measured in this run
        if value is None or limit is None:
            checks.append((name, None, "no data"))
            return
        ok = value <= limit if passed_when_le else value >= limit
        why = "%s vs limit %s%s" % (value, limit, unit)
        if extra is not None:
            why += " (against the raw floor + timeout: %s%s)" % (extra, unit)
        if figures:
            why += "; " + figures
        checks.append((name, ok, why))

    def against(case, metric, floor):
        """qvq-sdk's figure over ``floor``'s, rounded to 2 places."""
        sdk, base = get(BASELINE, case, metric), get(floor, case, metric)
        return sdk and base and round(sdk / base, 2)

    sdk_bytes, raw_bytes = get(BASELINE, "long", "bytes"), get(FLOOR, "long", "bytes")
    check(
        "long answer: wire bytes ≤ 1.05 × raw floor",
        sdk_bytes and raw_bytes and round(sdk_bytes / raw_bytes, 3),
        1.05,
        unit="×",
        case="long",
    )
    for case in ("long", "fine"):
        sdk, gc = get(BASELINE, case, "cpu"), get("gradio_client", case, "cpu")
        check(
            "%s: client CPU ≤ 1.25 × raw floor" % case,
            against(case, "cpu", FLOOR),
            1.25,
            unit="×",
            extra=against(case, "cpu", TIMEOUT_FLOOR),
            case=case,
        )
        check(
            "%s: client CPU ≤ gradio_client / 3" % case,
            sdk and gc and round(sdk / gc, 2),
            round(1 / 3, 2),
            unit="×",
            case=case,
            peers=("gradio_client",),
        )
    for case in ("short", "long", "fine"):
        sdk, raw, raw_t = get(BASELINE, case, "first"), get(FLOOR, case, "first"), get(TIMEOUT_FLOOR, case, "first")
        check(
            "%s: first text ≤ raw floor + 5 ms" % case,
            None if sdk is None or raw is None else round((sdk - raw) * 1e3, 1),
            5.0,
            unit=" ms",
            extra=None if sdk is None or raw_t is None else round((sdk - raw_t) * 1e3, 1),
            case=case,
        )
    # A new client against the raw floor's new client: both open a new connection and read
    # /config, so the difference is the SDK's own cost of a cold start (building the client,
    # parsing the config), medians over every new client of every round.
    cold, raw_cold, raw_t_cold = (get(c, "short", "cold_first") for c in (BASELINE, FLOOR, TIMEOUT_FLOOR))
    check(
        "cold client: first text ≤ the raw floor's new client + 5 ms",
        None if cold is None or raw_cold is None else round((cold - raw_cold) * 1e3, 1),
        5.0,
        unit=" ms",
        extra=None if cold is None or raw_t_cold is None else round((cold - raw_t_cold) * 1e3, 1),
        case="short",
        figures=None
        if cold is None or raw_cold is None
        else "%s vs %s, %d and %d new clients"
        % (
            fmt(cold, "ms"),
            fmt(raw_cold, "ms"),
            get(BASELINE, "short", "cold_samples"),
            get(FLOOR, "short", "cold_samples"),
        ),
    )
    idle, peak = get(BASELINE, "upload", "idle_rss"), get(BASELINE, "upload", "peak_rss")
    check(
        "20 MB upload: peak RSS ≤ idle + 2.5 × image",
        idle and peak and round((peak - idle) / image_bytes, 2),
        2.5,
        unit="× the image over idle",
        case="upload",
    )
    check(
        "16 concurrent chats: wall ≤ 1.10 × raw floor",
        against("concurrent", "wall", FLOOR),
        1.10,
        unit="×",
        extra=against("concurrent", "wall", TIMEOUT_FLOOR),
        case="concurrent",
    )
    return checks


def import_target(imports):
    """The import target: ``import qvq_sdk`` ≤ 1.3 × ``import requests`` (medians)."""
    sdk, base = imports.get("qvq_sdk"), imports.get("requests")
    if not sdk or not base:
        return [("import qvq_sdk ≤ 1.3 × import requests", None, "no data")]
    value = round(sdk / base, 2)
    return [("import qvq_sdk ≤ 1.3 × import requests", value <= 1.3, "%s vs limit 1.3×" % value)]


# -- the network scenario ----------------------------------------------------------------------
#
# TLS through tests/netkit/shaper.py at NET_RTT: every byte is delayed rtt/2 each way and a new
# connection's first byte one rtt more (its TCP handshake; the TLS handshake then costs its own
# round trip). Each client process makes NET_CHATS sequential short chats through one new
# client: the first is cold (its clock starts before the client is made), the rest warm.


def run_net_worker(client, net, env):
    cmd = [
        python_of(CLIENTS[client][0]),
        os.path.join(HERE, "worker.py"),
        client,
        "network",
        "--base-url",
        net["base_url"],
        "--stats-port",
        str(net["stats_port"]),
        "--chats",
        str(NET_CHATS),
        "--cold-clients",
        str(NET_COLD_CLIENTS),
        "--api-prefix",
        net["api_prefix"],
        "--fn-index",
        str(net["fn_index"]),
    ]
    net_env = dict(env, REQUESTS_CA_BUNDLE=net["cafile"], SSL_CERT_FILE=net["cafile"])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=net_env, timeout=300)
    except subprocess.TimeoutExpired:
        return {"client": client, "case": "network", "failed": "timed out after 300 s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return {"client": client, "case": "network", "failed": "exit %s: %s" % (done.returncode, tail[-300:])}
    return json.loads(lines[-1])


def net_problem(run):
    chats = run.get("chats", []) + run.get("cold", [])
    return run.get("failed") or next((c["error"] for c in chats if "error" in c), None)


def cold_chats(run):
    """A network process's cold samples: the first chat of each new client it made."""
    return [run["chats"][0], *run.get("cold", [])]


def summarize_network(runs):
    """Per network client: medians over rounds of the warm figures (a process's median over
    its chats after the first) and of the cold chat; connections per process (all its chats)."""
    summary = {}
    for client in NET_CLIENTS:
        mine = [r for r in runs if r["client"] == client]
        good = [r for r in mine if not net_problem(r)]
        entry = {
            "rounds": len(mine),
            "ok": len(good),
            "errors": sorted({net_problem(r) for r in mine if r not in good}),
        }
        if good:
            entry.update({key: median(warm_figure(r, key) for r in good) for key in ("first", "wall", "cpu", "bytes")})
            connections = [sum(c["connections"] for c in r["chats"]) for r in good]
            entry.update(
                {
                    # medians over all the cold samples of all rounds
                    "cold_first": median(c["first"] for r in good for c in cold_chats(r)),
                    "cold_cpu": median(c["cpu"] for r in good for c in cold_chats(r)),
                    "cold_bytes": median(c["bytes"] for r in good for c in cold_chats(r)),
                    "cold_samples": sum(len(cold_chats(r)) for r in good),
                    # the first new client of each process alone
                    "cold_first_in_process": median(r["chats"][0]["first"] for r in good),
                    "connections": median(connections),
                    "connections_min": min(connections),
                    "connections_max": max(connections),
                    "warm_connections": median(sum(c["connections"] for c in r["chats"][1:]) for r in good),
                }
            )
        summary[client] = entry
    return summary


NET_ROWS = [
    # (metric, title, format)
    ("first", "warm: call → first text", "ms"),
    ("cold_first", "cold (new client): call → first text", "ms"),
    ("connections", "new connections, %d sequential chats" % NET_CHATS, "count"),
    ("wall", "warm: wall time", "ms"),
    ("cpu", "warm: client CPU", "ms"),
    ("cold_cpu", "cold: client CPU", "ms"),
    ("bytes", "warm: bytes received (TLS)", "bytes"),
    ("cold_bytes", "cold: bytes received (TLS)", "bytes"),
]


def network_table(net_summary):
    header = ["measure"] + [CLIENTS[c][1] for c in NET_CLIENTS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric, title, kind in NET_ROWS:
        cells = []
        for client in NET_CLIENTS:
            entry = net_summary[client]
            if not entry.get("ok"):
                cells.append("failed")
                continue
            value = entry.get(metric)
            if kind == "count":
                low, high = entry["connections_min"], entry["connections_max"]
                cell = "%g" % value + ("" if low == high else " (%d–%d)" % (low, high))
            else:
                cell = fmt(value, kind)
                floor = net_summary[FLOOR].get(metric)
                if client != FLOOR and "first" in metric and floor is not None:
                    cell += " (%+.1f ms)" % ((value - floor) * 1e3)
            if entry["ok"] < entry["rounds"]:
                cell += " †"
            cells.append(cell)
        lines.append("| %s | %s |" % (title, " | ".join(cells)))
    return "\n".join(lines)


def network_targets(net_summary, rtt):
    sdk, raw = net_summary[BASELINE], net_summary[FLOOR]
    checks = []

    def diff_ms(key):
        if sdk.get(key) is None or raw.get(key) is None:
            return None
        return round((sdk[key] - raw[key]) * 1e3, 1)

    warm = diff_ms("first")
    name = "network, warm: first text ≤ raw floor + 10 ms"
    if warm is None:
        checks.append((name, None, "no data"))
    else:
        checks.append(
            (
                name,
                warm <= 10.0,
                "%+.1f ms vs limit +10 ms (%s vs %s)" % (warm, fmt(sdk["first"], "ms"), fmt(raw["first"], "ms")),
            )
        )
    name = "network: new connections for %d sequential chats = 1" % NET_CHATS
    if sdk.get("connections_max") is None:
        checks.append((name, None, "no data"))
    else:
        others = ", ".join(
            "%s %s" % (CLIENTS[c][1], "%g" % net_summary[c]["connections"] if net_summary[c].get("ok") else "—")
            for c in (FLOOR, "gradio_client")
        )
        checks.append(
            (
                name,
                sdk["connections_max"] <= 1,
                "%d in every round vs limit 1 (%s)" % (sdk["connections_max"], others)
                if sdk["connections_min"] == sdk["connections_max"]
                else "%d–%d over the rounds vs limit 1 (%s)" % (sdk["connections_min"], sdk["connections_max"], others),
            )
        )
    cold = diff_ms("cold_first")
    limit = round(rtt * 1e3 + 25, 1)
    name = "network, cold: first text ≤ raw floor + one RTT (/config) + 25 ms"
    if cold is None:
        checks.append((name, None, "no data"))
    else:
        checks.append(
            (
                name,
                cold <= limit,
                "%+.1f ms vs limit +%g ms (%s vs %s)"
                % (cold, limit, fmt(sdk["cold_first"], "ms"), fmt(raw["cold_first"], "ms")),
            )
        )
    return checks


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        with open("/proc/meminfo") as f:
            memory = "%.0f GiB" % (int(f.readline().split()[1]) / 2**20)
    except (OSError, ValueError, IndexError):
        memory = "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": "%s %s" % (platform.system(), platform.release()),
        "python": platform.python_version(),
    }


def print_loopback(client, case, round_number, result):
    problem = loop_problem(result)
    warm = {k: warm_figure(result, k) for k in ("cpu", "wall", "bytes", "first")} if not problem else {}
    cold = [c["first"] for c in result.get("cold", [])] if not problem else []
    print(
        "round %d  %-10s %-13s %s"
        % (
            round_number + 1,
            case,
            client,
            "FAILED: " + problem
            if problem
            else "cpu %6.0f ms  wall %6.0f ms  bytes %9d  first %s"
            % (
                warm["cpu"] * 1e3,
                warm["wall"] * 1e3,
                warm["bytes"],
                "%.1f ms" % (warm["first"] * 1e3) if warm.get("first") is not None else "—",
            )
            + ("  cold (%d new clients) %.1f ms" % (len(cold), median(cold) * 1e3) if cold else ""),
        ),
        flush=True,
    )


def print_network(client, round_number, result):
    problem = net_problem(result)
    if problem:
        print("round %d  %-10s %-13s FAILED: %s" % (round_number + 1, "network", client, problem), flush=True)
        return
    chats = result["chats"]
    print(
        "round %d  %-10s %-13s first: cold %s ms, warm %5.1f ms  connections %d  warm cpu %4.1f ms"
        % (
            round_number + 1,
            "network",
            client,
            "/".join("%.0f" % (c["first"] * 1e3) for c in cold_chats(result)),
            warm_figure(result, "first") * 1e3,
            sum(c["connections"] for c in chats),
            warm_figure(result, "cpu") * 1e3,
        ),
        flush=True,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="one round")
    parser.add_argument(
        "--scenario",
        choices=["all", "loopback", "network"],
        default="all",
        help="loopback: the cases on 127.0.0.1; network: TLS at --rtt through the shaper (default: both)",
    )
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset (loopback)")
    parser.add_argument("--rtt", type=float, default=NET_RTT * 1e3, help="network: round-trip time in ms (40)")
    parser.add_argument(
        "--sdk-rev", help="measure qvq-sdk as committed at this git revision (default: the working tree)"
    )
    parser.add_argument("--no-chart", action="store_true")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    clients = [c for c in args.clients.split(",") if c]
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(clients) - set(CLIENTS) | set(cases) - set(CASES)
    if unknown:
        parser.error("unknown client or case: %s" % ", ".join(sorted(unknown)))
    loopback = args.scenario in ("all", "loopback")
    network = args.scenario in ("all", "network")
    net_clients = [c for c in NET_CLIENTS if c in clients] if network else []
    loop_cases = cases if loopback else []
    rtt = args.rtt / 1e3

    servers = load_servers()
    base_python = servers.find_gradio_python()
    os.makedirs(VENVS, exist_ok=True)
    os.makedirs(RESULTS, exist_ok=True)
    for name in VENV_SPECS:
        ensure_venv(name, base_python)
    install_sdk(args.sdk_rev)
    servers.ensure_venv(GRADIO)
    image = os.path.join(RESULTS, "image-%dx%d.png" % (IMAGE_SIDE, IMAGE_SIDE))
    make_png(image)
    image_bytes = os.path.getsize(image)
    env = client_env()
    versions = {
        "gradio (server)": GRADIO,
        "qvq-sdk": "%s (%s)" % (installed_version("sdk", "qvq-sdk"), checkout_state(args.sdk_rev)),
        "requests": installed_version("sdk", "requests"),
        "sseclient-py": installed_version("sdk", "sseclient-py"),
        "gradio_client": installed_version("gradio_client", "gradio_client"),
        "httpx (gradio_client)": installed_version("gradio_client", "httpx"),
        "g4f": installed_version("g4f", "g4f"),
        "aiohttp (g4f)": installed_version("g4f", "aiohttp"),
    }
    print("versions: " + ", ".join("%s %s" % kv for kv in versions.items()), flush=True)

    # a network-only run measures just the imports its target needs
    import_rows = IMPORTS if loopback else [row for row in IMPORTS if row[0] in ("requests", "qvq_sdk")]
    runs, net_runs, imports = [], [], {label: [] for label, _, _ in import_rows}
    for _, venv, module in import_rows:
        import_time(venv, module, env)  # compile the .pyc files first
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if loop_cases:
            server = stack.enter_context(servers.start_server(GRADIO, mode="stream", concurrency=CONCURRENCY))
            proxy = CountingProxy(server.port)
            for client in clients:  # warm the server and the disk cache; not measured
                run_worker(client, "short", proxy, image, env)
        if net_clients:
            tls = make_certs(os.path.join(RESULTS, "certs"))
            tls_server = stack.enter_context(servers.start_server(GRADIO, mode="stream", tls=tls))
            shaper = stack.enter_context(load_shaper()("127.0.0.1", tls_server.port, rtt=rtt))
            config = tls_server.config
            net = {
                "base_url": shaper.url_for("https"),
                "stats_port": ShaperStats(shaper).port,
                "cafile": tls[2],
                "api_prefix": config.get("api_prefix", ""),
                "fn_index": next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "generate"),
            }
            for client in net_clients:  # warm the server; not measured
                run_net_worker(client, net, env)
        for round_number in range(rounds):
            for case in loop_cases:
                shift = round_number % len(clients)
                for client in clients[shift:] + clients[:shift]:
                    result = run_worker(client, case, proxy, image, env)
                    result["round"] = round_number
                    runs.append(result)
                    print_loopback(client, case, round_number, result)
            if net_clients:
                shift = round_number % len(net_clients)
                for client in net_clients[shift:] + net_clients[:shift]:
                    result = run_net_worker(client, net, env)
                    result["round"] = round_number
                    net_runs.append(result)
                    print_network(client, round_number, result)
            for label, venv, module in import_rows:
                for _ in range(3):
                    imports[label].append(import_time(venv, module, env))
    print("measured in %.0f s" % (time.monotonic() - started), flush=True)

    loop_full = loopback and clients == list(CLIENTS) and cases == CASES
    net_full = network and net_clients == NET_CLIENTS
    summary = summarize(runs, imports)
    net_summary = summarize_network(net_runs) if net_clients else None
    command = "python benchmarks/run.py" + (" --quick" if args.quick else " --rounds %d" % rounds)
    if args.scenario != "all":
        command += " --scenario " + args.scenario
    if network and args.rtt != NET_RTT * 1e3:
        command += " --rtt %g" % args.rtt
    result = {
        "command": command,
        "rounds": rounds,
        "machine": machine(),
        "versions": versions,
        "image_bytes": image_bytes,
        "summary": summary,
        "runs": runs,
        "imports": imports,
    }
    if net_clients:
        result["network"] = {"rtt": rtt, "chats": NET_CHATS, "summary": net_summary, "runs": net_runs}
    checks = []
    if loopback:
        # a partial loopback run checks the targets of what it measured
        checks += targets(summary, image_bytes, partial=not loop_full)
    if net_full:
        checks += network_targets(net_summary, rtt)
    if checks or loop_full or net_full:
        checks += import_target(summary["imports"])
    result["targets"] = [{"target": n, "met": ok, "figures": why} for n, ok, why in checks]
    if loop_full and (net_full or not network):
        name = "results.json"
    elif net_full and not loopback:
        name = "results-network.json"
    else:
        name = "results-partial.json"  # a partial run keeps the full one
    with open(os.path.join(RESULTS, name), "w") as f:
        json.dump(result, f, indent=1)

    lines = []
    if loop_full:
        lines += [table(summary), ""]
        lines += ["† some rounds failed: " + note for note in failures(summary)]
    elif loopback:
        measured_only = {k: v for k, v in summary.items() if k == "imports" or v.get("rounds")}
        lines += [json.dumps(measured_only, indent=1), ""]
    if net_clients:
        lines += [
            "Network: TLS at %g ms RTT through the shaper, short answers, %d sequential chats per new client, "
            "medians of %d rounds:" % (rtt * 1e3, NET_CHATS, rounds),
            "",
            network_table(net_summary),
            "",
        ]
        lines += [
            "† some rounds failed: %s: %s" % (CLIENTS[c][1], "; ".join(net_summary[c]["errors"]))
            for c in NET_CLIENTS
            if net_summary[c].get("errors")
        ]
    if not loopback:
        lines += [
            "",
            "import (`python -X importtime`, cumulative): "
            + ", ".join("%s %.1f ms" % (label, value / 1e3) for label, value in summary["imports"].items()),
        ]
    if checks:
        lines += ["", "Targets (qvq-sdk queue, medians of %d rounds):" % rounds]
        lines += ["- %s %s: %s" % ({True: "PASS", False: "MISS", None: "MISS"}[ok], n, why) for n, ok, why in checks]
        if loopback and not loop_full:
            lines += ["- (the other loopback targets: not measured in this run)"]
        elif not loopback:
            lines += ["- (the loopback targets: not measured in this run; see --scenario loopback)"]
    text = "\n".join(lines)
    if name == "results.json":
        with open(os.path.join(RESULTS, "table.md"), "w") as f:
            f.write(text + "\n")
    print()
    print(text)
    if name == "results.json" and not args.no_chart:
        subprocess.check_call(
            [python_of("chart"), os.path.join(HERE, "chart.py"), os.path.join(RESULTS, "results.json"), CHART]
        )
        print("chart: %s" % os.path.relpath(CHART, REPO))
    missed = [n for n, ok, _ in checks if ok is not True]
    if missed:
        print("\n%d target(s) missed: %s" % (len(missed), "; ".join(missed)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
