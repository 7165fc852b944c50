"""Memory of one replica: PSS of the gunicorn arbiter and its workers, summed.

PSS (proportional set size, ``/proc/PID/smaps_rollup``) charges each process its private pages
and an equal share of every page it shares, so the sum over the arbiter and its workers is what
the replica costs the node, counting pages shared by fork once. RSS would count them once per
process. ``replica_pss`` reads it for a running server; ``bench.e2e_latency`` starts the servers
(kube mode, 1,000 and 10,000 presets in a real kube-apiserver) and calls it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_FIELDS = ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty")


def smaps_rollup_kib(pid: int) -> dict[str, int] | None:
    """The memory fields of ``/proc/PID/smaps_rollup`` in KiB, or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    values: dict[str, int] = {}
    for name in _FIELDS:
        match = re.search(rf"^{name}:\s+(\d+) kB", text, re.MULTILINE)
        if match:
            values[name] = int(match.group(1))
    return values


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def replica_pss(arbiter: int) -> dict[str, Any]:
    """PSS in MiB of the arbiter, of each worker, and their sum (``total_mib``)."""
    arbiter_values = smaps_rollup_kib(arbiter) or {}
    workers = [v for pid in children(arbiter) if (v := smaps_rollup_kib(pid)) is not None]
    total = arbiter_values.get("Pss", 0) + sum(w.get("Pss", 0) for w in workers)
    private = arbiter_values.get("Private_Dirty", 0) + sum(w.get("Private_Dirty", 0) for w in workers)
    return {
        "total_mib": _mib(total),
        "arbiter_mib": _mib(arbiter_values.get("Pss", 0)),
        "workers_mib": [_mib(w.get("Pss", 0)) for w in workers],
        "private_dirty_mib": _mib(private),
        "processes": 1 + len(workers),
    }


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)
