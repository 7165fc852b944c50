"""Properties of the engine over generated pods and presets (hypothesis).

Names come from small pools so that pods and presets collide often: the same env var, volume or
mount path defined twice, equal or not. Presets are built through ``parse_preset``, so every one
is valid; the pod may be anything the API server would send, including its own duplicates.
"""

from __future__ import annotations

import base64
import copy
import json
from collections import Counter
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.reviews import admission_review

from presets.admission import PresetIndex, admit
from presets.engine import APPLIED_ANNOTATION_PREFIX, apply_presets
from presets.model import PodPreset, parse_preset

NAMESPACE = "namespace"
ENV_NAMES = ("A", "B", "C")
VOLUME_NAMES = ("v1", "v2", "v3")
PATHS = ("/a", "/b", "/c")
REF_NAMES = ("x", "y")
LABELS = {"app": ("web", "db"), "tier": ("front",)}
CONTAINER_LISTS = ("initContainers", "containers")

ENGINE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Items ---------------------------------------------------------------------------------------

field_ref = st.sampled_from(
    [
        {"fieldRef": {"fieldPath": "metadata.name"}},
        {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
        {"resourceFieldRef": {"resource": "limits.cpu"}},
        {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "0"}},
    ]
)
env_var = st.one_of(
    st.builds(lambda n, v: {"name": n, "value": v}, st.sampled_from(ENV_NAMES), st.sampled_from(("1", "2"))),
    st.builds(lambda n, f: {"name": n, "valueFrom": f}, st.sampled_from(ENV_NAMES), field_ref),
)


@st.composite
def env_from(draw: st.DrawFn) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": draw(st.sampled_from(REF_NAMES))}
    if draw(st.booleans()):
        ref["optional"] = draw(st.booleans())
    item: dict[str, Any] = {draw(st.sampled_from(("configMapRef", "secretRef"))): ref}
    prefix = draw(st.sampled_from((None, "", "P_")))
    if prefix is not None:
        item["prefix"] = prefix
    return item


