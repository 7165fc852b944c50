"""presets/ stays pure: no module imports I/O, frameworks, clients, threads or logging setup."""

import ast
from pathlib import Path

import pytest

PRESETS = Path(__file__).resolve().parents[2] / "presets"
FORBIDDEN = {
    "flask",
    "werkzeug",
    "gunicorn",
    "kubernetes",
    "socket",
    "requests",
    "urllib3",
    "http",
    "urllib",
    "threading",
    "multiprocessing",
    "asyncio",
    "subprocess",
    "logging",
    "os",
    "io",
    "pathlib",
    "yaml",
    "prometheus_client",
    "webhook",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


MODULES = sorted(PRESETS.glob("*.py"))


def test_the_engine_has_modules_to_check():
    assert {p.name for p in MODULES} >= {"model.py", "merge.py", "engine.py", "selector.py", "admission.py"}


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_module_imports_nothing_that_does_io(module):
    offending = {name for name in imported_modules(module) if name.split(".")[0] in FORBIDDEN}
    assert not offending, f"presets/{module.name} imports {sorted(offending)}; presets/ must stay sans-IO"


def test_the_check_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import threading\nfrom kubernetes import client\n")
    assert {n.split(".")[0] for n in imported_modules(bad)} & FORBIDDEN == {"threading", "kubernetes"}


def test_the_package_says_it_is_sans_io():
    doc = ast.get_docstring(ast.parse((PRESETS / "__init__.py").read_text()))
    assert doc and "cannot do any I/O" in doc
