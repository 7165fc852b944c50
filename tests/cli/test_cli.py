"""The podpreset CLI as a user runs it: a real process, its output, exit codes and messages."""

import json
from pathlib import Path

import pytest
import yaml
from support.cli import heavy_modules_imported_by, run_cli
from support.reviews import admission_review

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"
WEB_POD = EXAMPLES / "pods" / "web.yaml"
REVIEW = EXAMPLES / "pods" / "review.json"

PRESET = """
apiVersion: podpreset.dev/v1
kind: PodPreset
metadata: {name: proxy}
spec:
  selector: {matchLabels: {app: web}}
  env: [{name: HTTPS_PROXY, value: "http://proxy:3128"}]
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_apply_prints_the_mutated_pod_as_yaml():
    result = run_cli("apply", "-f", EXAMPLES, WEB_POD)
    assert result.returncode == 0, result.stderr
    pod = yaml.safe_load(result.stdout)
    web = pod["spec"]["containers"][0]
    assert [e["name"] for e in web["env"]][:2] == ["LOG_LEVEL", "DB_HOST"]
    assert pod["spec"]["initContainers"][0]["envFrom"] == [
        {"configMapRef": {"name": "app-settings"}, "prefix": "APP_"}
    ]
    assert {t["key"] for t in pod["spec"]["tolerations"]} == {"nvidia.com/gpu", "pool"}
    assert "&id" not in result.stdout


def test_apply_explain_says_why_each_preset_did_or_did_not_apply(tmp_path):
    pod = yaml.safe_load(WEB_POD.read_text())
    pod["metadata"]["labels"] = {"tier": "batch", "egress": "direct"}
    pod_file = write(tmp_path, "pod.yaml", yaml.safe_dump(pod))
    result = run_cli("apply", "-f", EXAMPLES, pod_file, "--explain")
    assert result.returncode == 0
    assert "db-credentials: not selected: the pod's labels do not satisfy role=db-client" in result.stderr
    assert "app-config: not selected: the pod's labels do not satisfy tier in (api,web)" in result.stderr
    assert "pod-info: applied; adds 2 env, 1 volumeMounts, 1 volumes" in result.stderr
    assert "proxy: not selected" in result.stderr and "egress notin (direct)" in result.stderr


def test_apply_explain_points_at_the_namespace_when_presets_live_elsewhere(tmp_path):
    presets = write(tmp_path, "p.yaml", PRESET.replace("{name: proxy}", "{name: proxy, namespace: team-a}"))
    pod = write(
        tmp_path,
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x, labels: {app: web}}\n"
        "spec: {containers: [{name: c, image: i}]}\n",
    )
    result = run_cli("apply", "-f", presets, pod, "--explain")
    assert result.returncode == 0
    assert "presets exist only in namespace(s) team-a" in result.stderr
    assert run_cli("apply", "-n", "team-a", "-f", presets, pod, "-o", "json").stdout.count("HTTPS_PROXY") == 1


@pytest.mark.parametrize(
    ("policy", "explained"),
    [
        pytest.param(
            "",
            (
                "conflict: podpreset 'proxy' conflicts on container 'c': env var 'HTTPS_PROXY'",
                "admitted unchanged",
            ),
            id="skipped",
        ),
        pytest.param(
            "\n  onConflict: Reject",
            (
                "proxy: selected, but conflicts (Reject: the pod is refused)",
                "result: the pod is refused (HTTP 409)",
            ),
            id="refused",
        ),
    ],
)
def test_apply_explain_reports_a_conflict_and_prints_the_pod_unchanged(tmp_path, policy, explained):
    presets = write(tmp_path, "p.yaml", PRESET.replace("spec:", "spec:" + policy))
    pod_text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x, labels: {app: web}}\n"
        "spec: {containers: [{name: c, image: i, env: [{name: HTTPS_PROXY, value: other}]}]}\n"
    )
    result = run_cli("apply", "-f", presets, write(tmp_path, "pod.yaml", pod_text), "--explain")
    assert result.returncode == 0
    assert yaml.safe_load(result.stdout) == yaml.safe_load(pod_text)
    for line in explained:
        assert line in result.stderr
    assert "other" not in result.stderr


@pytest.mark.parametrize(
    ("kind", "template_path"),
    [
        ("Deployment", ["spec", "template"]),
        ("StatefulSet", ["spec", "template"]),
        ("DaemonSet", ["spec", "template"]),
        ("ReplicaSet", ["spec", "template"]),
        ("Job", ["spec", "template"]),
        ("CronJob", ["spec", "jobTemplate", "spec", "template"]),
    ],
)
def test_apply_mutates_a_workloads_pod_template(tmp_path, kind, template_path):
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    obj = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w", "namespace": "default"}}
    node = obj
    for part in template_path[:-1]:
        node = node.setdefault(part, {})
    node[template_path[-1]] = template
    obj_file = write(tmp_path, "w.json", json.dumps(obj))
    presets = write(tmp_path, "p.yaml", PRESET)
    result = run_cli("apply", "-f", presets, obj_file, "-o", "json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    for part in template_path:
        out = out[part]
    assert out["spec"]["containers"][0]["env"] == [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]
    patch = json.loads(run_cli("apply", "-f", presets, obj_file, "-o", "patch").stdout)
    prefix = "/" + "/".join(template_path)
    assert patch and all(op["path"].startswith(prefix + "/") for op in patch)


def test_apply_reads_standard_input():
    result = run_cli("apply", "-f", EXAMPLES, "-", stdin=WEB_POD.read_text())
    assert result.returncode == 0 and "DB_HOST" in result.stdout


def test_review_prints_exactly_what_mutate_returns():
    from presets.admission import PresetIndex, admit, encode_review
    from webhook.sources.documents import load_presets

    result = run_cli("review", "-f", EXAMPLES, REVIEW)
    assert result.returncode == 0, result.stderr
    expected = encode_review(
        admit(
            json.loads(REVIEW.read_text()), PresetIndex.build(load_presets([str(EXAMPLES)]).presets)
        ).response
    )
    assert result.stdout.encode() == expected
    response = json.loads(result.stdout)["response"]
    assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002" and response["patchType"] == "JSONPatch"


def test_validate_accepts_the_examples():
    result = run_cli("validate", EXAMPLES)
    assert result.returncode == 0
    assert "6 preset(s) valid" in result.stderr


def test_validate_lists_every_problem_and_exits_1(tmp_path):
    bad = write(
        tmp_path,
        "bad.yaml",
        PRESET.replace("proxy}", "a-name-that-is-far-too-long-to-fit-in-an-annotation-key-x}")
        + "---\n"
        + PRESET.replace("proxy}", "mounts}").replace(
            'env: [{name: HTTPS_PROXY, value: "http://proxy:3128"}]',
            "volumeMounts: [{name: v, mountPath: /v}]",
        ),
    )
    result = run_cli("validate", bad, EXAMPLES)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        f"{bad}: document 1 (a-name-that-is-far-too-long-to-fit-in-an-annotation-key-x): metadata.name:"
    )
    assert lines[1] == (
        f"{bad}: document 2 (mounts): spec.volumeMounts[0].name: volume 'v' is not declared in "
        "spec.volumes of this preset; add it there"
    )


def test_validate_reports_yaml_syntax_errors_with_the_line(tmp_path):
    bad = write(tmp_path, "broken.yaml", "apiVersion: podpreset.dev/v1\nkind: [PodPreset\n")
    result = run_cli("validate", bad)
    assert result.returncode == 1
    assert f"{bad}: invalid YAML at line" in result.stdout


def test_validate_reads_list_kinds_and_json(tmp_path):
    doc = yaml.safe_load(PRESET)
    listing = write(
        tmp_path, "list.json", json.dumps({"apiVersion": "v1", "kind": "List", "items": [doc, doc]})
    )
    result = run_cli("validate", listing)
    assert result.returncode == 1
    assert "document 2 (proxy): metadata.name: a preset default/proxy is already defined in" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["apply", "-f", "missing-dir", "pod.yaml"],
            "missing-dir: no such file or directory",
            id="missing-presets",
        ),
        pytest.param(
            ["apply", "-f", str(EXAMPLES), "missing.yaml"], "missing.yaml: cannot read", id="missing-object"
        ),
        pytest.param(
            ["validate", "nowhere.yaml"], "nowhere.yaml: no such file or directory", id="validate-missing"
        ),
        pytest.param(["review", "-f", str(EXAMPLES), str(WEB_POD)], "invalid JSON", id="review-of-yaml"),
    ],
)
def test_input_errors_exit_2_with_one_clear_line_and_no_traceback(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_review_of_a_non_review_exits_2(tmp_path):
    result = run_cli("review", "-f", EXAMPLES, write(tmp_path, "r.json", '{"kind": "Pod"}'))
    assert result.returncode == 2
    assert "kind: expected AdmissionReview" in result.stderr and "Traceback" not in result.stderr


def test_apply_of_a_kind_without_pod_template_exits_2(tmp_path):
    result = run_cli(
        "apply",
        "-f",
        EXAMPLES,
        write(tmp_path, "s.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"),
    )
    assert result.returncode == 2
    assert "kind 'Service' has no pod template" in result.stderr


def test_apply_with_invalid_presets_exits_2_listing_them(tmp_path):
    bad = write(tmp_path, "bad.yaml", PRESET.replace("env:", "envs:"))
    result = run_cli("apply", "-f", bad, WEB_POD)
    assert result.returncode == 2
    assert "spec.envs: unknown field" in result.stderr and "Traceback" not in result.stderr


def test_usage_errors_exit_2():
    assert run_cli("apply").returncode == 2
    assert run_cli("frobnicate").returncode == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["--kubeconfig", "/nonexistent/kubeconfig"],
            "--kubeconfig /nonexistent/kubeconfig: no such file",
            id="missing",
        ),
        pytest.param(
            ["-f", str(EXAMPLES), "--context", "prod"],
            "--context: only with --kubeconfig",
            id="context-alone",
        ),
        pytest.param(["-f", str(EXAMPLES), "--kubeconfig", "k"], "not allowed with argument", id="both"),
    ],
)
def test_apply_against_a_cluster_refuses_bad_arguments_in_one_line(argv, message):
    result = run_cli("apply", *argv, WEB_POD)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_apply_with_a_kubeconfig_whose_context_does_not_exist_says_so(tmp_path):
    config = write(
        tmp_path,
        "kubeconfig",
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
        "current-context: a\n",
    )
    result = run_cli("apply", "--kubeconfig", config, "--context", "nope", WEB_POD)
    assert result.returncode == 2
    assert f"--kubeconfig {config} (context 'nope')" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", str(EXAMPLES)],
        ["apply", "-f", str(EXAMPLES), str(WEB_POD)],
        ["review", "-f", str(EXAMPLES), str(REVIEW)],
    ],
    ids=["validate", "apply", "review"],
)
def test_offline_commands_import_neither_flask_nor_the_kubernetes_client(argv):
    assert heavy_modules_imported_by(*argv) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "spec: {env: [{name: A, value: !!binary aGVsbG8=}]}\n",
            "spec.env[0].value: a YAML bytes value",
            id="binary",
        ),
        pytest.param(
            "spec: {volumes: [{name: v, emptyDir: {sizeLimit: .inf}}]}\n",
            "sizeLimit: inf is not a number",
            id="infinity",
        ),
        pytest.param("spec: {1: x}\n", "spec: key 1 must be a string", id="integer-key"),
    ],
)
def test_yaml_values_json_cannot_carry_are_problems_with_their_field(tmp_path, text, message):
    path = write(
        tmp_path, "p.yaml", "apiVersion: podpreset.dev/v1\nkind: PodPreset\nmetadata: {name: p}\n" + text
    )
    result = run_cli("validate", path)
    assert result.returncode == 1
    assert f"{path}: document 1: " in result.stdout and message in result.stdout


def test_a_yaml_date_stays_a_string_as_kubectl_reads_it(tmp_path):
    path = write(
        tmp_path,
        "p.yaml",
        "apiVersion: podpreset.dev/v1\nkind: PodPreset\nmetadata: {name: p}\n"
        "spec: {volumes: [{name: v, configMap: {name: 2024-01-01}}]}\n",
    )
    result = run_cli("apply", "-f", path, WEB_POD, "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["spec"]["volumes"] == [
        {"name": "v", "configMap": {"name": "2024-01-01"}}
    ]


def test_deeply_nested_input_is_an_error_not_a_traceback(tmp_path):
    deep = write(tmp_path, "deep.json", "[" * 100000 + "]" * 100000)
    for args in (["validate", deep], ["apply", "-f", EXAMPLES, deep], ["review", "-f", EXAMPLES, deep]):
        result = run_cli(*args)
        assert result.returncode in (1, 2) and "nests deeper than 100 levels" in (
            result.stdout + result.stderr
        )
        assert "Traceback" not in result.stderr


def test_validate_of_a_directory_without_presets_exits_1(tmp_path):
    result = run_cli("validate", tmp_path)
    assert result.returncode == 1
    assert "no PodPreset documents found" in result.stdout


def test_apply_with_no_presets_exits_2(tmp_path):
    result = run_cli("apply", "-f", tmp_path, WEB_POD)
    assert result.returncode == 2 and "no PodPreset documents in" in result.stderr


def test_apply_of_an_object_whose_kind_is_not_a_string_exits_2(tmp_path):
    result = run_cli("apply", "-f", EXAMPLES, write(tmp_path, "k.json", '{"kind": ["x"]}'))
    assert result.returncode == 2 and "kind: expected a string" in result.stderr


def test_an_unquoted_equals_sign_is_a_string(tmp_path):
    path = write(
        tmp_path,
        "p.yaml",
        "apiVersion: podpreset.dev/v1\nkind: PodPreset\nmetadata: {name: p}\n"
        "spec: {env: [{name: SEP, value: =}]}\n",
    )
    result = run_cli("apply", "-f", path, WEB_POD, "-o", "json")
    assert result.returncode == 0, result.stderr
    assert {"name": "SEP", "value": "="} in json.loads(result.stdout)["spec"]["containers"][0]["env"]


CLUSTER = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {env: prod}}
---
apiVersion: podpreset.dev/v1
kind: ClusterPodPreset
metadata: {name: prod-proxy}
spec:
  namespaceSelector: {matchLabels: {env: prod}}
  selector: {matchLabels: {app: web}}
  priority: 5
  onConflict: KeepExisting
  containerSelector: {exclude: [istio-proxy]}
  env: [{name: HTTPS_PROXY, value: "http://proxy:3128"}, {name: NO_PROXY, value: ".svc"}]
---
apiVersion: podpreset.dev/v1
kind: ClusterPodPreset
metadata: {name: dev-debug}
spec:
  namespaceSelector: {matchLabels: {env: dev}}
  env: [{name: DEBUG, value: "1"}]
---
apiVersion: podpreset.dev/v1
kind: ClusterPodPreset
metadata: {name: batch-only}
spec:
  selector: {matchLabels: {tier: batch}}
  env: [{name: BATCH, value: "1"}]
"""
SHOP_POD = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  containers:
  - {name: app, image: nginx, env: [{name: NO_PROXY, value: mine}]}
  - {name: istio-proxy, image: proxy}
