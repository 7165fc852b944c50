"""Validation of preset documents: every rule of DESIGN §4, each message naming where and how to fix."""

import pytest

from presets.model import InvalidPreset, parse_preset


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
