"""One benchmark run: prepares the venvs, runs the scenarios' rounds, reports and checks.

A scenario (``scenario_*.py``) is an object with:

- ``name``; ``venvs`` and ``imports``, the venvs and import-time rows it needs; ``full``, true
  when it measures all its clients and cases (only a full scenario's run is a reference run);
  ``shows_imports``, true when its report has the import rows; ``subject``, the client its
  targets are about;
- ``versions()``: the versions of what it measures besides qvq-sdk and its dependencies;
- ``prepare(harness)`` before anything is measured, ``start(stack, harness, env)`` to start its
  servers (closed by ``stack``) and warm them, ``run_round(round_number)``;
- then ``summarize()``, ``record()`` (its part of the results file), ``report(imports, rounds)``
  (its tables), ``checks()`` (its targets) and ``notes()`` (about the targets it left out).

The scenarios' rounds alternate: round 1 of each, then round 2 of each..., then the import
times of each round.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time

from imports import IMPORTS, import_time
from processes import client_env
from servers import load_servers
from stats import median
from targets import import_target
from venvs import (
    HERE,
    REPO,
    RESULTS,
    VENV_SPECS,
    VENVS,
    checkout_state,
    ensure_venv,
    install_sdk,
    installed_version,
    python_of,
)

CHART = os.path.join(REPO, "docs", "benchmarks.png")


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


def results_name(scenarios):
    """The results file: ``results.json`` for a full run with the loopback scenario (the
    reference: table.md and the chart come from it), ``results-NAME.json`` for another full
    scenario alone, ``results-partial.json`` for a run of some clients or cases."""
    if not all(s.full for s in scenarios):
        return "results-partial.json"
    if any(s.name == "loopback" for s in scenarios):
        return "results.json"
    return "results-%s.json" % "-".join(s.name for s in scenarios)


def run(scenarios, rounds, command, sdk_rev=None, chart=True):
    """Measures ``scenarios`` for ``rounds`` rounds; returns the exit status (1: a target missed)."""
    harness = load_servers()
    base_python = harness.find_gradio_python()
    os.makedirs(VENVS, exist_ok=True)
    os.makedirs(RESULTS, exist_ok=True)
    for name in VENV_SPECS:
        if any(name in s.venvs for s in scenarios):
            ensure_venv(name, base_python)
    install_sdk(sdk_rev)
    for scenario in scenarios:
        scenario.prepare(harness)
    env = client_env()
    versions = {
        "qvq-sdk": "%s (%s)" % (installed_version("sdk", "qvq-sdk"), checkout_state(sdk_rev)),
        "requests": installed_version("sdk", "requests"),
        "sseclient-py": installed_version("sdk", "sseclient-py"),
    }
    for scenario in scenarios:
        versions.update(scenario.versions())
    print("versions: " + ", ".join("%s %s" % kv for kv in versions.items()), flush=True)

    import_rows = [row for row in IMPORTS if any(row[0] in s.imports for s in scenarios)]
    imports = {label: [] for label, _, _ in import_rows}
    for _, venv, module in import_rows:
        import_time(venv, module, env)  # compile the .pyc files first
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        for scenario in scenarios:
            scenario.start(stack, harness, env)
        for round_number in range(rounds):
            for scenario in scenarios:
                scenario.run_round(round_number)
            for label, venv, module in import_rows:
                for _ in range(3):
                    imports[label].append(import_time(venv, module, env))
    print("measured in %.0f s" % (time.monotonic() - started), flush=True)

    import_medians = {label: median(values) for label, values in imports.items()}
    result = {"command": command, "rounds": rounds, "machine": machine(), "versions": versions}
    for scenario in scenarios:
        scenario.summarize()
        result.update(scenario.record())
    result["summary"] = dict(result.get("summary", {}), imports=import_medians)
    result["imports"] = imports
    checks = [check for s in scenarios for check in s.checks()]
    if checks or any(s.full for s in scenarios):
        checks += import_target(import_medians)
    result["targets"] = [{"target": n, "met": ok, "figures": why} for n, ok, why in checks]
    name = results_name(scenarios)
    with open(os.path.join(RESULTS, name), "w") as f:
        json.dump(result, f, indent=1)

    lines = [line for s in scenarios for line in s.report(import_medians, rounds)]
    if not any(s.shows_imports for s in scenarios):
        lines += [
            "",
            "import (`python -X importtime`, cumulative): "
            + ", ".join("%s %.1f ms" % (label, value / 1e3) for label, value in import_medians.items()),
        ]
    if checks:
        subjects = ", ".join(dict.fromkeys(s.subject for s in scenarios))
        lines += ["", "Targets (%s, medians of %d rounds):" % (subjects, rounds)]
        lines += ["- %s %s: %s" % ({True: "PASS", False: "MISS", None: "MISS"}[ok], n, why) for n, ok, why in checks]
        lines += [note for s in scenarios for note in s.notes()]
    text = "\n".join(lines)
    if name == "results.json":
        with open(os.path.join(RESULTS, "table.md"), "w") as f:
            f.write(text + "\n")
    print()
    print(text)
    if name == "results.json" and chart:
        subprocess.check_call(
            [python_of("chart"), os.path.join(HERE, "chart.py"), os.path.join(RESULTS, "results.json"), CHART]
        )
        print("chart: %s" % os.path.relpath(CHART, REPO))
    missed = [n for n, ok, _ in checks if ok is not True]
    if missed:
        print("\n%d target(s) missed: %s" % (len(missed), "; ".join(missed)), file=sys.stderr)
        return 1
    return 0
