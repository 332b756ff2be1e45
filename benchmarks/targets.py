"""The targets: each a ``(name, met, figures)`` check on a scenario's medians.

``met`` is True or False, or None when the run has no figure for it (a failed client): a
target without data counts as missed. The limits are the issue's, as docs/benchmarks.md
lists them: ratios to the raw floor or to a peer, and differences in milliseconds.
"""

from __future__ import annotations

from clients import (
    BASELINE,
    CLIENTS,
    FLOOR,
    NET_CHATS,
    OPENAI_BASELINE,
    OPENAI_CHATS,
    OPENAI_FLOOR,
    OPENAI_PEER,
    TIMEOUT_FLOOR,
)
from report import fmt


def loopback_targets(summary, image_bytes, partial=False):
    """The loopback targets as ``(name, met, figures)``; a target without data is missed
    (``met`` None). ``partial`` (a run of some clients or cases): a target whose case or
    clients the run did not measure is left out instead."""

    def get(client, case, metric):
        return summary["%s/%s" % (client, case)].get(metric)

    checks = []

    def check(name, value, limit, unit="", extra=None, case=None, peers=(), figures=None):
        if partial and any(not summary["%s/%s" % (c, case)]["rounds"] for c in (BASELINE, FLOOR, *peers)):
            return  # not measured in this run
        if value is None or limit is None:
            checks.append((name, None, "no data"))
            return
        ok = value <= limit
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
    """The import target: ``import qvq_sdk`` ≤ 1.3 × ``import requests`` (medians); when the run
    timed ``import openai`` too, its ratio is shown beside it."""
    sdk, base = imports.get("qvq_sdk"), imports.get("requests")
    if not sdk or not base:
        return [("import qvq_sdk ≤ 1.3 × import requests", None, "no data")]
    value = round(sdk / base, 2)
    figures = "%s vs limit 1.3×" % value
    if imports.get("openai"):
        figures += " (import openai: %.2f× import requests)" % (imports["openai"] / base)
    return [("import qvq_sdk ≤ 1.3 × import requests", value <= 1.3, figures)]


def network_targets(net_summary, rtt):
    """The network targets: warm first text, connections for sequential chats, cold first text."""
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


def openai_targets(summary, partial=False):
    """The openai scenario's targets (qvq-sdk's ``protocol="openai"``): client CPU on the long
    answer and the fine stream against the raw floor's and openai-python's, the warm first
    text, one connection for sequential chats. ``partial``: a target whose case or clients the
    run did not measure is left out; otherwise a target without data is missed."""
    checks = []

    def get(client, case, metric):
        return summary["%s/%s" % (client, case)].get(metric)

    def check(name, case, peer, value, limit, unit, figures):
        if partial and any(not summary["%s/%s" % (c, case)]["rounds"] for c in (OPENAI_BASELINE, peer)):
            return  # not measured in this run
        if value is None:
            checks.append((name, None, "no data"))
        else:
            checks.append((name, value <= limit, "%s vs limit %s%s; %s" % (value, limit, unit, figures)))

    for case in ("long", "fine"):
        sdk = get(OPENAI_BASELINE, case, "cpu")
        for peer, limit, title in ((OPENAI_FLOOR, 1.10, "raw floor"), (OPENAI_PEER, 0.5, "openai-python")):
            other = get(peer, case, "cpu")
            check(
                "openai %s: client CPU ≤ %.2f × %s" % (case, limit, title),
                case,
                peer,
                sdk and other and round(sdk / other, 2),
                limit,
                "×",
                "%s vs %s" % (fmt(sdk, "ms"), fmt(other, "ms")),
            )
    sdk, raw = get(OPENAI_BASELINE, "short", "first"), get(OPENAI_FLOOR, "short", "first")
    check(
        "openai, warm: first text ≤ raw floor + 2 ms",
        "short",
        OPENAI_FLOOR,
        None if sdk is None or raw is None else round((sdk - raw) * 1e3, 2),
        2.0,
        " ms",
        "%s vs %s" % (fmt(sdk, "ms"), fmt(raw, "ms")),
    )
    low, high = get(OPENAI_BASELINE, "short", "connections_min"), get(OPENAI_BASELINE, "short", "connections_max")
    check(
        "openai: new connections for %d sequential chats = 1" % OPENAI_CHATS,
        "short",
        OPENAI_BASELINE,
        high,
        1,
        "",
        ("%s in every round" % high if low == high else "%s–%s over the rounds" % (low, high))
        + " (raw floor %s, openai-python %s)"
        % tuple(
            "%g" % get(c, "short", "connections") if get(c, "short", "connections") is not None else "—"
            for c in (OPENAI_FLOOR, OPENAI_PEER)
        ),
    )
    return checks
