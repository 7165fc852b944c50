"""Validation of preset documents: every rule of DESIGN §4, each message naming where and how to fix."""

import pytest

from presets.model import (
    DEFAULT_PROTECTED,
    InvalidPreset,
    Protected,
    parse_api_object,
    parse_preset,
    protected_problems,
)
from presets.namespaces import labels_of, parse_namespace


def doc(name="db", api="podpreset.dev/v1", **spec):
    return {"apiVersion": api, "kind": "PodPreset", "metadata": {"name": name}, "spec": spec}


def problems(document):
    with pytest.raises(InvalidPreset) as caught:
        parse_preset(document, source="presets.yaml", document=2, default_namespace="default")
    return [str(p) for p in caught.value.problems]


VOL = {"name": "v", "emptyDir": {}}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            doc(name="a" * 54, env=[{"name": "A"}]),
            "metadata.name: is 54 characters; at most 53",
            id="name-over-53-characters",
        ),
        pytest.param(
            doc(name="Bad_Name", env=[{"name": "A"}]),
            "metadata.name: 'Bad_Name' is not a DNS subdomain",
            id="name-not-a-dns-subdomain",
        ),
        pytest.param(
            doc(volumeMounts=[{"name": "v", "mountPath": "/v"}]),
            "spec.volumeMounts[0].name: volume 'v' is not declared in spec.volumes",
            id="mount-of-undeclared-volume",
        ),
        pytest.param(
            doc(
                volumes=[VOL],
                volumeMounts=[{"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/b"}],
            ),
            "spec.volumeMounts[1].name: volume 'v' is already mounted",
            id="volume-mounted-twice",
        ),
        pytest.param(
            doc(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
            "spec.env[1].name: duplicate env var 'A'",
            id="duplicate-env-name",
        ),
        pytest.param(
            doc(volumes=[VOL, {"name": "v", "hostPath": {"path": "/"}}]),
            "spec.volumes[1].name: duplicate volume 'v'",
            id="duplicate-volume-name",
        ),
        pytest.param(
            doc(selector={"matchExpressions": [{"key": "a", "operator": "In"}]}, env=[{"name": "A"}]),
            "spec.selector.matchExpressions[0].values: must not be empty when operator is In",
            id="selector-In-without-values",
        ),
        pytest.param(
            doc(
                selector={"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
                env=[{"name": "A"}],
            ),
            "values: must be empty when operator is Exists",
            id="selector-Exists-with-values",
        ),
        pytest.param(
            doc(selector={"matchExpressions": [{"key": "a", "operator": "Like"}]}, env=[{"name": "A"}]),
            "operator: must be one of In, NotIn, Exists, DoesNotExist",
            id="selector-bad-operator",
        ),
        pytest.param(
            doc(selector={"matchLabels": {"app": "a b"}}, env=[{"name": "A"}]),
            "spec.selector.matchLabels[app]: label value 'a b'",
            id="selector-bad-label-value",
        ),
        pytest.param(
            doc(selector={"matchLabels": {"app": "web"}}), "spec: injects nothing", id="injects-nothing"
        ),
        pytest.param(doc(env=[], volumes=[]), "spec: injects nothing", id="empty-lists-inject-nothing"),
        pytest.param(doc(env={"A": "1"}), "spec.env: expected a list, got a mapping", id="env-not-a-list"),
        pytest.param(
            doc(env=[{"name": "A", "valueFrom": []}]),
            "spec.env[0].valueFrom: expected a mapping, got a list",
            id="valueFrom-wrong-type",
        ),
        pytest.param(
            doc(env=[{"name": "PORT", "value": 8080}]),
            "spec.env[0].value: expected a string, got a number",
            id="unquoted-number-value",
        ),
        pytest.param(
            doc(envFrom=[{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]),
            "spec.envFrom[0]: must set exactly one of configMapRef or secretRef",
            id="envFrom-two-sources",
        ),
        pytest.param(
            doc(envFrom=[{"configMapRef": {"name": "a"}}, {"configMapRef": {"name": "a", "optional": True}}]),
            "spec.envFrom[1]: duplicate envFrom source (also spec.envFrom[0])",
            id="duplicate-envFrom-source",
        ),
        pytest.param(
            doc(tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]),
            "spec.tolerations[0].value: must be empty when operator is Exists",
            id="toleration-exists-with-value",
        ),
        pytest.param(
            doc(tolerations=[{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]),
            "spec.tolerations[0].tolerationSeconds: only applies with effect NoExecute",
            id="tolerationSeconds-without-NoExecute",
        ),
        pytest.param(doc(envs=[{"name": "A"}]), "spec.envs: unknown field", id="unknown-spec-field"),
        pytest.param(
            {**doc(env=[{"name": "A"}]), "kind": "PodDefault"}, "kind: must be PodPreset", id="wrong-kind"
        ),
        pytest.param(
            doc(api="settings.k8s.io/v1beta1", env=[{"name": "A"}]),
            "apiVersion: must be one of",
            id="unknown-apiVersion",
        ),
        pytest.param(
            {"apiVersion": "podpreset.dev/v1", "kind": "PodPreset", "spec": {"env": [{"name": "A"}]}},
            "metadata: required",
            id="no-metadata",
        ),
    ],
)
def test_invalid_preset_is_rejected_with_file_document_name_and_field(document, expected):
    found = problems(document)
    assert any(expected in line for line in found), found
    assert all(line.startswith("presets.yaml: document 2") for line in found)


def test_every_problem_of_a_document_is_reported_at_once():
    found = problems(
        doc(
            name="a" * 60, env=[{"name": "A"}, {"name": "A"}], volumeMounts=[{"name": "x", "mountPath": "/x"}]
        )
    )
    assert len(found) == 3


def test_the_problem_line_names_the_preset():
    [line] = problems(doc(name="db-creds", env=[{"name": "A", "valueFrom": []}]))
    assert (
        line == "presets.yaml: document 2 (db-creds): spec.env[0].valueFrom: expected a mapping, got a list"
    )


def test_a_name_of_53_characters_is_valid():
    preset = parse_preset(
        doc(name="a" * 53, env=[{"name": "A"}]), source="s", document=1, default_namespace="d"
    )
    assert preset.name == "a" * 53


def test_legacy_api_version_means_the_same():
    legacy = parse_preset(
        doc(api="settings.k8s.io/v1alpha1", env=[{"name": "A", "value": "1"}]),
        source="s",
        document=1,
        default_namespace="ns",
    )
    current = parse_preset(
        doc(env=[{"name": "A", "value": "1"}]), source="s", document=1, default_namespace="ns"
    )
    assert legacy == current


def test_namespace_defaults_and_resource_version_is_kept():
    document = doc(env=[{"name": "A"}])
    preset = parse_preset(document, source="s", document=1, default_namespace="team-a")
    assert preset.namespace == "team-a"
    document["metadata"].update(namespace="team-b", resourceVersion="42")
    preset = parse_preset(document, source="s", document=1, default_namespace="team-a")
    assert (preset.namespace, preset.resource_version) == ("team-b", "42")


def test_a_document_that_is_not_a_mapping_is_a_problem_not_a_crash():
    [line] = problems(["a", "list"])
    assert line == (
        "presets.yaml: document 2: expected a PodPreset (a mapping of apiVersion, kind, metadata, spec), "
        "got a list"
    )


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            doc(env=[{"name": "A", "valuefrom": {}}]),
            "spec.env[0].valuefrom: unknown field; did you mean valueFrom?",
            id="misspelt-valueFrom",
        ),
        pytest.param(
            doc(volumes=[{"name": "v", "configmap": {"name": "c"}}]),
            "spec.volumes[0].configmap: unknown volume type; did you mean configMap?",
            id="misspelt-volume-type",
        ),
        pytest.param(
            doc(volumes=[VOL], volumeMounts=[{"name": "v", "mountPath": "/v", "readonly": True}]),
            "spec.volumeMounts[0].readonly: unknown field; did you mean readOnly?",
            id="misspelt-readOnly",
        ),
    ],
)
def test_misspelt_item_fields_are_rejected_because_the_api_server_would_drop_them(document, expected):
    assert expected in " ".join(problems(document))


