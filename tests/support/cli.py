"""The ``podpreset`` command as a user runs it: a real process, from the repository's top."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    *args: object, stdin: str | None = None, cwd: Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``podpreset ARGS`` (as ``python -m webhook.cli``) with its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


HEAVY_MODULES = ("flask", "kubernetes", "gunicorn", "werkzeug")


def heavy_modules_imported_by(*args: object) -> list[str]:
    """Which of ``HEAVY_MODULES`` ``podpreset ARGS`` imports, run in a fresh interpreter with its
    standard output discarded (its errors show in the assertion if it fails)."""
    argv = list(map(str, args))
    code = (
        "import contextlib, io, json, sys; from webhook.cli import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()): rc = main({argv!r})\n"
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules])); sys.exit(rc)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    heavy: list[str] = json.loads(result.stdout)
    return heavy
