"""``migrate_document``: one table per source kind (every field mapped, every dropped field named),
metadata, items the new API refuses, and input that cannot be converted.

The field lists come from the peers' own Go types: ``PodPresetSpec`` of settings.k8s.io/v1alpha1
(selector, env, envFrom, volumes, volumeMounts), redhat-cop/podpreset-webhook
``api/v1alpha1/podpreset_types.go`` (the same five) and Kubeflow's ``PodDefaultSpec``
(components/admission-webhook ``pkg/apis/settings/v1alpha1/poddefault_types.go``).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from presets.migrate import DESCRIPTION_ANNOTATION, Migrated, MigrationError, migrate_document
from presets.model import parse_preset

SELECTOR = {"matchLabels": {"app": "web"}}
ENV = [{"name": "LOG_LEVEL", "value": "debug"}]
ENV_FROM = [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}]
VOLUMES = [{"name": "certs", "secret": {"secretName": "certs"}}]
MOUNTS = [{"name": "certs", "mountPath": "/etc/certs", "readOnly": True}]
TOLERATIONS = [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
PULL_SECRETS = [{"name": "registry"}]

SETTINGS = ("settings.k8s.io/v1alpha1", "PodPreset")
REDHAT = ("redhatcop.redhat.io/v1alpha1", "PodPreset")
PODDEFAULT = ("kubeflow.org/v1alpha1", "PodDefault")


def original(kind: tuple[str, str], name: str = "base", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": kind[0],
        "kind": kind[1],
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"selector": SELECTOR, **spec},
    }


def migrate(doc: Any, namespace: str | None = None) -> Migrated:
    """Convert, checking what every conversion must hold: the input untouched, and the output a
    valid podpreset.dev/v1 object by the same rules as ``podpreset validate``."""
    before = copy.deepcopy(doc)
    result = migrate_document(doc, namespace=namespace)
    assert doc == before, "migrate_document changed its input"
    if result.converted is not None:
        assert result.converted["apiVersion"] == "podpreset.dev/v1"
        parse_preset(copy.deepcopy(result.converted), source="t", document=1, default_namespace="default")
    return result


def dropped_fields(result: Migrated) -> list[str]:
    return [d.field for d in result.dropped]


@pytest.mark.parametrize("kind", [SETTINGS, REDHAT], ids=["settings.k8s.io", "redhatcop"])
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({"env": ENV}, {"env": ENV}, id="env"),
        pytest.param({"envFrom": ENV_FROM}, {"envFrom": ENV_FROM}, id="envFrom"),
        pytest.param(
            {"volumes": VOLUMES, "volumeMounts": MOUNTS},
            {"volumes": VOLUMES, "volumeMounts": MOUNTS},
            id="volumes-and-volumeMounts",
        ),
        pytest.param(
            {
                "volumes": [
                    {
                        "name": "info",
                        "downwardAPI": {
                            "items": [{"path": "l", "fieldRef": {"fieldPath": "metadata.labels"}}]
                        },
                    }
                ]
            },
            {
                "volumes": [
                    {
                        "name": "info",
                        "downwardAPI": {
                            "items": [{"path": "l", "fieldRef": {"fieldPath": "metadata.labels"}}]
                        },
                    }
                ]
            },
            id="volume-only",
        ),
    ],
)
def test_podpreset_fields_carry_over_unchanged_with_name_namespace_and_selector(kind, spec, expected):
    result = migrate(original(kind, **spec))
    assert result.converted == {
        "apiVersion": "podpreset.dev/v1",
        "kind": "PodPreset",
        "metadata": {"name": "base", "namespace": "team"},
        "spec": {"selector": SELECTOR, **expected},
    }
    assert result.dropped == ()
    assert result.source_kind == f"{kind[0]} {kind[1]}"


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"tolerations": TOLERATIONS}, id="tolerations"),
        pytest.param({"imagePullSecrets": PULL_SECRETS}, id="imagePullSecrets"),
        pytest.param({"nodeSelector": {"pool": "gpu"}}, id="nodeSelector"),
        pytest.param({"podMetadata": {"labels": {"team": "a"}}}, id="podMetadata"),
        pytest.param({"containerSelector": {"exclude": ["istio-*"]}}, id="containerSelector"),
        pytest.param({"priority": 5, "onConflict": "SkipPreset"}, id="priority-and-onConflict"),
    ],
)
def test_a_settings_preset_keeps_podpresets_own_fields_that_files_of_its_apiversion_accept(extra):
    result = migrate(original(SETTINGS, env=ENV, **extra))
    assert result.converted is not None
    assert result.converted["spec"] == {"selector": SELECTOR, "env": ENV, **extra}
    assert result.dropped == ()


@pytest.mark.parametrize(
    ("kind", "field", "value", "says"),
    [
        pytest.param(
            SETTINGS,
            "sidecars",
            [],
            "not a field of settings.k8s.io/v1alpha1 PodPreset",
            id="settings-unknown",
        ),
        pytest.param(
            REDHAT,
            "tolerations",
            TOLERATIONS,
            "not a field of redhatcop.redhat.io/v1alpha1 PodPreset",
            id="redhat-tolerations",
        ),
        pytest.param(
            REDHAT, "imagePullSecrets", PULL_SECRETS, "not a field of redhatcop", id="redhat-imagePullSecrets"
        ),
        pytest.param(REDHAT, "evn", ENV, "check the spelling", id="redhat-misspelt"),
        pytest.param(
            PODDEFAULT,
            "nodeSelector",
            {"a": "b"},
            "not a field of kubeflow.org/v1alpha1 PodDefault",
            id="poddefault-unknown",
        ),
    ],
)
def test_a_field_the_source_kind_does_not_have_is_named_and_left_out(kind, field, value, says):
    result = migrate(original(kind, env=ENV, **{field: value}))
    assert result.converted is not None
    assert field not in result.converted["spec"]
    assert dropped_fields(result) == [f"spec.{field}"]
    assert says in result.dropped[0].why


# PodDefault: every field of PodDefaultSpec, mapped or named.

NOT_INIT = {"containerSelector": {"initContainers": False}}
"""A PodDefault's env, envFrom and volumeMounts go to the pod's containers only (main.go
applyPodDefaultsOnContainer runs over pod.Spec.Containers), never its init containers."""


@pytest.mark.parametrize(
    ("spec", "expected_spec"),
    [
        pytest.param({"env": ENV}, {"env": ENV, **NOT_INIT}, id="env"),
        pytest.param({"envFrom": ENV_FROM}, {"envFrom": ENV_FROM, **NOT_INIT}, id="envFrom"),
        pytest.param(
            {"volumes": VOLUMES, "volumeMounts": MOUNTS},
            {"volumes": VOLUMES, "volumeMounts": MOUNTS, **NOT_INIT},
            id="volumes-and-volumeMounts",
        ),
        pytest.param(
            {"volumes": VOLUMES}, {"volumes": VOLUMES}, id="volumes-alone-need-no-containerSelector"
        ),
        pytest.param({"tolerations": TOLERATIONS}, {"tolerations": TOLERATIONS}, id="tolerations"),
        pytest.param(
            {"imagePullSecrets": PULL_SECRETS}, {"imagePullSecrets": PULL_SECRETS}, id="imagePullSecrets"
        ),
        pytest.param({"labels": {"team": "a"}}, {"podMetadata": {"labels": {"team": "a"}}}, id="labels"),
        pytest.param(
            {"annotations": {"sidecar.istio.io/inject": "false"}},
            {"podMetadata": {"annotations": {"sidecar.istio.io/inject": "false"}}},
            id="annotations",
        ),
        pytest.param(
            {"labels": {"a": "1"}, "annotations": {"b": "2"}},
            {"podMetadata": {"labels": {"a": "1"}, "annotations": {"b": "2"}}},
            id="labels-and-annotations",
        ),
    ],
)
def test_poddefault_fields_map_to_podpreset_fields(spec, expected_spec):
    result = migrate(original(PODDEFAULT, **spec))
    assert result.converted == {
        "apiVersion": "podpreset.dev/v1",
        "kind": "PodPreset",
        "metadata": {"name": "base", "namespace": "team"},
        "spec": {"selector": SELECTOR, **expected_spec, "onConflict": "Reject"},
    }
    assert result.dropped == ()


def test_a_poddefault_refuses_a_pod_on_conflict_and_so_does_its_migrated_preset():
    result = migrate(original(PODDEFAULT, env=ENV))
    assert result.converted is not None
    assert result.converted["spec"]["onConflict"] == "Reject"


def test_a_poddefaults_description_is_kept_as_an_annotation_of_the_new_object():
    result = migrate(original(PODDEFAULT, env=ENV, desc="Mount the GCP credentials"))
    assert result.converted is not None
    assert result.converted["metadata"]["annotations"] == {
        DESCRIPTION_ANNOTATION: "Mount the GCP credentials"
    }
    assert "desc" not in result.converted["spec"]
    assert result.dropped == ()


SIDECAR = {"name": "proxy", "image": "envoy"}


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        pytest.param("serviceAccountName", "pipeline-runner", "ServiceAccount", id="serviceAccountName"),
        pytest.param(
            "automountServiceAccountToken", False, "automountServiceAccountToken", id="automount-false"
        ),
        pytest.param(
            "automountServiceAccountToken", True, "automountServiceAccountToken", id="automount-true"
        ),
        pytest.param("command", ["/bin/run"], "entrypoint", id="command"),
        pytest.param("args", ["--verbose"], "arguments", id="args"),
        pytest.param("sidecars", [SIDECAR], "add the container 'proxy'", id="sidecars"),
        pytest.param(
            "sidecars",
            [SIDECAR, {"name": "log", "image": "x"}],
            "add the containers 'proxy', 'log'",
            id="two-sidecars",
        ),
        pytest.param(
            "initContainers",
            [{"name": "setup", "image": "x"}],
            "add the init container 'setup'",
            id="initContainers",
        ),
    ],
)
def test_poddefault_fields_podpreset_cannot_express_are_each_named_with_why(field, value, says):
    result = migrate(original(PODDEFAULT, env=ENV, **{field: value}))
    assert result.converted is not None
    assert result.converted["spec"] == {"selector": SELECTOR, "env": ENV, **NOT_INIT, "onConflict": "Reject"}
    assert dropped_fields(result) == [f"spec.{field}"]
    assert says in result.dropped[0].why


@pytest.mark.parametrize(
    "empty",
    [
        pytest.param({"serviceAccountName": ""}, id="serviceAccountName"),
        pytest.param({"command": [], "args": []}, id="command-and-args"),
        pytest.param({"sidecars": [], "initContainers": []}, id="containers"),
        pytest.param({"automountServiceAccountToken": None}, id="automount-null"),
        pytest.param({"desc": "", "labels": {}, "annotations": {}, "tolerations": []}, id="maps-and-lists"),
    ],
)
def test_empty_poddefault_fields_did_nothing_there_and_are_not_reported(empty):
    result = migrate(original(PODDEFAULT, env=ENV, **empty))
    assert result.converted is not None
    assert result.converted["spec"] == {"selector": SELECTOR, "env": ENV, **NOT_INIT, "onConflict": "Reject"}
    assert "annotations" not in result.converted["metadata"]
    assert result.dropped == ()


def test_a_poddefault_that_only_sets_what_podpreset_cannot_express_is_not_converted():
    result = migrate(original(PODDEFAULT, serviceAccountName="runner", sidecars=[SIDECAR]))
    assert result.converted is None
    assert dropped_fields(result) == ["spec.serviceAccountName", "spec.sidecars"]


def test_a_preset_that_injects_nothing_at_all_is_not_converted():
    assert migrate(original(SETTINGS)).converted is None


# Metadata.


def test_metadata_keeps_name_namespace_labels_and_annotations_and_leaves_the_servers_fields():
    doc = original(SETTINGS, env=ENV)
    doc["metadata"] = {
        "name": "base",
        "namespace": "team",
        "labels": {"owner": "platform"},
        "annotations": {
            "note": "keep me",
            "kubectl.kubernetes.io/last-applied-configuration": "{...}",
        },
        "uid": "0b7c",
        "resourceVersion": "42",
        "generation": 3,
        "creationTimestamp": "2020-01-01T00:00:00Z",
        "managedFields": [{"manager": "kubectl"}],
    }
    doc["status"] = {"conditions": []}
    result = migrate(doc)
    assert result.converted is not None
    assert result.converted["metadata"] == {
        "name": "base",
        "namespace": "team",
        "labels": {"owner": "platform"},
        "annotations": {"note": "keep me"},
    }
    assert "status" not in result.converted
    assert result.dropped == ()


def test_owner_references_and_finalizers_belong_to_the_original_and_are_named():
    doc = original(REDHAT, env=ENV)
    doc["metadata"]["ownerReferences"] = [{"kind": "Profile", "name": "x", "apiVersion": "v1", "uid": "1"}]
    doc["metadata"]["finalizers"] = ["example.com/f"]
    result = migrate(doc)
    assert dropped_fields(result) == ["metadata.ownerReferences", "metadata.finalizers"]
    assert result.converted is not None
    assert set(result.converted["metadata"]) == {"name", "namespace"}


@pytest.mark.parametrize(
    ("namespace", "flag", "expected"),
    [
        pytest.param("team", None, "team", id="own"),
        pytest.param("team", "other", "team", id="own-wins-over-flag"),
        pytest.param(None, "other", "other", id="flag-places-one-without"),
        pytest.param(None, None, None, id="none-stays-none"),
    ],
)
def test_namespace_is_the_originals_else_the_flags_else_left_out(namespace, flag, expected):
    doc = original(PODDEFAULT, env=ENV)
    if namespace is None:
        del doc["metadata"]["namespace"]
    else:
        doc["metadata"]["namespace"] = namespace
    result = migrate(doc, namespace=flag)
    assert result.converted is not None
    assert result.converted["metadata"].get("namespace") == expected


# Items the new API refuses: dropped one by one and named by their place in the original.


def test_a_mount_of_a_volume_the_original_does_not_declare_is_dropped():
    result = migrate(
        original(PODDEFAULT, env=ENV, volumeMounts=[{"name": "workspace", "mountPath": "/home/jovyan"}])
    )
    assert result.converted is not None
    assert "volumeMounts" not in result.converted["spec"]
    assert dropped_fields(result) == ["spec.volumeMounts[0]"]
    assert "'workspace' is not declared by the original" in result.dropped[0].why


def test_a_duplicate_env_var_keeps_the_first_and_names_the_second_by_its_original_index():
    env = [*ENV, {"name": "A", "value": "1"}, {"name": "LOG_LEVEL", "value": "info"}]
    result = migrate(original(SETTINGS, env=env))
    assert result.converted is not None
    assert result.converted["spec"]["env"] == env[:2]
    assert dropped_fields(result) == ["spec.env[2]"]
    assert "the first is kept" in result.dropped[0].why


def test_a_volume_dropped_takes_its_mount_with_it_each_named():
    volumes = [{"name": "a", "emptyDir": {}, "secret": {"secretName": "s"}}, *VOLUMES]
    mounts = [{"name": "a", "mountPath": "/a"}, *MOUNTS]
    result = migrate(original(REDHAT, volumes=volumes, volumeMounts=mounts))
    assert result.converted is not None
    assert result.converted["spec"]["volumes"] == VOLUMES
    assert result.converted["spec"]["volumeMounts"] == MOUNTS
    assert dropped_fields(result) == ["spec.volumes[0]", "spec.volumeMounts[0]"]


def test_a_label_podpreset_refuses_is_dropped_by_its_key_under_the_poddefaults_field_name():
    result = migrate(original(PODDEFAULT, env=ENV, labels={"ok": "1", "bad key": "2"}))
    assert result.converted is not None
    assert result.converted["spec"]["podMetadata"] == {"labels": {"ok": "1"}}
    assert dropped_fields(result) == ["spec.labels[bad key]"]


def test_a_reserved_annotation_is_dropped():
    reserved = {"podpreset.admission.kubernetes.io/x": "1"}
    result = migrate(original(PODDEFAULT, annotations=reserved, env=ENV))
    assert result.converted is not None
    assert "podMetadata" not in result.converted["spec"]
    assert dropped_fields(result) == ["spec.annotations[podpreset.admission.kubernetes.io/x]"]
    assert "reserved" in result.dropped[0].why


# Already podpreset.dev/v1: unchanged, so migrating twice is migrating once.


def test_podpreset_dev_objects_pass_through_and_migrating_output_again_changes_nothing():
    once = migrate(original(PODDEFAULT, env=ENV, desc="d", sidecars=[SIDECAR]))
    assert once.converted is not None
    twice = migrate(copy.deepcopy(once.converted))
    assert twice.converted == once.converted
    assert twice.dropped == ()
    cluster = {
        "apiVersion": "podpreset.dev/v1",
        "kind": "ClusterPodPreset",
        "metadata": {"name": "c"},
        "spec": {"env": ENV},
    }
    assert migrate(cluster, namespace="team").converted == cluster


# Input that cannot be converted: MigrationError naming the field and the problem.


@pytest.mark.parametrize(
    ("doc", "field", "says"),
    [
        pytest.param(["a"], "", "expected an object (a mapping), got a list", id="not-a-mapping"),
        pytest.param(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
            "",
            "not one migrate reads",
            id="other-kind",
        ),
        pytest.param(
            {"apiVersion": "settings.k8s.io/v1", "kind": "PodPreset"},
            "",
            "not one migrate reads",
            id="unknown-version",
        ),
        pytest.param(
            {**original(PODDEFAULT, env=ENV), "metadata": {}}, "metadata.name", "required", id="no-name"
        ),
        pytest.param(
            {**original(PODDEFAULT, env=ENV), "metadata": "x"},
            "metadata",
            "required",
            id="metadata-not-a-mapping",
        ),
        pytest.param(
            {**original(PODDEFAULT), "spec": ["x"]},
            "spec",
            "expected a mapping, got a list",
            id="spec-a-list",
        ),
        pytest.param(
            original(PODDEFAULT, env={"A": "1"}),
            "spec.env",
            "expected a list, got a mapping",
            id="env-a-mapping",
        ),
        pytest.param(
            original(PODDEFAULT, env=ENV, labels={"a": 1}),
            "spec.labels",
            "mapping of strings",
            id="label-not-a-string",
        ),
        pytest.param(
            original(PODDEFAULT, env=ENV, command="run"),
            "spec.command",
            "expected a list",
            id="command-a-string",
        ),
        pytest.param(
            original(PODDEFAULT, env=ENV, automountServiceAccountToken="no"),
            "spec.automountServiceAccountToken",
            "true or false",
            id="automount-a-string",
        ),
        pytest.param(
            original(REDHAT, "x" * 54, env=ENV),
            "metadata.name",
            "cannot be converted: is 54 characters",
            id="name-too-long",
        ),
        pytest.param(
            original(SETTINGS, env=ENV, selector={"matchLabels": {"a": 1}}),
            "spec.selector.matchLabels[a]",
            "cannot be converted",
            id="bad-selector",
        ),
    ],
)
def test_input_that_cannot_be_converted_names_field_and_problem(doc, field, says):
    with pytest.raises(MigrationError) as raised:
        migrate_document(doc)
    fields = [f for f, _ in raised.value.problems]
    assert field in fields, raised.value.problems
    assert says in dict(raised.value.problems)[field]
