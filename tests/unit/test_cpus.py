"""The default worker count follows the CPUs a container may use (cgroup quota, affinity)."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook.server import cpus
from webhook.settings import Settings


def _cgroup_v2(tmp_path: Path, cpu_max: str) -> Path:
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    return tmp_path


def _cgroup_v1(tmp_path: Path, quota: int, period: int) -> Path:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(f"{period}\n")
    return tmp_path


@pytest.mark.parametrize(
    ("cpu_max", "quota"),
    [
        pytest.param("50000 100000", 0.5, id="half-a-cpu"),
        pytest.param("250000 100000", 2.5, id="two-and-a-half"),
        pytest.param("max 100000", None, id="no-limit"),
        pytest.param("garbage", None, id="unreadable-is-no-limit"),
    ],
)
def test_cgroup_v2_cpu_max_is_read_as_cpus(tmp_path: Path, cpu_max: str, quota: float | None) -> None:
    assert cpus.quota_cpus(_cgroup_v2(tmp_path, cpu_max)) == quota


def test_cgroup_v1_quota_over_period_and_minus_one_is_no_limit(tmp_path: Path) -> None:
    (tmp_path / "limited").mkdir()
    (tmp_path / "unlimited").mkdir()
    assert cpus.quota_cpus(_cgroup_v1(tmp_path / "limited", 150000, 100000)) == 1.5
    assert cpus.quota_cpus(_cgroup_v1(tmp_path / "unlimited", -1, 100000)) is None


def test_no_cgroup_files_means_the_affinity_mask_decides(tmp_path: Path) -> None:
    assert cpus.quota_cpus(tmp_path) is None
    assert cpus.usable_cpus(tmp_path) == cpus.affinity_cpus()


@pytest.mark.parametrize(
    ("cpu_max", "workers"),
    [
        pytest.param("50000 100000", 1, id="half-a-cpu-one-worker"),
        pytest.param("100000 100000", 1, id="one-cpu-one-worker"),
        pytest.param("150000 100000", 2, id="fraction-rounds-up"),
        pytest.param("800000 100000", 2, id="capped-at-two"),
    ],
)
def test_default_workers_follow_the_quota(
    tmp_path: Path, cpu_max: str, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: 8)
    assert cpus.default_workers(_cgroup_v2(tmp_path, cpu_max)) == workers


def test_settings_default_uses_the_usable_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus, "CGROUP", Path("/nonexistent"))
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: 1)
    assert Settings().workers == 1
    assert Settings(workers=3).workers == 3
