"""The ``podpreset`` command as a user runs it: a real process, from the repository's top."""

from __future__ import annotations

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