# ClusterPodPreset and the richer fields ------------------------------------------------------


def cpp(name="proxy", **spec):
    return {
        "apiVersion": "podpreset.dev/v1",
        "kind": "ClusterPodPreset",
        "metadata": {"name": name},
        "spec": spec,
    }


ENV = [{"name": "A", "value": "1"}]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            cpp(name="c" * 47, env=ENV), "metadata.name: is 47 characters; at most 46", id="cluster-name-47"
        ),
        pytest.param(
            {**cpp(env=ENV), "metadata": {"name": "x", "namespace": "team"}},
            "metadata.namespace: a ClusterPodPreset is cluster-scoped",
            id="cluster-with-namespace",
        ),
        pytest.param(
            {**cpp(env=ENV), "apiVersion": "settings.k8s.io/v1alpha1"},
            "apiVersion: must be one of podpreset.dev/v1, got",
            id="cluster-has-no-legacy-version",
        ),
        pytest.param(
            doc(env=ENV, namespaceSelector={}),
            "spec.namespaceSelector: only a ClusterPodPreset",
            id="pp-ns-selector",
        ),
        pytest.param(
            cpp(env=ENV, namespaceSelector={"matchExpressions": [{"key": "env", "operator": "Near"}]}),
            "spec.namespaceSelector.matchExpressions[0].operator: must be one of",
            id="bad-namespace-selector",
        ),
        pytest.param(
            doc(env=ENV, containerSelector={"exclude": ["Istio_*"]}),
            "spec.containerSelector.exclude[0]: 'Istio_*' is not a container-name glob",
            id="bad-glob",
        ),
        pytest.param(
            doc(env=ENV, containerSelector={"include": ["[abc"]}),
            "spec.containerSelector.include[0]: '[abc' is not a container-name glob",
            id="unclosed-class",
        ),
        pytest.param(
            doc(env=ENV, containerSelector={"include": []}),
            "spec.containerSelector.include: must not be empty",
            id="empty-include",
        ),
        pytest.param(
            doc(env=ENV, containerSelector={"initContainer": False}),
            "spec.containerSelector.initContainer: unknown field; did you mean initContainers?",
            id="container-selector-typo",
        ),
        pytest.param(
            doc(env=ENV, containerSelector={"initContainers": "no"}),
            "spec.containerSelector.initContainers: expected true or false",
            id="init-containers-not-bool",
        ),
        pytest.param(
            doc(podMetadata={"annotations": {"podpreset.admission.kubernetes.io/exclude": "true"}}),
            "spec.podMetadata.annotations[podpreset.admission.kubernetes.io/exclude]: the prefix "
            "podpreset.admission.kubernetes.io/ is reserved",
            id="reserved-annotation",
        ),
        pytest.param(
            doc(podMetadata={"labels": {"-bad": "x"}}),
            "spec.podMetadata.labels[-bad]: label key '-bad'",
            id="bad-label-key",
        ),
        pytest.param(
            doc(podMetadata={"labels": {"ok": "not ok"}}),
            "spec.podMetadata.labels[ok]: label value 'not ok'",
            id="bad-label-value",
        ),
        pytest.param(
            doc(podMetadata={"annotations": {"bad key": "x"}}),
            "spec.podMetadata.annotations[bad key]: annotation key 'bad key'",
            id="bad-annotation-key",
        ),
        pytest.param(
            doc(podMetadata={"tags": {}}), "spec.podMetadata.tags: unknown field", id="podMetadata-typo"
        ),
        pytest.param(
            doc(nodeSelector={"disk": 1}),
            "spec.nodeSelector[disk]: expected a string value",
            id="node-selector-number",
        ),
        pytest.param(
            doc(imagePullSecrets=[{"name": "a"}, {"name": "a"}]),
            "spec.imagePullSecrets[1].name: duplicate Secret 'a'",
            id="duplicate-pull-secret",
        ),
        pytest.param(
            doc(imagePullSecrets=[{"nam": "a"}]),
            "spec.imagePullSecrets[0].nam: unknown field; did you mean name?",
            id="pull-secret-typo",
        ),
        pytest.param(
            doc(env=ENV, priority="high"), "spec.priority: expected an integer", id="priority-string"
        ),
        pytest.param(doc(env=ENV, priority=True), "spec.priority: expected an integer", id="priority-bool"),
        pytest.param(
            doc(env=ENV, priority=2**31), "spec.priority: 2147483648 is outside", id="priority-int32"
        ),
        pytest.param(
            doc(env=ENV, onConflict="Merge"),
            "spec.onConflict: must be one of SkipAll, SkipPreset, KeepExisting, Reject, got 'Merge'",
            id="unknown-policy",
        ),
        pytest.param(
            doc(env=ENV, rollout="Always"),
            "spec.rollout: must be one of OnChange, Never, got 'Always'",
            id="unknown-rollout",
        ),
        pytest.param(
            doc(env=ENV, rollout=False),
            "spec.rollout: must be one of OnChange, Never, got False",
            id="rollout-bool",
        ),
        pytest.param(doc(priority=1), "spec: injects nothing", id="priority-alone-injects-nothing"),
    ],
)
def test_invalid_cluster_or_richer_preset_is_rejected_with_field_and_fix(document, expected):
    found = problems(document)
    assert any(expected in line for line in found), found


