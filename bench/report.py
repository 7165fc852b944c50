"""The benchmark's results: ratios and targets computed within one run, a table, ``bench.json``."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# (name, limit, "min" when the value must reach the limit or "max" when it must stay under it)
TARGETS: tuple[tuple[str, float, str], ...] = (
    ("typical_vs_noop_rps", 0.80, "min"),
    ("typical_vs_noop_p99", 1.30, "max"),
    ("scale_vs_typical_p50", 1.20, "max"),
    ("cluster_scale_vs_typical_p50", 1.20, "max"),
    ("bigpod_vs_typical_p50", 2.00, "max"),
    ("engine_typical_us", 200.0, "max"),
    ("memory_rss_mib", 150.0, "max"),
    ("memory_load_seconds", 5.0, "max"),
    ("replica_pss_mib_1k", 60.0, "max"),
    ("replica_pss_mib_10k", 150.0, "max"),
    ("e2e_over_fixed_patch_p50_ms", 0.3, "max"),
    ("e2e_over_fixed_patch_p99_ms", 2.0, "max"),
)


BALANCED_SHARE = 0.7
"""A round counts as served by both workers when the busier one used at most this share of CPU."""


def both_workers(run: Mapping[str, Any]) -> bool:
    return float(run.get("busiest_worker_share", 0.0)) <= BALANCED_SHARE


def ratios(scenarios: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    """The four ratios of the issue, from the scenarios of the same run (None when one is missing):
    the median over rounds of each round's ratio."""

    def ratio(a: str, b: str, metric: str) -> float | None:
        # Paired by round: the two servers were measured seconds apart, under the same
        # neighbours' load, so the median of per-round ratios shrugs off a noisy round that
        # a ratio of the two medians would take in whole.
        runs_a, runs_b = scenarios.get(a, {}).get("runs", []), scenarios.get(b, {}).get("runs", [])
        paired = [(x, y) for x, y in zip(runs_a, runs_b, strict=False) if x.get(metric) and y.get(metric)]
        balanced = [(x, y) for x, y in paired if both_workers(x) and both_workers(y)]
        pairs = [float(x[metric]) / float(y[metric]) for x, y in balanced or paired]
        if pairs:
            return round(statistics.median(pairs), 3)
        top, bottom = scenarios.get(a, {}).get(metric), scenarios.get(b, {}).get(metric)
        if not top or not bottom:
            return None
        return round(float(top) / float(bottom), 3)

    return {
        "typical_vs_noop_rps": ratio("typical", "noop", "rps"),
        "typical_vs_noop_p99": ratio("typical", "noop", "p99_ms"),
        "scale_vs_typical_p50": ratio("scale", "typical", "p50_ms"),
        "cluster_scale_vs_typical_p50": ratio("cluster-scale", "typical", "p50_ms"),
        "bigpod_vs_typical_p50": ratio("big-pod", "typical", "p50_ms"),
        # Not a target: server CPU per request, the figure least disturbed by a noisy machine.
        "typical_vs_noop_cpu": ratio("typical", "noop", "cpu_ms_per_request"),
    }


def e2e_figures(scenarios: Mapping[str, Any]) -> dict[str, float | None]:
    """The end-to-end scenario's headline figures (``bench.e2e_latency``): replica PSS with 1,000
    and 10,000 presets, and every latency difference (p50/p90/p99, ms) between configurations."""
    e2e = scenarios.get("e2e") or {}
    memory = e2e.get("memory") or {}
    figures: dict[str, float | None] = {
        "replica_pss_mib_1k": (memory.get("1000") or {}).get("total_mib"),
        "replica_pss_mib_10k": (memory.get("10000") or {}).get("total_mib"),
    }
    figures.update((e2e.get("latency") or {}).get("differences") or {})
    return figures


def targets(
    scenarios: Mapping[str, Mapping[str, Any]], ratio_values: Mapping[str, float | None]
) -> dict[str, Any]:
    """Each target's measured value, limit and whether it is met."""
    engine = scenarios.get("engine", {}).get("typical", {})
    memory = scenarios.get("memory", {})
    values: dict[str, float | None] = {
        **ratio_values,
        **e2e_figures(scenarios),
        "engine_typical_us": engine.get("us_per_call"),
        "memory_rss_mib": memory.get("rss_mib"),
        "memory_load_seconds": memory.get("load_seconds"),
    }
    result: dict[str, Any] = {}
    for name, limit, kind in TARGETS:
        value = values.get(name)
        met = None if value is None else (value >= limit if kind == "min" else value <= limit)
        result[name] = {"value": value, "limit": limit, "kind": kind, "met": met}
    return result


