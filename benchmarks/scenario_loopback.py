"""The loopback scenario: five cases, six clients, on the Gradio stand-in over plain HTTP.

The ``gradio==5.9.1`` stand-in of the Space (``tests/realserver/``) runs on 127.0.0.1 behind a
byte-counting proxy. Each round runs every case for every client, each in a process of its own,
the clients' order rotating from round to round. The short case also makes LOOP_COLD_CLIENTS
new clients per process, one chat each: the cold samples.
"""

from __future__ import annotations

import json
import os
import struct
import zlib

from clients import CASES, CLIENTS, CONCURRENCY, GRADIO, IMAGE_SIDE, LOOP_COLD_CLIENTS
from processes import run_worker
from report import loopback_failures, loopback_table, print_loopback
from servers import CountingProxy
from stats import summarize_loopback
from targets import loopback_targets
from venvs import RESULTS, installed_version


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


class Loopback:
    name = "loopback"
    #: the venvs its clients and its chart run in, and the import-time rows it shows
    venvs = ("sdk", "gradio_client", "g4f", "chart")
    imports = ("requests", "qvq_sdk", "gradio_client", "g4f provider")
    shows_imports = True  # its table has the import rows
    subject = "qvq-sdk queue"

    def __init__(self, clients, cases):
        self.clients = [c for c in clients if c in CLIENTS]
        self.cases = cases
        self.full = self.clients == list(CLIENTS) and cases == CASES
        self.image = os.path.join(RESULTS, "image-%dx%d.png" % (IMAGE_SIDE, IMAGE_SIDE))
        self.runs = []

    def versions(self):
        return {
            "gradio (server)": GRADIO,
            "gradio_client": installed_version("gradio_client", "gradio_client"),
            "httpx (gradio_client)": installed_version("gradio_client", "httpx"),
            "g4f": installed_version("g4f", "g4f"),
            "aiohttp (g4f)": installed_version("g4f", "aiohttp"),
        }

    def prepare(self, harness):
        harness.ensure_venv(GRADIO)
        make_png(self.image)

    def start(self, stack, harness, env):
        if not self.clients or not self.cases:
            return
        server = stack.enter_context(harness.start_server(GRADIO, mode="stream", concurrency=CONCURRENCY))
        self.proxy = CountingProxy(server.port)
        self.env = env
        for client in self.clients:  # warm the server and the disk cache; not measured
            self._run(client, "short")

    def _run(self, client, case):
        options = [
            "--base-url",
            "http://127.0.0.1:%d" % self.proxy.port,
            "--counter-port",
            str(self.proxy.counter_port),
            "--image",
            self.image,
            "--concurrency",
            str(CONCURRENCY),
        ]
        if case == "short":
            options += ["--cold-clients", str(LOOP_COLD_CLIENTS)]
        return run_worker(client, case, options, self.env, timeout=600)

    def run_round(self, round_number):
        if not self.clients:
            return
        for case in self.cases:
            shift = round_number % len(self.clients)
            for client in self.clients[shift:] + self.clients[:shift]:
                result = self._run(client, case)
                result["round"] = round_number
                self.runs.append(result)
                print_loopback(client, case, round_number, result)

    def summarize(self):
        self.summary = summarize_loopback(self.runs)

    def record(self):
        return {"image_bytes": os.path.getsize(self.image), "summary": self.summary, "runs": self.runs}

    def report(self, imports, rounds):
        if self.full:
            return [loopback_table(self.summary, imports), ""] + [
                "† some rounds failed: " + note for note in loopback_failures(self.summary)
            ]
        measured_only = {k: v for k, v in self.summary.items() if v.get("rounds")}
        return [json.dumps(dict(measured_only, imports=imports), indent=1), ""]

    def checks(self):
        # a partial run checks the targets of what it measured
        return loopback_targets(self.summary, os.path.getsize(self.image), partial=not self.full)

    def notes(self):
        return [] if self.full else ["- (the other loopback targets: not measured in this run)"]
