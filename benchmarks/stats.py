"""From the worker processes' figures to each scenario's medians.

A process's warm figure is the median over its chats after the first; a scenario's figure is
the median of those over the rounds. Cold samples (each new client's first chat) are pooled
over all the processes of all the rounds. A process that failed is counted, and its error kept,
but its figures are left out.
"""

from __future__ import annotations

import statistics

from clients import CASES, CLIENTS, NET_CLIENTS, OPENAI_CASES, OPENAI_CLIENTS


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def warm_figure(run, key):
    """A process's warm figure: the median over its warm chats (all but the first)."""
    return median(chat[key] for chat in run["chats"][1:])


def problem(run):
    """Why a process failed (its own error, or the first error of its chats), else None."""
    chats = run.get("chats", []) + run.get("cold", [])
    return run.get("failed") or next((c["error"] for c in chats if "error" in c), None)


def loop_cold(run):
    """A loopback process's cold samples: the chats of its new clients (short case), else its
    first chat."""
    return run.get("cold") or run["chats"][:1]


def cold_chats(run):
    """A network (or openai short) process's cold samples: the first chat of each new client it made."""
    return [run["chats"][0], *run.get("cold", [])]


def outcome(mine):
    """``(entry, good)``: the rounds, the rounds that went well and the errors of the others,
    and the processes that went well."""
    good = [r for r in mine if not problem(r)]
    entry = {"rounds": len(mine), "ok": len(good), "errors": sorted({problem(r) for r in mine if r not in good})}
    return entry, good


def warm_figures(good):
    """Medians over rounds of each process's warm figures (its chats after the first)."""
    return {key: median(warm_figure(r, key) for r in good) for key in ("first", "wall", "cpu", "bytes")}


def summarize_loopback(runs):
    """Medians over rounds of each process's warm figures (its chats after the first), and
    medians over all the cold samples of all rounds, per (client, case)."""
    summary = {}
    for client in CLIENTS:
        for case in CASES:
            entry, good = outcome([r for r in runs if r["client"] == client and r["case"] == case])
            if good:
                entry.update(warm_figures(good))
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
    return summary


def sequential_figures(good):
    """The figures of processes that made sequential chats through one client, then new
    clients (``run_sequential`` in worker.py): warm medians, medians over all the cold samples
    of all rounds, connections per process (all its sequential chats)."""
    connections = [sum(c["connections"] for c in r["chats"]) for r in good]
    return dict(
        warm_figures(good),
        cold_first=median(c["first"] for r in good for c in cold_chats(r)),
        cold_cpu=median(c["cpu"] for r in good for c in cold_chats(r)),
        cold_bytes=median(c["bytes"] for r in good for c in cold_chats(r)),
        cold_samples=sum(len(cold_chats(r)) for r in good),
        # the first new client of each process alone
        cold_first_in_process=median(r["chats"][0]["first"] for r in good),
        connections=median(connections),
        connections_min=min(connections),
        connections_max=max(connections),
        warm_connections=median(sum(c["connections"] for c in r["chats"][1:]) for r in good),
    )


def summarize_network(runs):
    """Per network client: medians over rounds of the warm figures (a process's median over
    its chats after the first) and of the cold chats; connections per process (all its chats)."""
    summary = {}
    for client in NET_CLIENTS:
        entry, good = outcome([r for r in runs if r["client"] == client])
        if good:
            entry.update(sequential_figures(good))
        summary[client] = entry
    return summary


def summarize_openai(runs):
    """Per (client, case) of the openai scenario: the warm figures of the long answer and the
    fine stream, and the sequential figures of the short case (warm, cold, connections)."""
    summary = {}
    for client in OPENAI_CLIENTS:
        for case in OPENAI_CASES:
            entry, good = outcome([r for r in runs if r["client"] == client and r["case"] == case])
            if good:
                entry.update(sequential_figures(good) if case == "short" else warm_figures(good))
            summary["%s/%s" % (client, case)] = entry
    return summary
