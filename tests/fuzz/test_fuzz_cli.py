"""Fuzzing the CLI's arguments: every command line ends with an exit status and, on error, one
clear message; never a traceback.

``main`` runs in-process with its standard streams replaced. ``serve`` is fuzzed up to its
settings (flags and ``PODPRESET_*`` variables): past them it would start a server.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest
from hostile import FUZZ, unicode_text
from hypothesis import example, given
from hypothesis import strategies as st

from webhook.cli import build_parser, main
from webhook.settings import ENV_VARS, SettingsError, settings_from_args

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"
FILES = [
    str(EXAMPLES),
    str(EXAMPLES / "pods" / "web.yaml"),
    str(EXAMPLES / "pods" / "review.json"),
    str(EXAMPLES / "app-config.yaml"),
    str(ROOT / "pyproject.toml"),
    str(ROOT / "no-such-file.yaml"),
    str(ROOT / "README.md"),
    "/dev/null",
    "/",
    "-",
]
TOKENS = st.one_of(
    st.sampled_from(
        ["apply", "review", "validate", "migrate", "-f", "--filename", "-n", "--namespace", "-o"]
    ),
    st.sampled_from(
        ["yaml", "json", "patch", "xml", "--explain", "--strict", "--", "-x", "--protected", "", " "]
    ),
    st.sampled_from(FILES),
    unicode_text.filter(lambda t: "\x00" not in t),
)
STDIN = st.one_of(
    st.sampled_from([b"", b"{}", b"[]", b"null", b"kind: Pod", b"\xff\xfe", b"{" * 2000]),
    st.sampled_from(list(FILES[1:4])).map(lambda p: Path(p).read_bytes()),
    st.binary(max_size=200),
)


def run_main(argv: list[str], stdin: bytes) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    stdin_stream = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    saved = sys.stdin
    sys.stdin = stdin_stream
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
                status = exc.code if isinstance(exc.code, int) else 2
    finally:
        sys.stdin = saved
    return status, out.getvalue(), err.getvalue()


@FUZZ
@given(argv=st.lists(TOKENS, max_size=7), stdin=STDIN)
@example(argv=["apply", "-f", str(EXAMPLES), "-"], stdin=b"\xff\xfe")
@example(argv=["review", "-f", str(EXAMPLES), "-"], stdin=b"{" * 2000)
@example(argv=["validate", "/"], stdin=b"")
def test_any_command_line_ends_with_a_status_and_a_message_never_a_traceback(
    argv: list[str], stdin: bytes
) -> None:
    if argv and argv[0] == "serve":
        return
    status, out, err = run_main(argv, stdin)
    assert status in (0, 1, 2), (argv, status, err)
    assert "Traceback" not in err and "Traceback" not in out
    if status == 2:
        assert err.strip(), (argv, "no message for a usage error")
        assert len(err.strip().splitlines()) <= 40  # argparse's usage + one line, or a problem list


@FUZZ
@given(
    argv=st.lists(
        st.sampled_from(
            [
                "--workers",
                "--threads",
                "--bind",
                "--health-bind",
                "--handshake-timeout",
                "--tls-min-version",
                "--client-ca",
                "--max-decoding-bytes",
                "--max-body-bytes",
                "--graceful-timeout",
                "--keepalive",
                "--reload-interval",
                "--log-format",
                "--log-level",
                "-f",
                "--tls-cert",
                "--tls-key",
                "--kubeconfig",
            ]
        )
        | st.sampled_from(
            ["0", "-1", "1", "2.5", "nan", "inf", "1e999", "127.0.0.1:0", ":", "[::1]:8443", "x"]
        )
        | st.sampled_from(FILES)
        | unicode_text.filter(lambda t: "\x00" not in t),
        max_size=8,
    ),
    env=st.dictionaries(
        st.sampled_from(sorted(ENV_VARS.values())), unicode_text.filter(lambda t: "\x00" not in t), max_size=3
    ),
)
@example(argv=[], env={"PODPRESET_TLS_CERT": "\n", "PODPRESET_TLS_KEY": "0"})  # found: a 2-line error
def test_serve_settings_from_any_flags_and_variables_are_settings_or_one_clear_error(
    argv: list[str], env: dict[str, str]
) -> None:
    parser = build_parser(with_serve=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = parser.parse_args(["serve", *argv])
        except SystemExit as exc:
            assert exc.code == 2 and "usage:" in err.getvalue()
            return
    try:
        settings_from_args(args, env)
    except SettingsError as exc:
        assert str(exc) and "\n" not in str(exc).strip(), exc


@pytest.mark.parametrize("argv", [["--help"], ["apply", "--help"], []])
def test_help_and_no_command_exit_cleanly(argv: list[str]) -> None:
    status, out, err = run_main(argv, b"")
    assert status in (0, 2) and (out or err)
