"""Hostile YAML and JSON: alias bombs, recursive aliases, deep nesting, huge files and documents.

Every reader refuses them quickly with one line naming the file and the bound: the CLI's loaders
(``validate``, ``apply``, ``review``), the file source's reload, and ``/mutate``. A bomb that is
not refused runs for minutes and grows without bound, so each reader runs with a deadline.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from support.cli import run_cli

from presets.limits import LimitExceeded, Meter, within_depth
from webhook.server.app import create_app
from webhook.settings import Settings
from webhook.sources.documents import SourceError, parse_documents
from webhook.sources.files import FileSource
from webhook.sources.snapshot import StaticSource

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"
DEADLINE = 30.0
"""Far above the fraction of a second a refusal takes; a bomb that is expanded runs for minutes."""

GOOD = """\
apiVersion: podpreset.dev/v1
kind: PodPreset
metadata: {name: good}
spec:
  env: [{name: A, value: "1"}]
"""


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """About 1 KB: each level is a list of ``width`` aliases of the level below."""
    lines = ["apiVersion: podpreset.dev/v1", "kind: PodPreset", "metadata: {name: bomb}", "spec:", "  x:"]
    lines.append("    l0: &l0 [" + ", ".join(['"x"'] * width) + "]")
    for level in range(1, levels):
        lines.append(f"    l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    lines.append("  env: [{name: A, value: '1'}]")
    return "\n".join(lines) + "\n"


def deep_yaml(levels: int) -> str:
    return (
        "apiVersion: podpreset.dev/v1\nkind: PodPreset\nmetadata: {name: deep}\nspec: "
        + ("[" * levels + "]" * levels)
        + "\n"
    )


HOSTILE = [
    pytest.param(
        "bomb.yaml", alias_bomb(), "larger than 8 MiB with its YAML aliases expanded", id="alias-bomb"
    ),
    pytest.param(
        "small-bomb.yaml",
        alias_bomb(levels=6, width=9),
        "larger than 1.5 MiB with its YAML aliases expanded",
        id="alias-bomb-under-the-file-bound",
    ),
    pytest.param("self.yaml", "a: &a [x, *a]\n", "contains itself", id="recursive-alias"),
    pytest.param("deep.yaml", deep_yaml(150), "nests deeper than 100 levels", id="deep-yaml"),
    pytest.param("deep.json", "[" * 5000 + "]" * 5000, "nests deeper than 100 levels", id="deep-json"),
    pytest.param(
        "huge-document.yaml",
        GOOD + "  x: '" + "a" * (2 * 1024 * 1024) + "'\n",
        "document 1: larger than 1.5 MiB",
        id="huge-document",
    ),
    pytest.param(
        "huge-file.yaml", "# " + "a" * (9 * 1024 * 1024) + "\n", "larger than 8 MiB", id="huge-file"
    ),
    pytest.param(
        "surrogate.json",
        '{"apiVersion": "podpreset.dev/v1", "kind": "PodPreset", "metadata": {"name": "s"},'
        ' "spec": {"env": [{"name": "A", "value": "\\ud800"}]}}',
        "spec.env[0].value: holds a lone UTF-16 surrogate (U+D800)",
        id="lone-surrogate-value",
    ),
    pytest.param(
        "surrogate-key.json",
        '{"apiVersion": "podpreset.dev/v1", "kind": "PodPreset", "metadata": {"name": "s"},'
        ' "spec": {"x\\udc00": 1}}',
        "key 'x\\udc00': holds a lone UTF-16 surrogate (U+DC00)",
        id="lone-surrogate-key",
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), HOSTILE)
def test_validate_refuses_hostile_input_quickly_naming_the_file(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    result = run_cli("validate", path, timeout=DEADLINE)
    assert result.returncode == 1, result
    assert f"{path}: " in result.stdout and message in result.stdout, result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("name", "text", "message"), HOSTILE)
def test_apply_and_review_refuse_hostile_presets_and_objects(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    pod = EXAMPLES / "pods" / "web.yaml"
    for args in (
        ("apply", "-f", path, pod),
        ("review", "-f", path, EXAMPLES / "pods" / "review.json"),
        ("apply", "-f", EXAMPLES, path),
        ("review", "-f", EXAMPLES, path),
    ):
        result = run_cli(*args, timeout=DEADLINE)
        assert result.returncode == 2, (args, result)
        assert str(path) in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        if args[0] == "review" and args[-1] == path and name.endswith(".yaml") and name != "huge-file.yaml":
            assert "invalid JSON" in result.stderr  # a review is JSON: YAML is refused before any bound
        elif args[0] == "review" and args[-1] == path and name.startswith("surrogate"):
            assert "kind: expected AdmissionReview" in result.stderr  # valid JSON, not a review
        else:
            assert message in result.stderr, (args, result.stderr)


def test_standard_input_is_bounded_like_a_file() -> None:
    result = run_cli("apply", "-f", EXAMPLES, "-", stdin="# " + "a" * (9 * 1024 * 1024), timeout=DEADLINE)
    assert result.returncode == 2
    assert "<stdin>: larger than 8 MiB" in result.stderr


def test_a_hot_reload_of_a_bomb_keeps_the_last_good_presets_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "presets.yaml"
    path.write_text(GOOD)
    source = FileSource([str(tmp_path)], interval=3600)
    source.start()
    try:
        assert len(source.snapshot().index) == 1
        path.write_text(alias_bomb())
        reloaded = threading.Thread(target=source.reload, daemon=True)
        reloaded.start()
        reloaded.join(DEADLINE)
        assert not reloaded.is_alive(), "reloading an alias bomb did not finish"
        snapshot = source.snapshot()
        assert len(snapshot.index) == 1
        assert snapshot.problems == (f"{path}: document 1: larger than 8 MiB with its YAML aliases expanded",)
    finally:
        source.stop()


def test_a_list_whose_items_share_one_anchor_is_bounded_as_a_whole() -> None:
    # Each item is under the 1.5 MiB bound of one object; together they pass the file's 8 MiB.
    item = "{apiVersion: podpreset.dev/v1, kind: PodPreset, metadata: {name: p}, spec: {x: *big}}"
    text = "kind: List\nbig: &big '" + "a" * (1400 * 1024) + "'\nitems: [" + ", ".join([item] * 6) + "]\n"
    with pytest.raises(SourceError, match=r"^list.yaml: document 1: larger than 8 MiB with its YAML"):
        parse_documents(text, "list.yaml")
    assert len(parse_documents(text.replace(", ".join([item] * 6), item), "list.yaml")) == 1


def test_the_meter_counts_shared_nodes_everywhere_they_appear_and_walks_them_once() -> None:
    shared = ["x" * 100]
    value = {"a": shared, "b": shared, "c": [shared, shared]}
    size = Meter().measure(value, max_bytes=10_000)
    assert size > 4 * 100
    with pytest.raises(LimitExceeded, match="larger than 400 bytes"):
        Meter().measure(value, max_bytes=400)


def test_depth_is_bounded_without_recursing_past_the_bound() -> None:
    value: list[object] = []
    deepest = value
    for _ in range(5000):
        deepest.append([])
        deepest = deepest[0]  # type: ignore[assignment]
    assert not within_depth(value)
    assert within_depth([[[]]], 3) and not within_depth([[[]]], 2)
    with pytest.raises(LimitExceeded, match="nests deeper than 100 levels"):
        Meter().measure(value, max_bytes=1 << 40)


@pytest.fixture
def client() -> FlaskClient:
    return create_app(Settings(insecure_http=True), StaticSource()).test_client()


@pytest.mark.parametrize("depth", [101, 1000, 5000])
def test_mutate_refuses_a_review_nested_past_the_bound_with_a_400(client: FlaskClient, depth: int) -> None:
    body = (
        b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": '
        + (b"[" * depth + b"]" * depth)
        + b"}"
    )
    response = client.post("/mutate", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json == {"error": "body: JSON nests deeper than 100 levels", "code": 400}