volume_source = st.sampled_from(
    [
        {"emptyDir": {}},
        {"emptyDir": {"medium": "Memory"}},
        {"secret": {"secretName": "s"}},
        {"secret": {"secretName": "s", "defaultMode": 420}},
        {"configMap": {"name": "c"}},
        {"downwardAPI": {"items": [{"path": "l", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
    ]
)
volume = st.builds(lambda n, s: {"name": n, **s}, st.sampled_from(VOLUME_NAMES), volume_source)


@st.composite
def mount(draw: st.DrawFn, names: tuple[str, ...] = VOLUME_NAMES) -> dict[str, Any]:
    item: dict[str, Any] = {"name": draw(st.sampled_from(names)), "mountPath": draw(st.sampled_from(PATHS))}
    read_only = draw(st.sampled_from((None, False, True)))
    if read_only is not None:
        item["readOnly"] = read_only
    return item


toleration = st.one_of(
    st.builds(
        lambda k, v, e: {"key": k, "operator": "Equal", "value": v, "effect": e},
        st.sampled_from(("k1", "k2")),
        st.sampled_from(("a", "b")),
        st.sampled_from(("NoSchedule", "NoExecute")),
    ),
    st.builds(lambda k: {"key": k, "operator": "Exists"}, st.sampled_from(("k1", "k2"))),
    st.builds(
        lambda k, v: {"key": k, "value": v}, st.sampled_from(("k1", "k2")), st.sampled_from(("a", "b"))
    ),
)


def optional_list(items: st.SearchStrategy[Any], max_size: int = 3) -> st.SearchStrategy[Any]:
    """An absent list (None) or a list that may hold duplicates, as a pod may."""
    return st.one_of(st.none(), st.lists(items, max_size=max_size))


# Pods ----------------------------------------------------------------------------------------


@st.composite
def container(draw: st.DrawFn, name: str) -> dict[str, Any]:
    ctr: dict[str, Any] = {"name": name, "image": "busybox"}
    for key, items in (("env", env_var), ("envFrom", env_from()), ("volumeMounts", mount())):
        value = draw(optional_list(items))
        if value is not None:
            ctr[key] = value
    return ctr


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    labels = {k: draw(st.sampled_from(v)) for k, v in LABELS.items() if draw(st.booleans())}
    metadata: dict[str, Any] = {"name": "mypod", "namespace": NAMESPACE, "labels": labels}
    if draw(st.booleans()):
        metadata["annotations"] = {"owner": "team"}
    spec: dict[str, Any] = {"containers": [draw(container(f"c{i}")) for i in range(draw(st.integers(1, 2)))]}
    if draw(st.booleans()):
        spec["initContainers"] = [draw(container("init"))]
    for key, items in (("volumes", volume), ("tolerations", toleration)):
        value = draw(optional_list(items))
        if value is not None:
            spec[key] = value
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


# Presets -------------------------------------------------------------------------------------

selector = st.sampled_from(
    [
        None,
        {},
        {"matchLabels": {"app": "web"}},
        {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
        {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]},
    ]
)


@st.composite
def volumes_and_mounts(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Up to two volumes and mounts of some of them, no two sharing a name or a mountPath."""
    volumes = draw(st.lists(volume, max_size=2, unique_by=lambda v: v["name"]))
    declared = tuple(v["name"] for v in volumes)
    mounts = (
        draw(
            st.lists(
                mount(declared),
                max_size=len(declared),
                unique_by=(lambda m: m["name"], lambda m: m["mountPath"]),
            )
        )
        if declared
        else []
    )
    return volumes, mounts


@st.composite
def preset(draw: st.DrawFn, name: str) -> PodPreset:
    volumes, mounts = draw(volumes_and_mounts())
    spec: dict[str, Any] = {
        "selector": draw(selector),
        "env": draw(st.lists(env_var, max_size=2, unique_by=lambda e: e["name"])),
        "envFrom": draw(st.lists(env_from(), max_size=2, unique_by=env_from_key)),
        "volumes": volumes,
        "volumeMounts": mounts,
        "tolerations": draw(st.lists(toleration, max_size=2)),
    }
    if not any(spec[k] for k in ("env", "envFrom", "volumes", "tolerations")):
        spec["tolerations"] = [{"key": "k1", "operator": "Exists"}]
    doc = {
        "apiVersion": draw(st.sampled_from(("podpreset.dev/v1", "settings.k8s.io/v1alpha1"))),
        "kind": "PodPreset",
        "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": str(draw(st.integers(1, 9)))},
        "spec": spec,
    }
    return parse_preset(doc, source="generated", document=1, default_namespace=NAMESPACE)


@st.composite
def preset_lists(draw: st.DrawFn) -> list[PodPreset]:
    names = draw(
        st.lists(st.sampled_from(("alpha", "beta", "gamma", "delta")), min_size=1, max_size=3, unique=True)
    )
    return [draw(preset(name)) for name in names]


# Helpers -------------------------------------------------------------------------------------


def containers_of(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod.get("spec", {})
    return [c for key in CONTAINER_LISTS for c in spec.get(key) or ()]


def patched(pod: dict[str, Any], patch: Any) -> dict[str, Any]:
    return jsonpatch.apply_patch(pod, list(patch)) if patch else copy.deepcopy(pod)


def assert_added_without_duplicates(keys_before: list[Any], keys_after: list[Any], what: str) -> None:
    before, after = Counter(keys_before), Counter(keys_after)
    for key, count in after.items():
        if count > 1:
            assert count == before[key], f"{what} {key!r} duplicated by the engine"


def env_from_key(item: dict[str, Any]) -> tuple[str, str, str]:
    return (
        item.get("prefix") or "",
        (item.get("configMapRef") or {}).get("name", ""),
        (item.get("secretRef") or {}).get("name", ""),
    )


# Properties ----------------------------------------------------------------------------------


@ENGINE
@given(pod=pods(), presets=preset_lists())
def test_patch_applies_to_the_input_and_gives_the_outcome_pod(pod, presets):
    pristine = copy.deepcopy(pod)
    outcome = apply_presets(pod, presets)
    assert pod == pristine, "the input must never be mutated"
    result = patched(pod, outcome.patch)
    assert outcome.pod == result
    assert pod == pristine, "the outcome must not share mutated structure with the input"


@ENGINE
@given(pod=pods(), presets=preset_lists())
def test_result_holds_no_duplicates_added_by_the_engine(pod, presets):
    result = patched(pod, apply_presets(pod, presets).patch)
    spec_before, spec_after = pod["spec"], result["spec"]
    assert_added_without_duplicates(
        [v["name"] for v in spec_before.get("volumes") or ()],
        [v["name"] for v in spec_after.get("volumes") or ()],
        "volume",
    )
    assert_added_without_duplicates(
        [json.dumps(t, sort_keys=True) for t in spec_before.get("tolerations") or ()],
        [json.dumps(t, sort_keys=True) for t in spec_after.get("tolerations") or ()],
        "toleration",
    )
    for before, after in zip(containers_of(pod), containers_of(result), strict=True):
        assert_added_without_duplicates(
            [e["name"] for e in before.get("env") or ()],
            [e["name"] for e in after.get("env") or ()],
            "env var",
        )
        assert_added_without_duplicates(
            [env_from_key(e) for e in before.get("envFrom") or ()],
            [env_from_key(e) for e in after.get("envFrom") or ()],
            "envFrom",
        )
        assert_added_without_duplicates(
            [m["mountPath"] for m in before.get("volumeMounts") or ()],
            [m["mountPath"] for m in after.get("volumeMounts") or ()],
            "mount path",
        )


@ENGINE
@given(pod=pods(), presets=preset_lists())
def test_engine_only_appends_and_annotates(pod, presets):
    outcome = apply_presets(pod, presets)
    result = patched(pod, outcome.patch)
    assert all(op["op"] == "add" for op in outcome.patch)
    assert result["spec"].keys() >= pod["spec"].keys()
    for key in ("volumes", "tolerations"):
        before = pod["spec"].get(key) or []
        assert (result["spec"].get(key) or [])[: len(before)] == before
    for before, after in zip(containers_of(pod), containers_of(result), strict=True):
        for key in ("env", "envFrom", "volumeMounts"):
            own = before.get(key) or []
            assert (after.get(key) or [])[: len(own)] == own
    annotations = result["metadata"].get("annotations") or {}
    if outcome.patch:
        for preset in presets:
            if preset.name in outcome.applied:
                assert annotations[APPLIED_ANNOTATION_PREFIX + preset.name] == preset.resource_version
    assert {k: v for k, v in annotations.items() if not k.startswith(APPLIED_ANNOTATION_PREFIX)} == (
        pod["metadata"].get("annotations") or {}
    )


@ENGINE
@given(pod=pods(), presets=preset_lists())
def test_second_run_gives_an_empty_patch(pod, presets):
    first = apply_presets(pod, presets)
    second = apply_presets(patched(pod, first.patch), presets)
    assert second.patch == ()
    if not first.conflicts:
        assert second.conflicts == (), [c.describe() for c in second.conflicts]
        assert second.applied == first.applied


@ENGINE
@given(pod=pods(), presets=preset_lists())
def test_conflict_leaves_the_pod_unchanged(pod, presets):
    pristine = copy.deepcopy(pod)
    outcome = apply_presets(pod, presets)
    if outcome.conflicts:
        assert outcome.action == "conflict"
        assert outcome.patch == ()
        assert outcome.pod == pristine
        assert outcome.applied == ()
    else:
        assert outcome.action != "conflict"


@ENGINE
@given(pod=pods(), presets=preset_lists(), seed=st.randoms(use_true_random=False))
def test_order_of_presets_given_does_not_change_the_result(pod, presets, seed):
    shuffled = list(presets)
    seed.shuffle(shuffled)
    one, two = apply_presets(pod, presets), apply_presets(pod, shuffled)
    assert one.patch == two.patch
    assert one.pod == two.pod
    assert one.conflicts == two.conflicts
    assert list(one.applied) == sorted(one.applied)


@ENGINE
@given(pod=pods(), presets=preset_lists())
def test_every_mount_added_names_a_volume_of_the_result(pod, presets):
    result = patched(pod, apply_presets(pod, presets).patch)
    volumes = {v["name"] for v in result["spec"].get("volumes") or ()}
    for before, after in zip(containers_of(pod), containers_of(result), strict=True):
        own = len(before.get("volumeMounts") or ())
        for added in (after.get("volumeMounts") or [])[own:]:
            assert added["name"] in volumes


@ENGINE
@given(pod=pods(), presets=preset_lists())
def test_admit_patch_matches_the_engine_and_admits_always(pod, presets):
    review = admission_review(pod, uid="u", namespace=NAMESPACE)
    decision = admit(review, PresetIndex.build(presets))
    response = decision.response["response"]
    assert response["allowed"] is True
    outcome = apply_presets(pod, presets)
    ops = json.loads(base64.b64decode(response["patch"])) if "patch" in response else []
    assert ops == json.loads(json.dumps(list(outcome.patch)))
    assert len(response.get("warnings", ())) == len(outcome.conflicts)


def serialized_like_the_api_server(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as the API server hands it back after our patch: defaults filled, zero values dropped.

    Written independently of ``presets.defaults``: ``defaultMode: 420`` on secret, configMap,
    downwardAPI and projected volumes, ``fieldRef.apiVersion: v1``, ``resourceFieldRef.divisor: "0"``,
    and ``omitempty`` members (``readOnly: false``, ``prefix: ""``, ``value: ""``, ``medium: ""``) gone.
    """
    pod = _serialized(pod, "")
    for volume in pod["spec"].get("volumes") or ():
        for source in ("secret", "configMap", "downwardAPI", "projected"):
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 420)
    return pod


def _serialized(value: Any, parent: str) -> Any:
    if isinstance(value, list):
        return [_serialized(v, parent) for v in value]
    if not isinstance(value, dict):
        return value
    out = {
        k: _serialized(v, k)
        for k, v in value.items()
        if not (k in ("readOnly", "prefix", "value", "medium") and v in (False, ""))
    }
    if parent == "fieldRef":
        out.setdefault("apiVersion", "v1")
    if parent == "resourceFieldRef":
        out.setdefault("divisor", "0")
    return out


@ENGINE
@given(pod=pods(), presets=preset_lists())
def test_reinvocation_after_api_server_defaulting_changes_nothing(pod, presets):
    first = apply_presets(pod, presets)
    if first.conflicts:
        return
    again = serialized_like_the_api_server(patched(pod, first.patch))
    second = apply_presets(again, presets)
    assert second.conflicts == (), [c.describe() for c in second.conflicts]
    assert second.patch == ()