"""


def test_apply_uses_namespace_documents_and_explains_cluster_presets(tmp_path):
    presets = write(tmp_path, "cluster.yaml", CLUSTER)
    result = run_cli("apply", "-f", presets, write(tmp_path, "pod.yaml", SHOP_POD), "-o", "json", "--explain")
    assert result.returncode == 0, result.stderr
    pod = json.loads(result.stdout)
    app, proxy = pod["spec"]["containers"]
    assert app["env"] == [
        {"name": "NO_PROXY", "value": "mine"},
        {"name": "HTTPS_PROXY", "value": "http://proxy:3128"},
    ]
    assert "env" not in proxy
    err = result.stderr
    assert "namespace 'shop' has 0 preset(s); the cluster has 3 ClusterPodPreset(s)" in err
    assert "env=prod" in err and "kubernetes.io/metadata.name=shop" in err
    dev = "clusterpodpreset/dev-debug: not selected: namespace 'shop' does not satisfy its namespaceSelector"
    assert f"{dev} env=dev" in err
    batch = "clusterpodpreset/batch-only: not selected: its namespaceSelector matches, but the pod's labels"
    assert f"{batch} do not satisfy tier=batch" in err
    assert "clusterpodpreset/prod-proxy: applied keeping 1 existing item(s) (KeepExisting); adds 1 env" in err
    assert "[priority 5, onConflict KeepExisting]" in err
    assert "skips container 'istio-proxy': excluded by 'istio-proxy'" in err
    assert "the existing definition was kept" in err
    assert "mine" not in err and "3128" not in err


def test_review_takes_namespace_labels_from_the_inputs(tmp_path):
    presets = write(tmp_path, "cluster.yaml", CLUSTER)
    pod = yaml.safe_load(SHOP_POD)
    review = admission_review(pod, uid="u", namespace="shop")
    result = run_cli("review", "-f", presets, write(tmp_path, "review.json", json.dumps(review)))
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)["response"]
    assert "patch" in response and len(response["warnings"]) == 1


def test_validate_refuses_protected_names_by_default_and_as_configured(tmp_path):
    kube = write(tmp_path, "kube.yaml", PRESET.replace("HTTPS_PROXY", "KUBERNETES_SERVICE_HOST"))
    result = run_cli("validate", kube)
    assert result.returncode == 1
    assert "spec.env[0].name: 'KUBERNETES_SERVICE_HOST' is protected (prefix KUBERNETES_*)" in result.stdout

    proxy = write(tmp_path, "proxy.yaml", PRESET)
    assert run_cli("validate", proxy).returncode == 0
    refused = run_cli("validate", "--protected", "HTTPS_PROXY", "--protected", "KUBERNETES_*", proxy)
    assert refused.returncode == 1
    assert "(proxy): spec.env[0].name: 'HTTPS_PROXY' is protected; no preset may inject it" in refused.stdout
    assert run_cli("validate", "--protected", "HTTPS_PROXY", kube).returncode == 0, (
        "the list replaces the default"
    )
    assert run_cli("validate", "--protected", "A,B_*", proxy).returncode == 0
    assert run_cli("validate", "--protected=", kube).returncode == 0, (
        "an empty value protects nothing, as serve --protected= does"
    )


def test_validate_accepts_cluster_presets_and_namespaces_and_rejects_bad_protected_entries(tmp_path):
    presets = write(tmp_path, "cluster.yaml", CLUSTER)
    result = run_cli("validate", presets)
    assert result.returncode == 0, result.stdout
    assert "3 preset(s) valid" in result.stderr
    bad = run_cli("validate", "--protected", "A=B", presets)
    assert bad.returncode == 2
    assert "--protected: protected env name 'A=B'" in bad.stderr
    digit = run_cli("validate", "--protected", "1FOO", presets)
    assert digit.returncode == 2, "the same entry syntax as serve --protected"
    assert "--protected: protected env name '1FOO'" in digit.stderr


def test_validate_refuses_loader_and_agent_variables_by_default(tmp_path):
    for name in ("LD_PRELOAD", "JAVA_TOOL_OPTIONS", "NODE_OPTIONS", "DOTNET_STARTUP_HOOKS"):
        agent = write(tmp_path, "agent.yaml", PRESET.replace("HTTPS_PROXY", name))
        result = run_cli("validate", agent)
        assert result.returncode == 1, name
        assert f"spec.env[0].name: '{name}' is protected; no preset may inject it" in result.stdout
    replaced = run_cli("validate", "--protected", "KUBERNETES_*", agent)
    assert replaced.returncode == 0, "--protected replaces the list"


HOST_PATH_PRESET = """
apiVersion: podpreset.dev/v1
kind: {kind}
metadata: {{name: node-logs}}
spec:
  volumes: [{{name: logs, hostPath: {{path: /var/log}}}}, {{name: cache, emptyDir: {{}}}}]
  volumeMounts: [{{name: logs, mountPath: /logs}}]