def test_a_cluster_preset_with_every_field_parses():
    parsed = parse_preset(
        cpp(
            namespaceSelector={"matchLabels": {"env": "prod"}},
            selector={"matchLabels": {"app": "web"}},
            env=ENV,
            containerSelector={"include": ["app-*"], "exclude": ["istio-proxy"], "initContainers": False},
            nodeSelector={"disk": "ssd"},
            imagePullSecrets=[{"name": "registry"}],
            podMetadata={"labels": {"team": "a"}, "annotations": {"example.com/x": "any value at all"}},
            priority=10,
            onConflict="KeepExisting",
            rollout="Never",
        ),
        source="p.yaml",
        document=1,
        default_namespace="default",
    )
    assert (parsed.kind, parsed.namespace, parsed.ref) == ("ClusterPodPreset", "", "clusterpodpreset/proxy")
    assert parsed.annotation_key == "podpreset.admission.kubernetes.io/clusterpodpreset-proxy"
    assert parsed.namespace_selector is not None and parsed.namespace_selector.matches({"env": "prod"})
    assert (
        parsed.container_selector.skip_reason("istio-proxy", init=False)
        == "matches no include pattern (app-*)"
    )
    assert parsed.container_selector.skip_reason("app-1", init=True) == "initContainers: false"
    assert parsed.container_selector.skip_reason("app-1", init=False) is None
    assert parsed.node_selector == (("disk", "ssd"),)
    assert parsed.labels == (("team", "a"),) and parsed.annotations == (
        ("example.com/x", "any value at all"),
    )
    assert (parsed.priority, parsed.on_conflict, parsed.rollout) == (10, "KeepExisting", "Never")


