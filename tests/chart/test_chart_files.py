"""The chart's files: its version against the package's, its CRDs against deploy/crd, helm lint."""

from __future__ import annotations

import tomllib

import pytest
import yaml

from .helm import CHART, RENDERINGS, TOP, run_helm, values_file


def test_the_charts_app_version_is_the_packages_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    package = tomllib.loads((TOP / "pyproject.toml").read_text())["project"]["version"]
    assert chart["appVersion"] == package


def test_the_charts_crds_are_deploys_byte_for_byte() -> None:
    deploy = sorted(p.name for p in (TOP / "deploy" / "crd").glob("*.podpreset.dev.yaml"))
    chart = sorted(p.name for p in (CHART / "crds").iterdir())
    assert chart == deploy
    for name in deploy:
        assert (CHART / "crds" / name).read_bytes() == (TOP / "deploy" / "crd" / name).read_bytes(), (
            f"charts/podpreset/crds/{name} differs from deploy/crd/{name}: run make crd"
        )


@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_helm_lint_strict_passes(rendering: str) -> None:
    done = run_helm(
        "lint",
        "--strict",
        str(CHART),
        "--namespace",
        "podpreset-system",
        "--values",
        values_file(RENDERINGS[rendering]),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout
