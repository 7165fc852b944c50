"""Properties of the engine with the richer presets: both kinds, priorities, every ``onConflict``
policy, container targeting, pod-level maps, image pull secrets and ``$(VAR)`` references.

Pools are small so that presets collide with the pod and with each other often. Presets are
built through ``parse_preset``; pods are those of ``test_properties`` plus the new pod fields.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import orjson
from hypothesis import event, given
from hypothesis import strategies as st
from support.reviews import admission_review
from test_properties import (
    ENGINE,
    NAMESPACE,
    containers_of,
    env_from_key,
    patched,
    pods,
    toleration,
    volumes_and_mounts,
)

from presets.admission import PresetIndex, admit
from presets.engine import apply_presets, references
from presets.model import POLICIES, PodPreset, Protected, parse_preset

PROTECTED = Protected.parse(["KUBERNETES_*", "SECRET_TOKEN"])
ENV_NAMES = ("A", "B", "C", "SECRET_TOKEN")
ENV_VALUES = ("1", "2", "$(A)", "x-$(B)", "$(C)$(A)", "$$(A)")
NAMESPACE_LABELS = st.sampled_from([{}, {NAMESPACE: {"env": "prod"}}, {NAMESPACE: {"env": "dev"}}])

rich_env_var = st.builds(
    lambda n, v: {"name": n, "value": v}, st.sampled_from(ENV_NAMES), st.sampled_from(ENV_VALUES)
)
pair_maps = {
    "nodeSelector": (("disk", "zone"), ("ssd", "hdd")),
    "labels": (("team", "cost"), ("a", "b")),
    "annotations": (("note", "owner"), ("x", "team")),
}


def small_map(keys: tuple[str, ...], values: tuple[str, ...]) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(st.sampled_from(keys), st.sampled_from(values), max_size=2)


@st.composite
def rich_pods(draw: st.DrawFn) -> dict[str, Any]:
    pod = draw(pods())
    for ctr in containers_of(pod):
        if draw(st.booleans()):
            ctr["env"] = [*(ctr.get("env") or []), *draw(st.lists(rich_env_var, max_size=2))]
    if draw(st.booleans()):
        pod["spec"]["nodeSelector"] = draw(small_map(*pair_maps["nodeSelector"]))
    if draw(st.booleans()):
        pod["spec"]["imagePullSecrets"] = [{"name": n} for n in draw(st.lists(st.sampled_from(("r1", "r3"))))]
    if draw(st.booleans()):
        pod["metadata"]["labels"].update(draw(small_map(*pair_maps["labels"])))
    return pod


container_selector = st.sampled_from(
    [
        None,
        {"exclude": ["c1"]},
        {"include": ["c*"]},
        {"initContainers": False},
        {"include": ["init", "c[0-9]"], "exclude": ["c0"]},
    ]
)
selector = st.sampled_from(
    [None, {}, {"matchLabels": {"app": "web"}}, {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}]
)
namespace_selector = st.sampled_from(
    [
        None,
        {},
        {"matchLabels": {"env": "prod"}},
        {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
        {"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]},
    ]
)


@st.composite
def rich_preset(draw: st.DrawFn, name: str, cluster: bool) -> PodPreset:
    volumes, mounts = draw(volumes_and_mounts())
    spec: dict[str, Any] = {
        "selector": draw(selector),
        "env": draw(st.lists(rich_env_var, max_size=3, unique_by=lambda e: e["name"])),
        "volumes": volumes,
        "volumeMounts": mounts,
        "tolerations": draw(st.lists(toleration, max_size=1)),
        "imagePullSecrets": [{"name": n} for n in draw(st.lists(st.sampled_from(("r1", "r2")), unique=True))],
        "nodeSelector": draw(small_map(*pair_maps["nodeSelector"])),
        "podMetadata": {
            "labels": draw(small_map(*pair_maps["labels"])),
            "annotations": draw(small_map(*pair_maps["annotations"])),
        },
        "priority": draw(st.sampled_from((0, 0, 1, -1))),
        "onConflict": draw(st.sampled_from(POLICIES)),
    }
    if draw(st.booleans()):
        spec["envFrom"] = [
            {"configMapRef": {"name": "x"}, "prefix": draw(st.sampled_from(("P_", "KUBERNETES_")))}
        ]
    chosen = draw(container_selector)
    if chosen is not None:
        spec["containerSelector"] = chosen
    if cluster:
        spec["namespaceSelector"] = draw(namespace_selector)
    if not any(spec[k] for k in ("env", "volumes", "tolerations", "imagePullSecrets", "nodeSelector")):
        spec["tolerations"] = [{"key": "k1", "operator": "Exists"}]
    metadata: dict[str, Any] = {"name": name, "resourceVersion": str(draw(st.integers(1, 9)))}
    if not cluster:
        metadata["namespace"] = NAMESPACE
    doc = {
        "apiVersion": "podpreset.dev/v1",
        "kind": "ClusterPodPreset" if cluster else "PodPreset",
        "metadata": metadata,
        "spec": spec,
    }
    return parse_preset(doc, source="generated", document=1, default_namespace=NAMESPACE)


@st.composite
def rich_preset_lists(draw: st.DrawFn) -> list[PodPreset]:
    names = draw(st.lists(st.sampled_from(("alpha", "beta", "gamma")), min_size=1, max_size=3, unique=True))
    return [draw(rich_preset(name, draw(st.booleans()))) for name in names]


def run(pod: dict[str, Any], presets: list[PodPreset], namespaces: dict[str, Any]) -> Any:
    return apply_presets(pod, presets, namespace=NAMESPACE, namespaces=namespaces, protected=PROTECTED)


@ENGINE
@given(pod=rich_pods(), presets=rich_preset_lists(), namespaces=NAMESPACE_LABELS)
def test_patch_applies_to_the_untouched_input_and_gives_the_outcome_pod(pod, presets, namespaces):
    pristine = copy.deepcopy(pod)
    outcome = run(pod, presets, namespaces)
    assert pod == pristine, "the input must never be mutated"
    assert outcome.pod == patched(pod, outcome.patch)
    assert pod == pristine, "the outcome must not share mutated structure with the input"


@ENGINE
@given(pod=rich_pods(), presets=rich_preset_lists(), namespaces=NAMESPACE_LABELS)
def test_result_is_a_valid_pod_with_nothing_duplicated_or_overwritten(pod, presets, namespaces):
    result = patched(pod, run(pod, presets, namespaces).patch)
    spec = result["spec"]

    def grew_without_duplicates(before: list[Any], after: list[Any], what: str) -> None:
        assert after[: len(before)] == before, f"{what}: the pod's own items must stay first, in order"
        added = after[len(before) :]
        assert len(set(added)) == len(added), f"{what} added twice"
        assert not set(added) & set(before), f"{what} added although the pod has it"

    grew_without_duplicates(
        [v["name"] for v in pod["spec"].get("volumes") or ()],
        [v["name"] for v in spec.get("volumes") or ()],
        "volume",
    )
    grew_without_duplicates(
        [s["name"] for s in pod["spec"].get("imagePullSecrets") or ()],
        [s["name"] for s in spec.get("imagePullSecrets") or ()],
        "imagePullSecret",
    )
    volumes = {v["name"] for v in spec.get("volumes") or ()}
    for before, after in zip(containers_of(pod), containers_of(result), strict=True):
        own = [e["name"] for e in before.get("env") or ()]
        names = [e["name"] for e in after.get("env") or ()]
        assert [n for n in names if n in own] == own, "the pod's own env keeps its order"
        added = [n for n in names if n not in own] + [n for n in own if names.count(n) > own.count(n)]
        assert len(set(added)) == len(added) and not set(added) & set(own), "env var duplicated"
        assert not any(n.startswith("KUBERNETES_") or n == "SECRET_TOKEN" for n in added), "protected name"
        grew_without_duplicates(
            [env_from_key(e) for e in before.get("envFrom") or ()],
            [env_from_key(e) for e in after.get("envFrom") or ()],
            "envFrom",
        )
        grew_without_duplicates(
            [m["mountPath"] for m in before.get("volumeMounts") or ()],
            [m["mountPath"] for m in after.get("volumeMounts") or ()],
            "mount path",
        )
        for added_mount in (after.get("volumeMounts") or [])[len(before.get("volumeMounts") or ()) :]:
            assert added_mount["name"] in volumes
    for path in (("spec", "nodeSelector"), ("metadata", "labels"), ("metadata", "annotations")):
        before_map = pod[path[0]].get(path[1]) or {}
        after_map = result[path[0]].get(path[1]) or {}
        assert {k: after_map.get(k) for k in before_map} == before_map, f"{path}: a value was overwritten"


@ENGINE
@given(pod=rich_pods(), presets=rich_preset_lists(), namespaces=NAMESPACE_LABELS)
def test_second_run_gives_an_empty_patch_under_every_policy(pod, presets, namespaces):
    first = run(pod, presets, namespaces)
    second = run(patched(pod, first.patch), presets, namespaces)
    assert second.patch == ()
    if first.verdict == "apply":
        assert second.verdict == "apply"
        assert set(first.applied) <= set(second.applied) | set(first.applied)


@ENGINE
@given(pod=rich_pods(), presets=rich_preset_lists(), namespaces=NAMESPACE_LABELS)
def test_a_skip_all_or_reject_conflict_leaves_the_pod_byte_for_byte_unchanged(pod, presets, namespaces):
    encoded = orjson.dumps(pod)
    outcome = run(pod, presets, namespaces)
    failed = {(r.preset.on_conflict, r.status) for r in outcome.results}
    if ("Reject", "conflict") in failed:
        assert outcome.verdict == "reject" and outcome.action == "rejected"
    elif ("SkipAll", "conflict") in failed:
        assert outcome.verdict == "skip-all" and outcome.action == "conflict"
    else:
        assert outcome.verdict == "apply"
        return
    assert outcome.patch == ()
    assert orjson.dumps(outcome.pod) == encoded
    assert outcome.applied == ()


@ENGINE
@given(pod=rich_pods(), presets=rich_preset_lists(), namespaces=NAMESPACE_LABELS)
def test_injected_env_precedes_the_vars_that_reference_it_unless_a_cycle_is_reported(
    pod, presets, namespaces
):
    outcome = run(pod, presets, namespaces)
    if outcome.notes:
        return
    result = patched(pod, outcome.patch)
    checked = 0
    for before, after in zip(containers_of(pod), containers_of(result), strict=True):
        own = {e["name"] for e in before.get("env") or ()}
        env = after.get("env") or []
        injected = {e["name"]: i for i, e in enumerate(env) if e["name"] not in own}
        for i, var in enumerate(env):
            for name in references(var.get("value")) & injected.keys() - {var["name"]}:
                assert injected[name] < i, f"{var['name']} references {name}, injected after it"
                checked += 1
    event("a reference to an injected var was checked" if checked else "no reference to an injected var")


@ENGINE
@given(pod=rich_pods(), presets=rich_preset_lists(), namespaces=NAMESPACE_LABELS, seed=st.randoms())
def test_the_order_presets_are_given_in_and_the_index_change_nothing(pod, presets, namespaces, seed):
    shuffled = list(presets)
    seed.shuffle(shuffled)
    one, two = run(pod, presets, namespaces), run(pod, shuffled, namespaces)
    assert (one.patch, one.conflicts, one.applied) == (two.patch, two.conflicts, two.applied)
    labels = pod["metadata"]["labels"]
    narrowed = run(pod, PresetIndex.build(presets).candidates(NAMESPACE, labels), namespaces)
    assert (narrowed.patch, narrowed.conflicts) == (one.patch, one.conflicts)


@ENGINE
@given(pod=rich_pods(), presets=rich_preset_lists(), namespaces=NAMESPACE_LABELS)
def test_admit_refuses_with_409_exactly_when_a_reject_preset_conflicts(pod, presets, namespaces):
    review = admission_review(pod, uid="u", namespace=NAMESPACE)
    decision = admit(review, PresetIndex.build(presets), namespaces=namespaces, protected=PROTECTED)
    response = decision.response["response"]
    outcome = run(pod, presets, namespaces)
    assert response["allowed"] is (outcome.verdict != "reject")
    if outcome.verdict == "reject":
        assert response["status"]["code"] == 409
        assert "patch" not in response
        refusing = [c for c in outcome.conflicts if c.policy == "Reject"]
        assert all(c.preset in response["status"]["message"] for c in refusing)
    ops = json.loads(base64.b64decode(response["patch"])) if "patch" in response else []
    assert ops == json.loads(json.dumps(list(outcome.patch)))
    assert len(response.get("warnings", ())) == len(outcome.conflicts) + len(outcome.notes)


@ENGINE
@given(pod=rich_pods(), presets=rich_preset_lists(), namespaces=NAMESPACE_LABELS)
def test_explain_decides_exactly_as_the_webhook(pod, presets, namespaces):
    """``--explain`` also counts what each preset added, along the same walk: the counting must
    not change a decision (the fast paths for items that are all new are taken in both)."""
    fast = run(pod, presets, namespaces)
    full = apply_presets(
        pod, presets, namespace=NAMESPACE, namespaces=namespaces, protected=PROTECTED, explain=True
    )
    event(f"mutated without a conflict: {fast.action == 'mutated' and not fast.conflicts}")
    assert fast.patch == full.patch
    assert (fast.action, fast.verdict, fast.applied) == (full.action, full.verdict, full.applied)
    assert fast.conflicts == full.conflicts and fast.warnings == full.warnings
    assert [(r.preset.ref, r.status) for r in fast.results] == [
        (r.preset.ref, r.status) for r in full.results
    ]
