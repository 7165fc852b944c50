"""``podpreset rollout``'s input errors: one line on stderr, exit 2, never a traceback.

What a pass does against a real API server is tests/e2e/test_rollout_pass_on_the_api_server.py's.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", "rollout", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )


def kubeconfig(path: Path, server: str) -> str:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{server}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
"""
    )
    return str(path)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["--kubeconfig", "/nonexistent/kc"], "--kubeconfig /nonexistent/kc: no such file", id="missing"
        ),
        pytest.param(["--context", "x"], "--context: only with --kubeconfig", id="context-alone"),
        pytest.param(
            ["-n", "Not_A_Namespace", "--kubeconfig", "k"],
            "-n 'Not_A_Namespace': a namespace is a DNS label",
            id="bad-namespace",
        ),
        pytest.param([], "in-cluster configuration (no --kubeconfig)", id="not-in-a-cluster"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args, expected):
    result = run(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_kubeconfig_that_is_not_yaml_is_named(tmp_path):
    bad = tmp_path / "kc"
    bad.write_text("clusters: [\n")
    result = run("--kubeconfig", str(bad), "--dry-run")
    assert result.returncode == 2
    assert result.stderr.startswith(f"podpreset rollout: --kubeconfig {bad}: ")
    assert "Traceback" not in result.stderr


def test_an_unreachable_server_is_named_with_why(tmp_path):
    server = f"https://127.0.0.1:{closed_port()}"
    result = run("--kubeconfig", kubeconfig(tmp_path / "kc", server), "--dry-run")
    assert result.returncode == 2
    assert result.stderr.startswith(f"podpreset rollout: cannot reach the API server at {server}: ")
    assert "Connection refused" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_the_rate_limit_must_be_at_least_one():
    result = run("--rollout-per-minute", "0")
    assert result.returncode == 2
    assert "must be at least 1, got '0'" in result.stderr