def test_a_pod_preset_keeps_its_defaults_and_has_no_namespace_selector():
    parsed = parse_preset(doc(env=ENV), source="p.yaml", document=1, default_namespace="team")
    assert (parsed.kind, parsed.namespace, parsed.namespace_selector) == ("PodPreset", "team", None)
    assert (parsed.priority, parsed.on_conflict, parsed.container_selector.targets_all, parsed.rollout) == (
        0,
        "SkipAll",
        True,
        "OnChange",
    )
    assert parsed.annotation_key == "podpreset.admission.kubernetes.io/podpreset-db"


def test_parse_api_object_names_the_kind_and_object_in_each_problem():
    good, none = parse_api_object(cpp(env=ENV))
    assert good is not None and good.is_cluster and none == ()
    bad, found = parse_api_object({**cpp(onConflict="Merge"), "metadata": {"name": "x"}})
    assert bad is None
    assert found and all(line.startswith("clusterpodpreset x: ") for line in found)
    namespaced = {**doc(env=ENV), "metadata": {"name": "db", "namespace": "team"}}
    preset, _ = parse_api_object(namespaced)
    assert preset is not None and preset.namespace == "team"


def test_protected_problems_name_the_field():
    parsed = parse_preset(
        doc(
            env=[{"name": "KUBERNETES_SERVICE_HOST", "value": "x"}, {"name": "OK", "value": "1"}],
            envFrom=[{"configMapRef": {"name": "c"}, "prefix": "KUBERNETES_"}, {"secretRef": {"name": "s"}}],
        ),
        source="p.yaml",
        document=1,
        default_namespace="default",
    )
    assert protected_problems(parsed, DEFAULT_PROTECTED) == [
        (
            "spec.env[0].name",
            "'KUBERNETES_SERVICE_HOST' is protected (prefix KUBERNETES_*); no preset may inject it",
        ),
        (
            "spec.envFrom[0].prefix",
            "'KUBERNETES_' is protected (prefix KUBERNETES_*); no preset may inject it",
        ),
    ]
    assert protected_problems(parsed, Protected.parse(["OK"])) == [
        ("spec.env[1].name", "'OK' is protected; no preset may inject it")
    ]


def test_namespace_documents_parse_into_labels_with_the_name_label():
    name, labels, found = parse_namespace(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "labels": {"env": "prod"}}}
    )
    assert (name, labels, found) == ("team", {"env": "prod", "kubernetes.io/metadata.name": "team"}, [])
    _, _, found = parse_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Bad"}})
    assert found and found[0][0] == "metadata.name"
    assert labels_of({}, "x") == {"kubernetes.io/metadata.name": "x"}
