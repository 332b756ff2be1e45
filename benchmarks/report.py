"""What a run prints: a line per worker process as it ends, then each scenario's tables.

The tables are Markdown (``benchmarks/results/table.md`` keeps the loopback one), peers'
figures followed by their ratio to qvq-sdk's, or by their difference from the raw floor's.
"""

from __future__ import annotations

from clients import (
    BASELINE,
    CLIENTS,
    FLOOR,
    NET_CHATS,
    NET_CLIENTS,
    OPENAI_CHATS,
    OPENAI_CLIENTS,
    OPENAI_FLOOR,
    TIMEOUT_FLOOR,
)
from stats import cold_chats, median, problem, warm_figure

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

OPENAI_ROWS = [
    # (case, metric, title, format)
    ("long", "cpu", "long: client CPU", "ms"),
    ("long", "wall", "long: wall time", "ms"),
    ("long", "first", "long: call → first text", "ms"),
    ("long", "bytes", "long: bytes received", "bytes"),
    ("fine", "cpu", "fine: client CPU", "ms"),
    ("fine", "wall", "fine: wall time", "ms"),
    ("fine", "first", "fine: call → first text", "ms"),
    ("fine", "bytes", "fine: bytes received", "bytes"),
    ("short", "first", "short, warm: call → first text", "ms"),
    ("short", "cpu", "short, warm: client CPU", "ms"),
    ("short", "cold_first", "short, cold (new client): call → first text", "ms"),
    ("short", "cold_cpu", "short, cold: client CPU", "ms"),
    ("short", "connections", "new connections, %d sequential chats" % OPENAI_CHATS, "count"),
]
#: the openai table's import row: each client's module
OPENAI_IMPORTS = {"raw-openai": "requests", "sdk-openai": "qvq_sdk", "openai-python": "openai"}


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


def loopback_table(summary, imports):
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
    base = imports["qvq_sdk"]
    lines.append("")
    lines.append("| import (`python -X importtime`, cumulative) | time | vs `import qvq_sdk` |")
    lines.append("|---|---|---|")
    for label, value in imports.items():
        lines.append("| `import %s` | %.1f ms | %.2f× |" % (label, value / 1e3, value / base))
    return "\n".join(lines)


def loopback_failures(summary):
    notes = []
    for key, entry in summary.items():
        if entry.get("errors"):
            client, case = key.split("/")
            notes.append(
                "%s, %s: %d of %d rounds failed: %s"
                % (CLIENTS[client][1], case, entry["rounds"] - entry["ok"], entry["rounds"], "; ".join(entry["errors"]))
            )
    return notes


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


def openai_table(summary, imports):
    """The openai scenario's table: each client's figures, with its ratio to the raw floor's
    (or, for a first text, its difference from it)."""
    header = ["measure"] + [label for _, label in OPENAI_CLIENTS.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for case, metric, title, kind in OPENAI_ROWS:
        floor = summary["%s/%s" % (OPENAI_FLOOR, case)].get(metric)
        cells = []
        for client in OPENAI_CLIENTS:
            entry = summary["%s/%s" % (client, case)]
            if not entry.get("ok"):
                cells.append("failed" if entry["rounds"] else "—")
                continue
            value = entry.get(metric)
            if kind == "count":
                low, high = entry["connections_min"], entry["connections_max"]
                cell = "%g" % value + ("" if low == high else " (%d–%d)" % (low, high))
            else:
                cell = fmt(value, kind)
                if client != OPENAI_FLOOR and floor is not None:
                    cell += " (%+.1f ms)" % ((value - floor) * 1e3) if "first" in metric else ratio(value, floor)
            if entry["ok"] < entry["rounds"]:
                cell += " †"
            cells.append(cell)
        lines.append("| %s | %s |" % (title, " | ".join(cells)))
    cells = []
    for client in OPENAI_CLIENTS:
        module = OPENAI_IMPORTS[client]
        value = imports.get(module)
        cell = "`%s` %s" % (module, "—" if value is None else "%.1f ms" % (value / 1e3))
        cells.append(cell + ("" if client == OPENAI_FLOOR else ratio(value, imports.get("requests"))))
    lines.append("| import (`python -X importtime`, cumulative) | %s |" % " | ".join(cells))
    return "\n".join(lines)


def print_loopback(client, case, round_number, result):
    failed = problem(result)
    warm = {k: warm_figure(result, k) for k in ("cpu", "wall", "bytes", "first")} if not failed else {}
    cold = [c["first"] for c in result.get("cold", [])] if not failed else []
    print(
        "round %d  %-10s %-13s %s"
        % (
            round_number + 1,
            case,
            client,
            "FAILED: " + failed
            if failed
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


def print_sequential(case, client, round_number, result):
    """The line of a process of sequential chats (network; openai short)."""
    failed = problem(result)
    if failed:
        print("round %d  %-10s %-13s FAILED: %s" % (round_number + 1, case, client, failed), flush=True)
        return
    chats = result["chats"]
    print(
        "round %d  %-10s %-13s first: cold %s ms, warm %5.1f ms  connections %d  warm cpu %4.1f ms"
        % (
            round_number + 1,
            case,
            client,
            "/".join("%.0f" % (c["first"] * 1e3) for c in cold_chats(result)),
            warm_figure(result, "first") * 1e3,
            sum(c["connections"] for c in chats),
            warm_figure(result, "cpu") * 1e3,
        ),
        flush=True,
    )
