"""The network scenario: short chats over HTTPS at 40 ms RTT, cold and warm, connections counted.

The same stand-in serves HTTPS (throw-away certificates from ``tests/netkit/tls.py``) behind
``tests/netkit/shaper.py``: every byte is delayed rtt/2 each way and a new connection's first
byte one rtt more (its TCP handshake; the TLS handshake then costs its own round trip). Each
client process makes NET_CHATS sequential short chats through one new client, the first cold
(its clock starts before the client is made), the rest warm, then one chat through each of
NET_COLD_CLIENTS more new clients; the shaper counts the connections each chat opens.
"""

from __future__ import annotations

import os

from clients import CLIENTS, GRADIO, NET_CHATS, NET_CLIENTS, NET_COLD_CLIENTS
from processes import run_worker
from report import network_table, print_sequential
from servers import ShaperStats, load_shaper, make_certs
from stats import summarize_network
from targets import network_targets
from venvs import RESULTS, installed_version


class Network:
    name = "network"
    #: the venvs its clients and its certificates need, and the import-time rows it needs
    venvs = ("sdk", "gradio_client", "tls")
    imports = ("requests", "qvq_sdk")
    shows_imports = False
    subject = "qvq-sdk queue"

    def __init__(self, clients, rtt, alone):
        """``clients``: those of NET_CLIENTS to measure; ``rtt`` in seconds; ``alone``: run
        without the loopback scenario (the report then says that its targets were not checked)."""
        self.clients = [c for c in NET_CLIENTS if c in clients]
        self.rtt = rtt
        self.alone = alone
        self.full = self.clients == NET_CLIENTS
        self.runs = []

    def versions(self):
        return {
            "gradio (server)": GRADIO,
            "gradio_client": installed_version("gradio_client", "gradio_client"),
            "httpx (gradio_client)": installed_version("gradio_client", "httpx"),
        }

    def prepare(self, harness):
        harness.ensure_venv(GRADIO)

    def start(self, stack, harness, env):
        if not self.clients:
            return
        tls = make_certs(os.path.join(RESULTS, "certs"))
        tls_server = stack.enter_context(harness.start_server(GRADIO, mode="stream", tls=tls))
        shaper = stack.enter_context(load_shaper()("127.0.0.1", tls_server.port, rtt=self.rtt))
        config = tls_server.config
        fn_index = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "generate")
        self.options = [
            "--base-url",
            shaper.url_for("https"),
            "--stats-port",
            str(ShaperStats(shaper).port),
            "--chats",
            str(NET_CHATS),
            "--cold-clients",
            str(NET_COLD_CLIENTS),
            "--api-prefix",
            config.get("api_prefix", ""),
            "--fn-index",
            str(fn_index),
        ]
        # the CA as a user gives it: REQUESTS_CA_BUNDLE (requests), SSL_CERT_FILE (httpx)
        self.env = dict(env, REQUESTS_CA_BUNDLE=tls[2], SSL_CERT_FILE=tls[2])
        for client in self.clients:  # warm the server; not measured
            self._run(client)

    def _run(self, client):
        return run_worker(client, "network", self.options, self.env, timeout=300)

    def run_round(self, round_number):
        if not self.clients:
            return
        shift = round_number % len(self.clients)
        for client in self.clients[shift:] + self.clients[:shift]:
            result = self._run(client)
            result["round"] = round_number
            self.runs.append(result)
            print_sequential("network", client, round_number, result)

    def summarize(self):
        self.summary = summarize_network(self.runs) if self.clients else None

    def record(self):
        if not self.clients:
            return {}
        return {"network": {"rtt": self.rtt, "chats": NET_CHATS, "summary": self.summary, "runs": self.runs}}

    def report(self, imports, rounds):
        if not self.clients:
            return []
        lines = [
            "Network: TLS at %g ms RTT through the shaper, short answers, %d sequential chats per new client, "
            "medians of %d rounds:" % (self.rtt * 1e3, NET_CHATS, rounds),
            "",
            network_table(self.summary),
            "",
        ]
        return lines + [
            "† some rounds failed: %s: %s" % (CLIENTS[c][1], "; ".join(self.summary[c]["errors"]))
            for c in NET_CLIENTS
            if self.summary[c].get("errors")
        ]

    def checks(self):
        return network_targets(self.summary, self.rtt) if self.full else []

    def notes(self):
        return ["- (the loopback targets: not measured in this run; see --scenario loopback)"] if self.alone else []