def build_report(scenarios: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    ratio_values = ratios(scenarios)
    return {
        "run": dict(run),
        "scenarios": dict(scenarios),
        "ratios": ratio_values,
        **e2e_figures(scenarios),
        "targets": targets(scenarios, ratio_values),
    }


def write_report(report: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def format_table(report: Mapping[str, Any]) -> str:
    """A plain-text table of every scenario, then the ratios and targets."""
    scenarios = report["scenarios"]
    lines = [
        f"{'scenario':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/req':>10} {'errors':>7} "
        f"{'2 workers':>9}"
    ]
    for name, values in scenarios.items():
        if name in ("engine", "memory", "e2e"):
            continue
        lines.append(
            f"{name:<10} {values['rps']:>9.0f} {values['p50_ms']:>8.2f} {values['p99_ms']:>8.2f} "
            f"{values.get('cpu_ms_per_request', 0):>10.3f} {values.get('errors', 0):>7} "
            f"{values.get('rounds_both_workers', 0):>3}/{len(values.get('runs', [])):<5}"
        )
    engine = scenarios.get("engine")
    if engine:
        lines.append("")
        lines.append(f"{'engine':<10} {'µs/call':>9} {'+json µs':>9}  (admit alone; with decode+encode)")
        for name, values in engine.items():
            lines.append(f"  {name:<8} {values['us_per_call']:>9.1f} {values['us_per_call_json']:>9.1f}")
    memory = scenarios.get("memory")
    if memory:
        lines.append("")
        lines.append(
            f"memory     {memory['presets']} presets: {_mib(memory.get('rss_mib'))} per worker "
            f"(max of {len(memory.get('workers_rss_mib') or [])}), loaded in {memory['load_seconds']:.2f} s; "
            f"10 presets: {_mib(memory.get('baseline_rss_mib'))}"
        )
    lines.extend(_e2e_lines(scenarios.get("e2e")))
    lines.append("")
    lines.append(f"{'target':<22} {'value':>8} {'limit':>8}  met")
    for name, target in report["targets"].items():
        value = target["value"]
        shown = "-" if value is None else f"{value:.3f}" if value < 10 else f"{value:.1f}"
        sign = "≥" if target["kind"] == "min" else "≤"
        met = {True: "yes", False: "NO", None: "-"}[target["met"]]
        lines.append(f"{name:<22} {shown:>8} {sign}{target['limit']:>7}  {met}")
    return "\n".join(lines)


def _e2e_lines(e2e: Mapping[str, Any] | None) -> list[str]:
    if not e2e:
        return []
    latency = e2e.get("latency") or {}
    header = f"{'pod creation':<12} {'pods':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
    lines = ["", header + "  (through kube-apiserver)"]
    for config in ("none", "noop", "fixed", "podpreset", "traced"):
        row = latency.get(config)
        if row:
            p50, p90, p99 = row["p50_ms"], row["p90_ms"], row["p99_ms"]
            lines.append(f"  {config:<10} {row['pods']:>5} {p50:>8.2f} {p90:>8.2f} {p99:>8.2f}")
    differences = latency.get("differences") or {}
    for name in ("noop_over_none", "fixed_patch_over_noop", "e2e_over_fixed_patch", "e2e_over_none"):
        if f"{name}_p50_ms" in differences:
            p50, p99 = differences[f"{name}_p50_ms"], differences[f"{name}_p99_ms"]
            lines.append(f"  {name:<22} p50 {p50:+.2f}  p99 {p99:+.2f} ms")
    for size, values in (e2e.get("memory") or {}).items():
        workers = ", ".join(f"{w:.1f}" for w in values["workers_mib"])
        lines.append(
            f"replica PSS  {size} presets: {values['total_mib']:.1f} MiB in {values['processes']} "
            f"processes (arbiter {values['arbiter_mib']:.1f}, workers {workers})"
        )
    tail = e2e.get("tail") or {}
    slow = tail.get("slowest_1pct")
    if slow:
        lines.append(
            f"tail         server p50 {tail['server_p50_ms']:.2f} ms, p99 {tail['server_p99_ms']:.2f} ms; "
            "slowest 1%: "
            f"cpu {slow['thread_cpu_ms']:.2f}, waiting {slow['waiting_ms']:.2f} (GIL "
            f"{slow.get('waiting_for_gil_ms', 0):.2f}, a core {slow.get('waiting_for_cpu_ms', 0):.2f}), "
            f"gc {slow['gc_ms']:.2f}, log {slow['log_ms']:.2f} ms"
        )
    return lines


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} MiB"
