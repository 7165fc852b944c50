"""The unchecked plan (``presets.plan.plan_unchecked``) against the reference walk, on the cases
the property strategies seldom reach: a KeepExisting preset whose protected env is left out of
every container, and selective presets leaving containers out. Each case must take the shortcut
(so a broken shortcut shows here), and must agree with the reference walk, which takes none.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.presets import preset
from test_reference_walk import assert_walks_agree

from presets.engine import render
from presets.model import PodPreset, Protected
from presets.plan import Plan, _containers, _PresetSet, hold_keys, plan_presets, plan_unchecked

PROTECTED = Protected.parse(["KUBERNETES_*", "SECRET_TOKEN"])


def two_container_pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "namespace", "labels": {"app": "a"}},
        "spec": {
            "initContainers": [{"name": "setup", "env": [{"name": "OWN", "value": "1"}]}],
            "containers": [
                {"name": "app", "env": [{"name": "OWN", "value": "1"}], "volumeMounts": []},
                {"name": "istio-proxy"},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }


ENV = [
    {"name": "A", "value": "1"},
    {"name": "SECRET_TOKEN", "value": "x"},
    {"name": "KUBERNETES_X", "value": "y"},
]
MOUNT = [{"name": "certs", "mountPath": "/certs"}]
VOLUME = [{"name": "certs", "secret": {"secretName": "certs"}}]


def unchecked_plan(pod: dict[str, Any], walk: _PresetSet) -> Plan | None:
    containers = list(_containers(pod["spec"]))
    return plan_unchecked(pod, containers, hold_keys(containers, walk), walk)


CASES = [
    pytest.param(
        [preset("keep", env=ENV, onConflict="KeepExisting", volumes=VOLUME, volumeMounts=MOUNT)],
        id="keep-existing-preset-without-its-protected-env",
    ),
    pytest.param(
        [
            preset("a-keep", env=ENV, onConflict="KeepExisting"),
            preset("b-skip", env=[{"name": "KUBERNETES_Z", "value": "z"}], onConflict="SkipPreset"),
            preset("c-plain", env=[{"name": "C", "value": "3"}]),
        ],
        id="protected-env-under-each-policy-but-skip-all",
    ),
    pytest.param(
        [
            preset(
                "a-no-init", env=[{"name": "A", "value": "1"}], containerSelector={"initContainers": False}
            ),
            preset(
                "b-no-sidecar",
                env=[{"name": "B", "value": "2"}],
                volumeMounts=MOUNT,
                volumes=VOLUME,
                containerSelector={"exclude": ["istio-*"]},
            ),
            preset(
                "c-only-app",
                envFrom=[{"configMapRef": {"name": "cm"}}],
                containerSelector={"include": ["app"]},
            ),
            preset("d-every", env=[{"name": "D", "value": "4"}]),
        ],
        id="selective-presets-leave-containers-out",
    ),
    pytest.param(
        [
            preset(
                "a-keep-selective",
                env=ENV,
                onConflict="KeepExisting",
                containerSelector={"exclude": ["setup"]},
            ),
            preset("b-skip-all", env=[{"name": "KUBERNETES_Y", "value": "1"}], onConflict="SkipAll"),
        ],
        id="selective-keep-existing-and-a-skip-all-conflict",
    ),
]


@pytest.mark.parametrize("presets", CASES)
def test_the_unchecked_plan_agrees_with_the_reference_walk(presets: list[PodPreset]) -> None:
    pod = two_container_pod()
    walk = _PresetSet.build(tuple(presets), PROTECTED)
    assert unchecked_plan(pod, walk) is not None, "the case must take the shortcut"
    assert_walks_agree(pod, presets, PROTECTED)


@pytest.mark.parametrize("presets", CASES)
def test_the_unchecked_plan_equals_the_checked_walk(presets: list[PodPreset]) -> None:
    """``count=True`` always takes the checked walk: same results and changes, skipped containers
    included, once the shortcut's memo is warm too."""
    pod = two_container_pod()
    walk = _PresetSet.build(tuple(presets), PROTECTED)
    checked = plan_presets(pod, presets, protected=PROTECTED, count=True)
    for _ in range(2):
        unchecked = unchecked_plan(pod, walk)
        assert unchecked is not None
        assert [(r.preset.name, r.status, r.conflicts, r.skipped_containers) for r in unchecked.results] == [
            (r.preset.name, r.status, r.conflicts, r.skipped_containers) for r in checked.results
        ]
        assert [(c.pointer, c.field, c.current, c.added, c.container) for c in unchecked.lists] == [
            (c.pointer, c.field, c.current, c.added, c.container) for c in checked.lists
        ]
        assert unchecked.maps == checked.maps == ()


def test_a_pod_holding_a_preset_key_takes_the_checked_walk() -> None:
    pod = two_container_pod()
    pod["spec"]["containers"][0]["env"].append({"name": "A", "value": "other"})
    walk = _PresetSet.build((preset("a", env=ENV),), PROTECTED)
    assert unchecked_plan(pod, walk) is None


REFERENCING_POD_ENV = [{"name": "OWN", "value": "$(A)-$(D)"}]
REFERENCING_PRESET_ENV = [{"name": "D", "value": "4"}, {"name": "E", "value": "$(D)"}]


@pytest.mark.parametrize(
    "presets",
    [
        *CASES,
        pytest.param(
            [preset("refs", env=REFERENCING_PRESET_ENV, volumeMounts=MOUNT, volumes=VOLUME)], id="refs"
        ),
    ],
)
@pytest.mark.parametrize("own_env", [None, REFERENCING_POD_ENV], ids=["own-env-plain", "own-env-references"])
def test_the_lane_operations_render_the_patch_the_checked_walk_renders(
    presets: list[PodPreset], own_env: list[dict[str, Any]] | None
) -> None:
    """The unchecked plan's lane operations (``_PresetSet.lane_lists``, remembered per lane and
    container position) render the same patch as the checked walk's changes, which have none:
    also when a container's own env references injected vars (then render orders them), and
    for a second pod whose containers stand in other positions (the memo is warm)."""
    walk = _PresetSet.build(tuple(presets), PROTECTED)
    for pod in (two_container_pod(), two_container_pod()):
        if own_env is not None:
            pod["spec"]["containers"][0]["env"] = list(own_env)
        if pod["spec"]["containers"][0]["name"] == "app" and walk._ops:
            pod["spec"]["containers"].reverse()  # the second pod: other positions
        unchecked = unchecked_plan(pod, walk)
        assert unchecked is not None
        assert any(change.ops for change in unchecked.lists), "the case must use lane operations"
        checked = plan_presets(pod, presets, protected=PROTECTED, count=True)
        assert all(change.ops is None for change in checked.lists)
        assert render(pod, unchecked) == render(pod, checked)
