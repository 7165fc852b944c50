"""Imports go one way: cli -> server | controller -> observe -> sources -> presets.

Beside the purity test (which keeps ``presets/`` free of I/O), this one keeps ``webhook/``'s
packages layered: each module's imports of ``webhook.*`` and ``presets`` are parsed with ``ast``
(imports inside functions and under ``TYPE_CHECKING`` count too) and checked against the parts
its package may use. ``settings`` is the serving configuration, shared by the server, the
controller and the CLI; it takes its default worker count from ``server.cpus``.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MAY_IMPORT = {
    "cli": {"server", "controller", "sources", "observe", "settings", "presets"},
    "server": {"sources", "observe", "settings", "presets"},
    "controller": {"sources", "observe", "settings", "presets"},
    "observe": {"sources", "presets"},
    "sources": {"presets"},
    "settings": {"server.cpus", "presets"},
    "package": set(),
    "presets": set(),
}


def part_of(module: str) -> str:
    """``webhook.server.app`` -> ``server``; ``webhook.cli`` -> ``cli``; ``presets.engine`` -> ``presets``."""
    names = module.split(".")
    if names[0] == "presets":
        return "presets"
    if len(names) == 1:
        return "package"
    return names[1]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] in {"webhook", "presets"}}


def allowed(importer: str, imported: str) -> bool:
    own, other = part_of(importer), part_of(imported)
    if own == other:
        return True
    rest = imported.removeprefix("webhook.")
    return any(rest == part or rest.startswith(f"{part}.") for part in MAY_IMPORT[own])


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted([*(ROOT / "webhook").rglob("*.py"), *(ROOT / "presets").rglob("*.py")])


def test_every_module_belongs_to_a_known_part():
    assert {part_of(module_name(path)) for path in MODULES} <= set(MAY_IMPORT)
    assert {"cli", "server", "sources", "observe", "settings", "presets"} <= {
        part_of(module_name(path)) for path in MODULES
    }


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_one_way(path):
    importer = module_name(path)
    wrong = sorted(name for name in imports_of(path) if not allowed(importer, name))
    assert not wrong, f"{path.relative_to(ROOT)} ({part_of(importer)}) imports {wrong}"


@pytest.mark.parametrize(
    ("importer", "imported", "ok"),
    [
        pytest.param("webhook.cli", "webhook.server.serve.run_serve", True, id="cli-uses-the-server"),
        pytest.param("webhook.server.app", "webhook.observe.metrics.Metrics", True, id="server-uses-observe"),
        pytest.param("webhook.observe.metrics", "webhook.sources.health", True, id="observe-reads-sources"),
        pytest.param("webhook.sources.kube", "webhook.observe.metrics", False, id="sources-never-observe"),
        pytest.param("webhook.sources.kube", "webhook.server.app", False, id="sources-never-server"),
        pytest.param("webhook.controller.lease", "webhook.server.app", False, id="controller-never-server"),
        pytest.param("webhook.server.serve", "webhook.controller.run", False, id="server-never-controller"),
        pytest.param("webhook.server.app", "webhook.cli.main", False, id="nothing-imports-the-cli"),
        pytest.param("webhook.settings", "webhook.sources.kube", False, id="settings-only-cpus"),
        pytest.param("presets.engine", "webhook.settings.Settings", False, id="presets-never-webhook"),
    ],
)
def test_the_rule_reads_as_the_picture(importer, imported, ok):
    assert allowed(importer, imported) is ok
