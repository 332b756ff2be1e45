"""Draws docs/benchmarks.png from benchmarks/results/results.json (run by run.py, in the chart venv).

python chart.py results.json out.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

CLIENTS = ["raw", "raw-timeout", "sdk-queue", "sdk-call", "gradio_client", "g4f"]
NET_CLIENTS = ["raw", "sdk-queue", "gradio_client"]
LABELS = {
    "raw": "raw floor",
    "raw-timeout": "raw floor + timeout",
    "sdk-queue": "qvq-sdk queue",
    "sdk-call": "qvq-sdk call",
    "gradio_client": "gradio_client",
    "g4f": "g4f 0.5.3.1",
}
COLORS = {
    "raw": "#9e9e9e",
    "raw-timeout": "#5f5f5f",
    "sdk-queue": "#1f77b4",
    "sdk-call": "#6baed6",
    "gradio_client": "#ff7f0e",
    "g4f": "#d62728",
}
PANELS = [
    # (title, case, metric, scale, unit, log)
    ("Long answer: client CPU", "long", "cpu", 1e3, "ms", False),
    ("Long answer: bytes on the wire", "long", "bytes", 1e-6, "MB", True),
    ("Fine-grained stream: client CPU", "fine", "cpu", 1e3, "ms", False),
    ("Short answer: submit → first text", "short", "first", 1e3, "ms", False),
    ("20 MB upload: peak RSS", "upload", "peak_rss", 1 / 2**20, "MiB", False),
    ("16 concurrent chats: wall time", "concurrent", "wall", 1.0, "s", False),
]


def main(source, target):
    with open(source) as f:
        results = json.load(f)
    summary = results["summary"]
    fig, axes = plt.subplots(2, 4, figsize=(17, 7.5))
    axes = axes.flatten()
    for ax, (title, case, metric, scale, unit, log) in zip(axes, PANELS):
        names, values, colors = [], [], []
        for client in CLIENTS:
            entry = summary.get("%s/%s" % (client, case), {})
            value = entry.get(metric) if entry.get("ok") else None
            names.append(LABELS[client])
            values.append(0 if value is None else value * scale)
            colors.append(COLORS[client])
        bars = ax.bar(range(len(names)), values, color=colors)
        for bar, value in zip(bars, values):
            text = "failed" if value == 0 else ("%.3g" % value)
            ax.annotate(
                text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8
            )
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit + (" (log)" if log else ""))
        if log:
            ax.set_yscale("log")
    imports = summary["imports"]
    ax = axes[len(PANELS)]
    labels = list(imports)
    ax.bar(range(len(labels)), [imports[k] / 1e3 for k in labels], color=["#9e9e9e", "#1f77b4", "#ff7f0e", "#d62728"])
    for i, k in enumerate(labels):
        ax.annotate("%.0f" % (imports[k] / 1e3), (i, imports[k] / 1e3), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(["import " + k for k in labels], rotation=30, ha="right", fontsize=8)
    ax.set_title("Import time (-X importtime)", fontsize=10)
    ax.set_ylabel("ms")
    ax = axes[-1]
    network = results.get("network")
    if network:
        net = network["summary"]
        clients = [c for c in NET_CLIENTS if net.get(c, {}).get("ok")]
        width = 0.38
        for offset, metric, label, alpha in (
            (-width / 2, "first", "warm", 1.0),
            (width / 2, "cold_first", "cold", 0.55),
        ):
            values = [net[c][metric] * 1e3 for c in clients]
            bars = ax.bar(
                [i + offset for i in range(len(clients))],
                values,
                width,
                color=[COLORS[c] for c in clients],
                alpha=alpha,
                label=label,
            )
            for bar, value in zip(bars, values):
                ax.annotate(
                    "%.0f" % value,
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
        ax.set_xticks(range(len(clients)))
        ax.set_xticklabels(
            [
                "%s\n%g connection%s" % (LABELS[c], net[c]["connections"], "" if net[c]["connections"] == 1 else "s")
                for c in clients
            ],
            rotation=30,
            ha="right",
            fontsize=8,
        )
        ax.set_title(
            "TLS, %g ms RTT: first text; connections, %d chats" % (network["rtt"] * 1e3, network["chats"]),
            fontsize=10,
        )
        ax.set_ylabel("ms")
        ax.legend(fontsize=8, loc="upper left")
    else:
        ax.axis("off")
    machine = results["machine"]
    fig.text(
        0.995,
        0.005,
        "Medians of %d rounds; warm client (its chats after the first). gradio %s stand-in on 127.0.0.1. "
        "%s, %s cores, %s. %s"
        % (
            results["rounds"],
            results["versions"]["gradio (server)"],
            machine["cpu"],
            machine["cores"],
            machine["memory"],
            results["command"],
        ),
        fontsize=8,
        ha="right",
        va="bottom",
    )
    fig.suptitle("qvq-sdk vs gradio_client, the g4f reference provider and raw-requests floors", fontsize=12)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(target, dpi=90)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