"""


def test_validate_refuses_a_podpreset_volume_type_outside_the_setting_and_lets_cluster_presets_use_any(
    tmp_path,
):
    namespaced = write(tmp_path, "ns.yaml", HOST_PATH_PRESET.format(kind="PodPreset"))
    result = run_cli("validate", namespaced)
    assert result.returncode == 1
    assert (
        "ns.yaml (node-logs): spec.volumes[0].hostPath: volume 'logs' is of type hostPath, which a "
        "PodPreset may not inject (allowed: configMap, csi, downwardAPI, emptyDir, ephemeral, "
        "persistentVolumeClaim, projected, secret; --namespaced-volume-types); a ClusterPodPreset may"
    ) in result.stdout
    assert run_cli("validate", "--namespaced-volume-types", "emptyDir,hostPath", namespaced).returncode == 0
    assert run_cli("validate", "--namespaced-volume-types", "*", namespaced).returncode == 0
    narrow = run_cli("validate", "--namespaced-volume-types=hostPath", namespaced)
    assert narrow.returncode == 1 and "volume 'cache' is of type emptyDir" in narrow.stdout
    cluster = write(tmp_path, "cluster.yaml", HOST_PATH_PRESET.format(kind="ClusterPodPreset"))
    assert run_cli("validate", cluster).returncode == 0, run_cli("validate", cluster).stdout
    bad = run_cli("validate", "--namespaced-volume-types", "hostpath", cluster)
    assert bad.returncode == 2 and "'hostpath' is not a volume type" in bad.stderr


def test_apply_leaves_out_a_podpreset_with_a_host_path_volume_and_says_why(tmp_path):
    presets = write(tmp_path, "p.yaml", HOST_PATH_PRESET.format(kind="PodPreset"))
    result = run_cli("apply", "-f", presets, WEB_POD, "--explain", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert "volumes" not in json.loads(result.stdout)["spec"]
    assert "node-logs: selected, but not applied: volume 'logs' is of type hostPath" in result.stderr
    allowed = run_cli("apply", "-f", presets, WEB_POD, "-o", "json", "--namespaced-volume-types", "*")
    assert [v["name"] for v in json.loads(allowed.stdout)["spec"]["volumes"]] == ["logs", "cache"]


def big_preset(name, values, length):
    env = ", ".join(f"{{name: V{i}, value: {'x' * length}}}" for i in range(values))
    head = f"apiVersion: podpreset.dev/v1\nkind: PodPreset\nmetadata: {{name: {name}}}\n"
    return f"{head}spec:\n  env: [{env}]\n"


def test_validate_refuses_a_preset_over_the_size_limit_naming_its_size(tmp_path):
    big = write(tmp_path, "big.yaml", big_preset("big", 9, 30_000) + "---\n" + PRESET)
    result = run_cli("validate", big)
    assert result.returncode == 1
    (line,) = result.stdout.splitlines()
    assert line.startswith("big.yaml: document 1 (big): the preset is ") or line.startswith(
        f"{big}: document 1 (big): the preset is "
    ), line
    assert "bytes as compact JSON, over the limit of 256 KiB (262144 bytes, --max-preset-bytes)" in line
    assert run_cli("validate", "--max-preset-bytes", "300000", big).returncode == 0
    assert run_cli("validate", "--max-preset-bytes", "100", write(tmp_path, "p.yaml", PRESET)).returncode == 1
    refused = run_cli("apply", "-f", big, WEB_POD)
    assert refused.returncode == 2 and "over the limit of 256 KiB" in refused.stderr
