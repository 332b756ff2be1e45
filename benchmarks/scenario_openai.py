"""The openai scenario: qvq-sdk's ``protocol="openai"`` against openai-python and a raw floor.

One ``openai_stub.py`` on 127.0.0.1 (an OpenAI-compatible server that frames its stream as
vLLM does) serves three clients, each chat in a process of its own, the clients' order
rotating from round to round:

- ``long``: a 20,000-token answer in deltas of 4 tokens (5,000 events), warm chats;
- ``fine``: 5,000 one-token deltas, warm chats;
- ``short``: 10 one-token deltas, OPENAI_CHATS sequential chats through one new client (warm:
  chats 2 and on; the stub counts the connections they open), then OPENAI_COLD_CLIENTS new
  clients, one chat each (cold: the clock starts before the client is made).
"""

from __future__ import annotations

from clients import OPENAI_CASES, OPENAI_CHATS, OPENAI_CLIENTS, OPENAI_COLD_CLIENTS
from processes import run_worker
from report import openai_table, print_loopback, print_sequential
from servers import openai_stub
from stats import summarize_openai
from targets import openai_targets
from venvs import installed_version


class OpenAI:
    name = "openai"
    #: the venvs its clients run in, and the import-time rows it shows
    venvs = ("sdk", "openai")
    imports = ("requests", "qvq_sdk", "openai")
    shows_imports = True  # its table has the import row
    subject = "qvq-sdk openai"

    def __init__(self, clients, cases):
        self.clients = [c for c in OPENAI_CLIENTS if c in clients]
        self.cases = [c for c in OPENAI_CASES if c in cases]
        self.full = self.clients == list(OPENAI_CLIENTS) and self.cases == OPENAI_CASES
        self.runs = []

    def versions(self):
        return {
            "openai": installed_version("openai", "openai"),
            "httpx2 (openai)": installed_version("openai", "httpx2"),
        }

    def prepare(self, harness):
        pass  # the stub needs nothing but this Python

    def start(self, stack, harness, env):
        if not self.clients or not self.cases:
            return
        port, stats_port = stack.enter_context(openai_stub())
        self.options = [
            "--base-url",
            "http://127.0.0.1:%d/v1" % port,
            "--counter-port",
            str(stats_port),
            "--stats-port",
            str(stats_port),
            "--chats",
            str(OPENAI_CHATS),
            "--cold-clients",
            str(OPENAI_COLD_CLIENTS),
        ]
        self.env = env
        for client in self.clients:  # warm the stub and the disk cache; not measured
            run_worker(client, "short", self.options, self.env, timeout=300)

    def run_round(self, round_number):
        if not self.clients:
            return
        for case in self.cases:
            shift = round_number % len(self.clients)
            for client in self.clients[shift:] + self.clients[:shift]:
                result = run_worker(client, case, self.options, self.env, timeout=300)
                result["round"] = round_number
                self.runs.append(result)
                if case == "short":
                    print_sequential(case, client, round_number, result)
                else:
                    print_loopback(client, case, round_number, result)

    def summarize(self):
        self.summary = summarize_openai(self.runs)

    def record(self):
        return {"openai": {"chats": OPENAI_CHATS, "summary": self.summary, "runs": self.runs}}

    def report(self, imports, rounds):
        lines = [
            "OpenAI-compatible stub on 127.0.0.1: long = 20,000 tokens in deltas of 4, fine = 5,000 one-token deltas, "
            "short = 10 tokens, %d sequential chats per new client then %d new clients; medians of %d rounds:"
            % (OPENAI_CHATS, OPENAI_COLD_CLIENTS, rounds),
            "",
            openai_table(self.summary, imports),
            "",
        ]
        for key, entry in self.summary.items():
            if entry.get("errors"):
                client, case = key.split("/")
                lines.append("† %s, %s: %s" % (OPENAI_CLIENTS[client][1], case, "; ".join(entry["errors"])))
        return lines

    def checks(self):
        return openai_targets(self.summary, partial=not self.full)

    def notes(self):
        return [] if self.full else ["- (the other openai targets: not measured in this run)"]
