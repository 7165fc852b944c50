"""``podpreset migrate`` as a user runs it: output, the dropped-field lines, exit codes, bad input.

The folders under ``tests/migrate`` are worked examples: ``original.yaml`` (objects of the other
injectors), ``migrated.yaml`` (what migrate prints) and ``stderr.txt`` (every field it names),
read and checked by hand against the peers' Go types; one test drives them all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cli import heavy_modules_imported_by, run_cli

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = ROOT / "tests" / "migrate"
CASES = sorted(p for p in CASES_DIR.iterdir() if p.is_dir())

PODDEFAULT = """
apiVersion: kubeflow.org/v1alpha1
kind: PodDefault
metadata: {name: gcp, namespace: shop}
spec:
  selector: {matchLabels: {gcp: "true"}}
  env: [{name: GOOGLE_APPLICATION_CREDENTIALS, value: /secret/key.json}]
  volumes: [{name: key, secret: {secretName: gcp-key}}]
  volumeMounts: [{name: key, mountPath: /secret}]
  serviceAccountName: editor
"""
SETTINGS = """
apiVersion: settings.k8s.io/v1alpha1
kind: PodPreset
metadata: {name: db}
spec:
  selector: {matchLabels: {role: frontend}}
  env: [{name: DB_PORT, value: "6379"}]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_worked_examples_print_the_expected_objects_and_name_every_dropped_field(case, tmp_path):
    result = run_cli("migrate", "-f", "original.yaml", cwd=case)
    assert result.returncode == 0, result.stderr
    assert list(yaml.safe_load_all(result.stdout)) == list(
        yaml.safe_load_all((case / "migrated.yaml").read_text())
    )
    assert result.stderr == (case / "stderr.txt").read_text()
    out = write(tmp_path, "migrated.yaml", result.stdout)
    checked = run_cli("validate", out)
    assert checked.returncode == 0, checked.stdout
    again = run_cli("migrate", "-f", out)
    assert again.returncode == 0 and again.stdout == result.stdout, "migrating migrated output changed it"


def test_dropped_fields_are_named_on_stderr_one_line_each_and_the_exit_status_is_0(tmp_path):
    result = run_cli("migrate", "-f", write(tmp_path, "pd.yaml", PODDEFAULT))
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"{tmp_path / 'pd.yaml'}: document 1 (gcp): spec.serviceAccountName: not expressible in "
        "podpreset.dev/v1: a PodPreset never changes which ServiceAccount a pod runs as; set "
        "spec.serviceAccountName in the workload's pod template"
    )
    assert lines[1] == "1 object(s) converted, 1 field(s) not expressible"
    preset = yaml.safe_load(result.stdout)
    assert preset["spec"]["env"] == [{"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/secret/key.json"}]


def test_strict_exits_1_and_prints_nothing_when_a_field_is_dropped(tmp_path):
    result = run_cli("migrate", "--strict", "-f", write(tmp_path, "pd.yaml", PODDEFAULT))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "spec.serviceAccountName: not expressible" in result.stderr
    assert result.stderr.splitlines()[-1].endswith("--strict: nothing printed")


def test_strict_exits_1_when_an_object_is_left_out_with_nothing_to_inject(tmp_path):
    text = "apiVersion: kubeflow.org/v1alpha1\nkind: PodDefault\nmetadata: {name: x}\nspec: {desc: nothing}\n"
    assert run_cli("migrate", "-f", write(tmp_path, "pd.yaml", text)).returncode == 0
    result = run_cli("migrate", "--strict", "-f", tmp_path / "pd.yaml")
    assert result.returncode == 1 and result.stdout == ""
    assert "(x): not converted: nothing it injects" in result.stderr


def test_strict_exits_0_when_everything_is_expressed(tmp_path):
    result = run_cli("migrate", "--strict", "-f", write(tmp_path, "db.yaml", SETTINGS))
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["apiVersion"] == "podpreset.dev/v1"


def test_standard_input_a_directory_and_the_namespace_flag(tmp_path):
    piped = run_cli("migrate", "-f", "-", "-n", "shop", stdin=SETTINGS)
    assert piped.returncode == 0, piped.stderr
    assert yaml.safe_load(piped.stdout)["metadata"] == {"name": "db", "namespace": "shop"}
    folder = tmp_path / "presets"
    folder.mkdir()
    write(folder, "a.yaml", SETTINGS)
    write(folder, "b.yml", PODDEFAULT)
    write(folder, "notes.txt", "not read")
    result = run_cli("migrate", "-f", folder)
    assert result.returncode == 0, result.stderr
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(result.stdout)] == ["db", "gcp"]


