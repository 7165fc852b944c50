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


def targets(
    scenarios: Mapping[str, Mapping[str, Any]], ratio_values: Mapping[str, float | None]
) -> dict[str, Any]:
    """Each target's measured value, limit and whether it is met."""
    engine = scenarios.get("engine", {}).get("typical", {})
    memory = scenarios.get("memory", {})
    values: dict[str, float | None] = {
        **ratio_values,
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
        if name in ("engine", "memory"):
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
    lines.append("")
    lines.append(f"{'target':<22} {'value':>8} {'limit':>8}  met")
    for name, target in report["targets"].items():
        value = target["value"]
        shown = "-" if value is None else f"{value:.3f}" if value < 10 else f"{value:.1f}"
        sign = "≥" if target["kind"] == "min" else "≤"
        met = {True: "yes", False: "NO", None: "-"}[target["met"]]
        lines.append(f"{name:<22} {shown:>8} {sign}{target['limit']:>7}  {met}")
    return "\n".join(lines)


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} MiB"
