"""Fuzzing ``podpreset migrate``: any object is converted into a valid preset, or refused with
problems naming field and place, never an exception; through the CLI, a status and one message."""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path
from typing import Any

from hostile import FUZZ, Pairs, encode, hostile_values, mutated
from hypothesis import example, given
from hypothesis import strategies as st

from presets.migrate import MigrationError, migrate_document
from presets.model import parse_preset
from webhook.cli import main

PODDEFAULT: dict[str, Any] = {
    "apiVersion": "kubeflow.org/v1alpha1",
    "kind": "PodDefault",
    "metadata": {"name": "gcp", "namespace": "team", "labels": {"a": "b"}, "finalizers": ["x/y"]},
    "spec": {
        "selector": {"matchLabels": {"gcp": "true"}},
        "desc": "credentials",
        "env": [{"name": "A", "value": "1"}],
        "envFrom": [{"secretRef": {"name": "s"}}],
        "volumes": [{"name": "key", "secret": {"secretName": "key"}}],
        "volumeMounts": [{"name": "key", "mountPath": "/key"}],
        "tolerations": [{"key": "gpu", "operator": "Exists"}],
        "imagePullSecrets": [{"name": "registry"}],
        "labels": {"x": "y"},
        "annotations": {"n": "m"},
        "serviceAccountName": "editor",
        "automountServiceAccountToken": False,
        "command": ["run"],
        "args": ["--x"],
        "sidecars": [{"name": "proxy", "image": "envoy"}],
        "initContainers": [{"name": "setup", "image": "busybox"}],
    },
}
REDHAT: dict[str, Any] = {
    "apiVersion": "redhatcop.redhat.io/v1alpha1",
    "kind": "PodPreset",
    "metadata": {"name": "proxy", "namespace": "shop"},
    "spec": {
        "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]},
        "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        "volumes": [{"name": "ca", "configMap": {"name": "ca"}}],
        "volumeMounts": [{"name": "ca", "mountPath": "/ca"}],
    },
}
SETTINGS: dict[str, Any] = {**REDHAT, "apiVersion": "settings.k8s.io/v1alpha1"}
originals = st.one_of(mutated(PODDEFAULT), mutated(REDHAT), mutated(SETTINGS), hostile_values)


@FUZZ
@given(obj=originals, namespace=st.sampled_from([None, "team", "other"]))
@example(obj=PODDEFAULT, namespace=None)
def test_any_object_becomes_a_valid_preset_or_problems_naming_the_field(
    obj: object, namespace: str | None
) -> None:
    if isinstance(obj, Pairs):
        obj = dict(obj)
    before = copy.deepcopy(obj)
    try:
        result = migrate_document(obj, namespace=namespace)
    except MigrationError as exc:
        assert exc.problems
        for field, problem in exc.problems:
            assert isinstance(field, str) and problem and "\n" not in problem, exc.problems
        return
    finally:
        assert repr(obj) == repr(before), "migrate_document changed its input"
    if result.converted is not None:
        parse_preset(copy.deepcopy(result.converted), source="f", document=1, default_namespace="default")
    for dropped in result.dropped:
        assert dropped.field.startswith(("spec", "metadata.")) and dropped.why


@FUZZ
@given(docs=st.lists(originals, min_size=1, max_size=3), strict=st.booleans())
def test_the_cli_answers_any_file_with_a_status_and_messages_never_a_traceback(
    tmp_path_factory: Any, docs: list[Any], strict: bool
) -> None:
    path = Path(tmp_path_factory.mktemp("migrate")) / "in.json"
    path.write_bytes(encode({"apiVersion": "v1", "kind": "List", "items": docs}))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["migrate", "-f", str(path), *(["--strict"] if strict else [])])
    assert status in (0, 1, 2), err.getvalue()
    assert "Traceback" not in err.getvalue()
    if status != 0:
        assert out.getvalue() == "" and err.getvalue().strip()