def test_json_output_is_one_object_or_a_list_kubectl_applies(tmp_path):
    one = run_cli("migrate", "-o", "json", "-f", write(tmp_path, "db.yaml", SETTINGS))
    assert json.loads(one.stdout)["kind"] == "PodPreset"
    both = run_cli(
        "migrate", "-o", "json", "-f", tmp_path / "db.yaml", "-f", write(tmp_path, "pd.yaml", PODDEFAULT)
    )
    listed = json.loads(both.stdout)
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["db", "gcp"]


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        pytest.param("bad.yaml", "a: [\n", "bad.yaml: invalid YAML at line 2 column 1", id="invalid-yaml"),
        pytest.param(
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            "cm.yaml: document 1 (x): apiVersion 'v1' kind 'ConfigMap' is not one migrate reads",
            id="other-kind",
        ),
        pytest.param(
            "env.yaml",
            "apiVersion: kubeflow.org/v1alpha1\nkind: PodDefault\nmetadata: {name: x}\nspec: {env: {A: b}}\n",
            "env.yaml: document 1 (x): spec.env: expected a list, got a mapping",
            id="env-a-mapping",
        ),
        pytest.param(
            "noname.yaml",
            "apiVersion: settings.k8s.io/v1alpha1\nkind: PodPreset\nmetadata: {}\nspec: {env: []}\n",
            "noname.yaml: document 1: metadata.name: required",
            id="no-name",
        ),
        pytest.param(
            "long.yaml",
            "apiVersion: redhatcop.redhat.io/v1alpha1\nkind: PodPreset\nmetadata: {name: " + "a" * 60 + "}\n"
            "spec: {env: [{name: A, value: b}]}\n",
            "long.yaml: document 1 (" + "a" * 60 + "): metadata.name: cannot be converted: is 60 characters",
            id="name-too-long",
        ),
        pytest.param(
            "list.yaml",
            "- a\n- b\n",
            "list.yaml: document 1: expected an object (a mapping), got a list",
            id="not-a-mapping",
        ),
        pytest.param("empty.yaml", "", "empty.yaml: no documents found", id="empty"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_file_document_and_problem(tmp_path, name, text, line):
    result = run_cli("migrate", "-f", name, cwd=write(tmp_path, name, text).parent)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("podpreset migrate: " + line), result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_several_bad_objects_are_each_named_and_nothing_is_printed(tmp_path):
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n" + SETTINGS + "---\n" + SETTINGS
    result = run_cli("migrate", "-f", write(tmp_path, "mixed.yaml", text))
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert "document 1 (s): apiVersion 'v1' kind 'Secret'" in lines[0]
    assert "document 3 (db): metadata.name: becomes the same PodPreset db as " in lines[1]
    assert lines[1].endswith("mixed.yaml: document 2 (db); rename one of them")
    assert lines[-1] == "podpreset migrate: 2 problems; nothing was converted"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(
            ["-f", "/nonexistent/presets"],
            "/nonexistent/presets: no such file or directory",
            id="missing-file",
        ),
        pytest.param(
            ["-f", "-", "-n", "Not_A_Namespace"],
            "-n 'Not_A_Namespace': a namespace is a DNS label",
            id="bad-namespace",
        ),
        pytest.param(
            ["-f", "-", "--context", "x"],
            "--context: only with --kubeconfig",
            id="context-without-kubeconfig",
        ),
        pytest.param(
            ["--kubeconfig", "/nonexistent/config"],
            "--kubeconfig /nonexistent/config: no such file",
            id="missing-kubeconfig",
        ),
        pytest.param([], "one of the arguments -f/--filename --kubeconfig is required", id="neither"),
    ],
)
def test_usage_errors_exit_2_without_a_traceback(args, says):
    result = run_cli("migrate", *args, stdin=SETTINGS)
    assert result.returncode == 2
    assert says in result.stderr and "Traceback" not in result.stderr


def test_migrate_from_files_imports_neither_flask_nor_the_kubernetes_client(tmp_path):
    path = write(tmp_path, "pd.yaml", PODDEFAULT)
    assert heavy_modules_imported_by("migrate", "-f", path) == []


# The migrated preset does to a pod what the original did.

POD = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {role: frontend, gcp: "true"}}
spec:
  initContainers: [{name: setup, image: busybox}]
  containers:
  - {name: app, image: nginx, env: [{name: MODE, value: prod}]}
  - {name: sidecar, image: envoy}
"""


def applied(presets: Path, pod: Path) -> dict[str, Any]:
    result = run_cli("apply", "-f", presets, "-n", "shop", pod)
    assert result.returncode == 0, result.stderr
    mutated: dict[str, Any] = yaml.safe_load(result.stdout)
    return mutated


def test_a_migrated_settings_preset_applies_to_a_pod_exactly_as_the_original_does(tmp_path):
    original = write(
        tmp_path, "original.yaml", (CASES_DIR / "settings-k8s-io-preset" / "original.yaml").read_text()
    )
    migrated = write(tmp_path, "migrated.yaml", run_cli("migrate", "-f", original).stdout)
    pod = write(tmp_path, "pod.yaml", POD)
    before, after = applied(original, pod), applied(migrated, pod)
    assert after == before
    assert [e["name"] for e in after["spec"]["initContainers"][0]["env"]] == ["DB_PORT"]


def test_a_migrated_poddefault_injects_what_the_poddefault_did_into_containers_but_not_init_containers(
    tmp_path,
):
    migrated = write(
        tmp_path, "migrated.yaml", run_cli("migrate", "-f", write(tmp_path, "pd.yaml", PODDEFAULT)).stdout
    )
    pod = applied(migrated, write(tmp_path, "pod.yaml", POD))
    # What kubeflow's applyPodDefaultsOnPod gives for this pod, worked out by hand from main.go:
    # env and mounts appended to every container, none to init containers, the volume to the pod.
    credentials = {"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/secret/key.json"}
    mount = {"name": "key", "mountPath": "/secret"}
    app, sidecar = pod["spec"]["containers"]
    assert app["env"] == [{"name": "MODE", "value": "prod"}, credentials]
    assert sidecar["env"] == [credentials]
    assert app["volumeMounts"] == sidecar["volumeMounts"] == [mount]
    assert (
        "env" not in pod["spec"]["initContainers"][0]
        and "volumeMounts" not in pod["spec"]["initContainers"][0]
    )
    assert pod["spec"]["volumes"] == [{"name": "key", "secret": {"secretName": "gcp-key"}}]
