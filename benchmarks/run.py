"""qvq-sdk against gradio_client, the g4f reference provider, openai-python and raw-requests floors.

    python benchmarks/run.py                               # 9 rounds of loopback and network
    python benchmarks/run.py --scenario network --rounds 5  # the network scenario alone (~1 min)
    python benchmarks/run.py --scenario openai --rounds 5   # qvq-sdk's protocol="openai"

Builds the clients' venvs under ``benchmarks/.venvs/`` on first use (qvq-sdk from this
checkout, the newest ``gradio_client``, ``g4f==0.5.3.1``, matplotlib for the chart, trustme
for the certificates, the newest ``openai``), and measures the chosen scenarios, every client
as its own process (``worker.py``), alternating them within each round, for several rounds:

- **loopback** (``scenario_loopback.py``): the ``gradio==5.9.1`` stand-in of the Space
  (``tests/realserver/``) on 127.0.0.1 behind a byte-counting loopback proxy; five cases, six
  clients, and cold clients in the short case.
- **network** (``scenario_network.py``): the same stand-in serving HTTPS behind
  ``tests/netkit/shaper.py`` at 40 ms RTT; short answers, cold (new client) and warm chats, new
  connections counted, for qvq-sdk, the raw floor (plain ``requests`` reusing its connection)
  and gradio_client.
- **openai** (``scenario_openai.py``, not in ``all``): qvq-sdk's ``protocol="openai"``,
  openai-python and a raw ``requests`` floor against ``openai_stub.py``, an OpenAI-compatible
  server on 127.0.0.1 that frames its stream as vLLM does; a long answer, a fine stream, short
  answers warm and cold, connections counted.

Prints the tables of medians and every target with its figures and PASS or MISS, writes
``benchmarks/results/results.json`` and ``table.md`` (``results-network.json``,
``results-openai.json`` for those scenarios alone), draws ``docs/benchmarks.png``, and exits 1
if a target was missed.

The other modules, one job each: ``runner.py`` (a run: rounds, results, report),
``venvs.py``, ``servers.py``, ``openai_stub.py``, ``processes.py`` (the worker processes), ``imports.py``,
``stats.py``, ``report.py``, ``targets.py``, and ``clients.py`` (what is measured).

Needs only the standard library; run it with any Python >= 3.10.
"""

from __future__ import annotations

import argparse
import sys

from clients import CASES, CLIENTS, NET_RTT, OPENAI_CLIENTS
from runner import run
from scenario_loopback import Loopback
from scenario_network import Network
from scenario_openai import OpenAI


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="one round")
    parser.add_argument(
        "--scenario",
        choices=["all", "loopback", "network", "openai"],
        default="all",
        help="loopback: the cases on 127.0.0.1; network: TLS at --rtt through the shaper; "
        "all (default): both; openai: protocol='openai' against an OpenAI-compatible stub",
    )
    parser.add_argument(
        "--clients", default=",".join([*CLIENTS, *OPENAI_CLIENTS]), help="comma-separated subset (all scenarios)"
    )
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset (loopback, openai)")
    parser.add_argument("--rtt", type=float, default=NET_RTT * 1e3, help="network: round-trip time in ms (40)")
    parser.add_argument(
        "--sdk-rev", help="measure qvq-sdk as committed at this git revision (default: the working tree)"
    )
    parser.add_argument("--no-chart", action="store_true")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    clients = [c for c in args.clients.split(",") if c]
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(clients) - set(CLIENTS) - set(OPENAI_CLIENTS) | set(cases) - set(CASES)
    if unknown:
        parser.error("unknown client or case: %s" % ", ".join(sorted(unknown)))

    scenarios = []
    if args.scenario in ("all", "loopback"):
        scenarios.append(Loopback(clients, cases))
    if args.scenario in ("all", "network"):
        scenarios.append(Network(clients, args.rtt / 1e3, alone=args.scenario == "network"))
    if args.scenario == "openai":
        scenarios.append(OpenAI(clients, cases))
    command = "python benchmarks/run.py" + (" --quick" if args.quick else " --rounds %d" % rounds)
    if args.scenario != "all":
        command += " --scenario " + args.scenario
    if args.scenario in ("all", "network") and args.rtt != NET_RTT * 1e3:
        command += " --rtt %g" % args.rtt
    return run(scenarios, rounds, command, sdk_rev=args.sdk_rev, chart=not args.no_chart)


if __name__ == "__main__":
    sys.exit(main())
