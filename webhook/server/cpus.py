"""How many CPUs this process may use, for the default number of gunicorn workers.

A container's CPU limit is a cgroup quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` over
``cpu.cfs_period_us``), read where a container sees its own cgroup (the root of the cgroup
mount); the CPUs it may be scheduled on are its affinity mask. The usable CPUs are the smaller of
the two. Nothing here fails: an unreadable or absent file means no limit from that side.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
MAX_DEFAULT_WORKERS = 2
"""The default never exceeds this: one worker answers about 1,400 typical admissions per second
per CPU, and each worker holds its own copy of what it touches (its share of the memory)."""


def quota_cpus(root: Path | None = None) -> float | None:
    """The cgroup CPU limit in CPUs, or None when there is none (or it cannot be read)."""
    root = CGROUP if root is None else root
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def usable_cpus(root: Path | None = None) -> float:
    """The CPUs this process may use: the affinity mask, lowered by a cgroup quota."""
    cpus: float = affinity_cpus()
    quota = quota_cpus(root)
    return min(cpus, quota) if quota is not None else cpus


def default_workers(root: Path | None = None) -> int:
    """One worker per usable CPU (a fractional CPU rounds up), at least 1, at most 2."""
    return max(1, min(MAX_DEFAULT_WORKERS, math.ceil(usable_cpus(root))))
