"""Each merge rule on its own, with the original plugin's case names (admission_test.go)."""

import pytest
from support.presets import preset

from presets.merge import (
    POD_OWNER,
    merge_env,
    merge_env_from,
    merge_tolerations,
    merge_volume_mounts,
    merge_volumes,
)

ENV_A = {"name": "abc", "value": "value2"}
ENV_B = {"name": "ABC", "value": "value3"}


@pytest.mark.parametrize(
    ("original", "preset_env", "added", "conflict_keys"),
    [
        pytest.param([], [ENV_A, ENV_B], [ENV_A, ENV_B], [], id="empty-original"),
        pytest.param(
            [{"name": "abcd", "value": "value2"}], [ENV_A, ENV_B], [ENV_A, ENV_B], [], id="good-merge"
        ),
        pytest.param([{"name": "abc", "value": "value3"}], [ENV_A], [], ["'abc'"], id="conflict"),
        pytest.param([ENV_A, ENV_B], [ENV_A], [], [], id="one-is-exact-same"),
        pytest.param(
            [{"name": "X", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
            [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            [],
            [],
            id="same-modulo-fieldRef-apiVersion-default",
        ),
        pytest.param(
            [{"name": "M", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "0"}}}],
            [{"name": "M", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}],
            [],
            [],
            id="same-modulo-divisor-default",
        ),
    ],
)
def test_merge_env(original, preset_env, added, conflict_keys):
    merged = merge_env(original, [preset(env=preset_env)], 'container "ctr"')
    assert list(merged.added) == added
    assert [c.key for c in merged.conflicts] == conflict_keys
    assert all(c.container == 'container "ctr"' and c.other == POD_OWNER for c in merged.conflicts)


def test_merge_env_two_presets_that_disagree_conflict_even_when_the_pod_has_neither():
    merged = merge_env([], [preset("a", env=[ENV_A]), preset("b", env=[{"name": "abc", "value": "other"}])])
    assert list(merged.added) == [ENV_A]
    [conflict] = merged.conflicts
    assert (conflict.preset, conflict.other, conflict.key) == ("b", "a", "'abc'")


def test_merge_env_two_presets_that_agree_add_the_item_once():
    merged = merge_env([], [preset("a", env=[ENV_A]), preset("b", env=[ENV_A])])
    assert list(merged.added) == [ENV_A]
    assert merged.conflicts == ()


CM = {"configMapRef": {"name": "abc"}}
SECRET = {"secretRef": {"name": "abc"}, "prefix": "S_"}


@pytest.mark.parametrize(
    ("original", "preset_env_from", "added", "conflicts"),
    [
        pytest.param([], [CM, SECRET], [CM, SECRET], 0, id="empty-original"),
        pytest.param([{"configMapRef": {"name": "other"}}], [CM, SECRET], [CM, SECRET], 0, id="good-merge"),
        pytest.param([CM], [CM], [], 0, id="one-is-exact-same"),
        pytest.param(
            [{"configMapRef": {"name": "abc"}, "prefix": "P_"}],
            [CM],
            [CM],
            0,
            id="a-different-prefix-is-a-different-key",
        ),
        pytest.param(
            [{"configMapRef": {"name": "abc", "optional": True}}],
            [CM],
            [],
            1,
            id="deviation-Q1-same-key-different-optional-is-a-conflict-not-a-wipe",
        ),
    ],
)
def test_merge_env_from(original, preset_env_from, added, conflicts):
    merged = merge_env_from(original, [preset(envFrom=preset_env_from)])
    assert list(merged.added) == added
    assert len(merged.conflicts) == conflicts


def test_merge_env_from_deviation_Q2_the_same_source_from_two_presets_is_added_once():
    merged = merge_env_from([], [preset("a", envFrom=[CM]), preset("b", envFrom=[CM])])
    assert list(merged.added) == [CM]


VOL = {"name": "vol", "secret": {"secretName": "s"}}
MOUNT = {"name": "vol", "mountPath": "/etc/vol"}


@pytest.mark.parametrize(
    ("original", "mounts", "added", "conflict_keys"),
    [
        pytest.param([], [MOUNT], [MOUNT], [], id="empty-original"),
        pytest.param([{"name": "other", "mountPath": "/other"}], [MOUNT], [MOUNT], [], id="good-merge"),
        pytest.param(
            [{"name": "vol", "mountPath": "/elsewhere"}], [MOUNT], [], ["name 'vol'"], id="conflict"
        ),
        pytest.param(
            [{"name": "other", "mountPath": "/etc/vol"}],
            [MOUNT],
            [],
            ["at mountPath '/etc/vol'"],
            id="conflict-on-mount-path",
        ),
        pytest.param([MOUNT], [MOUNT], [], [], id="one-is-exact-same"),
        pytest.param([{**MOUNT, "readOnly": False}], [MOUNT], [], [], id="same-modulo-readOnly-false"),
    ],
)
def test_merge_volume_mounts(original, mounts, added, conflict_keys):
    merged = merge_volume_mounts(original, [preset(volumes=[VOL], volumeMounts=mounts)])
    assert list(merged.added) == added
    assert [c.key for c in merged.conflicts] == conflict_keys


@pytest.mark.parametrize(
    ("original", "volumes", "added", "conflicts"),
    [
        pytest.param([], [VOL], [VOL], 0, id="empty-original"),
        pytest.param([{"name": "other", "emptyDir": {}}], [VOL], [VOL], 0, id="good-merge"),
        pytest.param([{"name": "vol", "hostPath": {"path": "/tmp"}}], [VOL], [], 1, id="conflict"),
        pytest.param([VOL], [VOL], [], 0, id="one-is-exact-same"),
        pytest.param(
            [{"name": "vol", "secret": {"secretName": "s", "defaultMode": 420}}],
            [VOL],
            [],
            0,
            id="same-modulo-defaultMode-420",
        ),
        pytest.param(
            [{"name": "vol", "emptyDir": {}}],
            [{"name": "vol"}],
            [],
            0,
            id="a-volume-without-source-defaults-to-emptyDir",
        ),
        pytest.param(
            [{"name": "vol", "secret": {"secretName": "s", "defaultMode": 256}}],
            [VOL],
            [],
            1,
            id="an-explicit-other-defaultMode-conflicts",
        ),
    ],
)
def test_merge_volumes(original, volumes, added, conflicts):
    merged = merge_volumes(original, [preset(volumes=volumes)])
    assert list(merged.added) == added
    assert len(merged.conflicts) == conflicts


GPU = {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("original", "tolerations", "added"),
    [
        pytest.param([], [GPU], [GPU], id="empty-original"),
        pytest.param([GPU], [GPU], [], id="exact-duplicate-is-never-added"),
        pytest.param(
            [{"key": "k", "value": "v"}],
            [{"key": "k", "operator": "Equal", "value": "v"}],
            [],
            id="operator-Equal-is-the-default",
        ),
        pytest.param(
            [{**GPU, "effect": "NoExecute"}], [GPU], [GPU], id="a-different-effect-is-another-toleration"
        ),
    ],
)
def test_merge_tolerations(original, tolerations, added):
    merged = merge_tolerations(original, [preset(tolerations=tolerations)])
    assert list(merged.added) == added
    assert merged.conflicts == ()


def test_conflict_descriptions_name_the_preset_container_and_key_but_never_values():
    merged = merge_env(
        [{"name": "PASSWORD", "value": "hunter2"}],
        [preset("creds", env=[{"name": "PASSWORD", "value": "s3cret"}])],
        'container "app"',
    )
    [conflict] = merged.conflicts
    line = conflict.describe()
    assert "creds" in line and 'container "app"' in line and "PASSWORD" in line
    assert "hunter2" not in line and "s3cret" not in line
    assert "\n" not in line


@pytest.mark.parametrize(
    ("pod_volume", "preset_volume"),
    [
        pytest.param(
            {"name": "v", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "v", "emptyDir": {"sizeLimit": "1024Mi"}},
            id="sizeLimit-re-rendered-by-the-api-server",
        ),
        pytest.param(
            {
                "name": "v",
                "ephemeral": {
                    "volumeClaimTemplate": {
                        "spec": {"volumeMode": "Filesystem", "resources": {"requests": {"storage": "1Gi"}}}
                    }
                },
            },
            {
                "name": "v",
                "ephemeral": {
                    "volumeClaimTemplate": {"spec": {"resources": {"requests": {"storage": "1024Mi"}}}}
                },
            },
            id="ephemeral-volumeMode-default-and-quantities",
        ),
    ],
)
def test_volumes_equal_by_quantity_value_and_defaults_are_the_same(pod_volume, preset_volume):
    merged = merge_volumes([pod_volume], [preset(volumes=[preset_volume])])
    assert merged.added == () and merged.conflicts == ()


def test_a_different_quantity_is_a_conflict():
    merged = merge_volumes(
        [{"name": "v", "emptyDir": {"sizeLimit": "1M"}}],
        [preset(volumes=[{"name": "v", "emptyDir": {"sizeLimit": "1Mi"}}])],
    )
    assert len(merged.conflicts) == 1


def test_env_divisor_is_compared_by_value():
    ref = {"resource": "limits.memory"}
    merged = merge_env(
        [{"name": "M", "valueFrom": {"resourceFieldRef": {**ref, "divisor": "1Mi"}}}],
        [preset(env=[{"name": "M", "valueFrom": {"resourceFieldRef": {**ref, "divisor": "1024Ki"}}}])],
    )
    assert merged.added == () and merged.conflicts == ()


@pytest.mark.parametrize(
    ("reference", "policy"),
    [
        ("registry:5000/tools", "Always"),
        ("tools:latest", "Always"),
        ("tools:1.2", "IfNotPresent"),
        ("tools@sha256:abc", "IfNotPresent"),
    ],
)
def test_image_volume_pull_policy_is_defaulted_like_the_api_server(reference, policy):
    ours = {"name": "v", "image": {"reference": reference}}
    defaulted = {"name": "v", "image": {"reference": reference, "pullPolicy": policy}}
    merged = merge_volumes([defaulted], [preset(volumes=[ours])])
    assert merged.added == () and merged.conflicts == ()
