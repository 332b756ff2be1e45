"""Client CPU of qvq-sdk against the raw floor, chat by chat in one process (paired ratios).

    python benchmarks/paired.py                       # long answer, 40 pairs
    python benchmarks/paired.py --case fine --pairs 8
    python benchmarks/paired.py --base-url http://127.0.0.1:7860   # a stand-in already running

``run.py`` measures each client in a process of its own, as a user runs it; its CPU figures
move by ±15–30% between rounds on a shared 2-core machine. This script is the quick check
used while working on the read path: one process alternates the clients chat by chat (the
order rotating) on the same ``gradio==5.9.1`` stand-in, and prints each one's median CPU per
chat and the median of its ratio to the raw floor's chat of the same turn, so that drifts of
the machine cancel. Run it with a Python that has qvq-sdk (this checkout) and ``requests``.

Clients (``worker.py``'s, the ones ``run.py`` measures): ``raw`` (the floor: ``iter_lines`` and
``json.loads``, no timeout), ``raw-timeout`` (the same with ``timeout=(10, 60)``), ``sdk``
(``QVQClient.chat``, queue protocol).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time

from clients import GRADIO
from servers import load_servers
from worker import RAW_TIMEOUT, make_raw, make_sdk  # the clients run.py measures (this directory)

PROMPTS = {"long": "words 20000 400", "fine": "words 5000", "short": "words 10"}


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=sorted(PROMPTS), default="long")
    parser.add_argument("--pairs", type=int, default=40, help="chats per client (default 40)")
    parser.add_argument("--clients", default="raw,raw-timeout,sdk", help="the first is the baseline")
    parser.add_argument("--base-url", help="a running stand-in (default: start gradio 5.9.1 here)")
    args = parser.parse_args(argv)
    names = args.clients.split(",")
    prompt = PROMPTS[args.case]

    with contextlib.ExitStack() as stack:
        base_url = args.base_url
        if base_url is None:
            base_url = stack.enter_context(load_servers().start_server(GRADIO, mode="stream")).base_url
        makers = {
            "raw": lambda: make_raw(base_url),
            "raw-timeout": lambda: make_raw(base_url, timeout=RAW_TIMEOUT),
            "sdk": lambda: make_sdk(base_url, "queue"),
        }
        chats = {name: makers[name]() for name in names}
        answers = {name: chat(prompt)[0] for name, chat in chats.items()}  # cold chats, not measured
        assert len(set(answers.values())) == 1, "the clients got different answers"
        cpu = {name: [] for name in names}
        for turn in range(args.pairs):
            shift = turn % len(names)
            for name in names[shift:] + names[:shift]:
                started = time.process_time()
                chats[name](prompt)
                cpu[name].append(time.process_time() - started)

    baseline = names[0]
    print("%s, %d chats each (%d characters), CPU per chat:" % (args.case, args.pairs, len(answers[baseline])))
    for name in names:
        ratios = [mine / theirs for mine, theirs in zip(cpu[name], cpu[baseline])]
        print(
            "  %-12s median %7.2f ms   paired ratio to %s: median %.3f"
            % (name, statistics.median(cpu[name]) * 1000, baseline, statistics.median(ratios))
        )


if __name__ == "__main__":
    main(sys.argv[1:])
