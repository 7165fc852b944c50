"""ClusterPodPresets, the preset order, onConflict policies, protected names, container targeting,
pod-level fields and env order: one table or small test per rule of docs/semantics.md."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
import pytest
from support.presets import cluster_preset, pod, preset
from support.reviews import admission_review

from presets.admission import PresetIndex, admit
from presets.engine import (
    Outcome,
    apply_presets,
    decide,
    order_env,
    plan_presets,
    references,
    select_presets,
)
from presets.model import DEFAULT_PROTECTED, NOTHING_PROTECTED, PodPreset, Protected, order_key

NS = "namespace"


def run(
    the_pod: dict[str, Any],
    presets: list[PodPreset],
    namespaces: dict[str, dict[str, str]] | None = None,
    protected: Protected = DEFAULT_PROTECTED,
) -> Outcome:
    return apply_presets(the_pod, presets, namespace=NS, namespaces=namespaces or {}, protected=protected)


def result_of(the_pod: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    return jsonpatch.apply_patch(the_pod, list(outcome.patch)) if outcome.patch else copy.deepcopy(the_pod)


def env_names(the_pod: dict[str, Any], index: int = 0) -> list[str]:
    return [e["name"] for e in the_pod["spec"]["containers"][index].get("env") or ()]


def assert_idempotent(the_pod: dict[str, Any], presets: list[PodPreset], **kw: Any) -> None:
    first = run(the_pod, presets, **kw)
    assert run(result_of(the_pod, first), presets, **kw).patch == ()


X1 = {"name": "X", "value": "1"}
X2 = {"name": "X", "value": "2"}
Y = {"name": "Y", "value": "y"}


# The order ----------------------------------------------------------------------------------


def test_order_is_priority_then_cluster_presets_then_name():
    presets = [
        preset("a", env=[Y]),
        preset("b", priority=5, env=[Y]),
        cluster_preset("z", env=[Y]),
        cluster_preset("c", priority=-1, env=[Y]),
        preset("a-high", priority=5, env=[Y]),
    ]
    ordered = sorted(presets, key=order_key)
    assert [p.ref for p in ordered] == ["a-high", "b", "clusterpodpreset/z", "a", "clusterpodpreset/c"]


@pytest.mark.parametrize(
    ("presets", "expected"),
    [
        pytest.param(
            [preset("b", env=[{"name": "B", "value": "1"}]), preset("a", env=[{"name": "A", "value": "1"}])],
            ["A", "B"],
            id="namespaced-only-by-name",
        ),
        pytest.param(
            [
                cluster_preset("b", env=[{"name": "CB", "value": "1"}]),
                cluster_preset("a", env=[{"name": "CA", "value": "1"}]),
            ],
            ["CA", "CB"],
            id="cluster-only-by-name",
        ),
        pytest.param(
            [
                preset("a", env=[{"name": "N", "value": "1"}]),
                cluster_preset("z", env=[{"name": "C", "value": "1"}]),
            ],
            ["C", "N"],
            id="cluster-before-namespaced",
        ),
        pytest.param(
            [
                cluster_preset("a", env=[{"name": "C", "value": "1"}]),
                preset("z", priority=1, env=[{"name": "N", "value": "1"}]),
            ],
            ["N", "C"],
            id="priority-before-kind",
        ),
    ],
)
def test_injected_items_follow_the_preset_order(presets, expected):
    outcome = run(pod(), presets)
    assert env_names(result_of(pod(), outcome)) == expected


def test_each_kind_has_its_own_annotation_and_both_are_idempotent():
    presets = [preset("same", rv="3", env=[Y]), cluster_preset("same", rv="7", env=[Y])]
    result = result_of(pod(), run(pod(), presets))
    annotations = result["metadata"]["annotations"]
    assert annotations["podpreset.admission.kubernetes.io/podpreset-same"] == "3"
    assert annotations["podpreset.admission.kubernetes.io/clusterpodpreset-same"] == "7"
    assert env_names(result) == ["Y"]
    assert_idempotent(pod(), presets)


# namespaceSelector --------------------------------------------------------------------------

PROD = {NS: {"env": "prod", "team": "a"}}


@pytest.mark.parametrize(
    ("namespace_selector", "namespaces", "applies"),
    [
        pytest.param(None, {}, True, id="absent-every-namespace"),
        pytest.param({}, {}, True, id="empty-every-namespace"),
        pytest.param({"matchLabels": {"env": "prod"}}, PROD, True, id="matchLabels-holds"),
        pytest.param({"matchLabels": {"env": "prod"}}, {}, False, id="namespace-without-document-has-no-env"),
        pytest.param(
            {"matchLabels": {"kubernetes.io/metadata.name": NS}},
            {},
            True,
            id="metadata-name-label-always-there",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
            PROD,
            False,
            id="NotIn-excludes",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
            {},
            True,
            id="NotIn-holds-without-the-label",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]},
            PROD,
            False,
            id="DoesNotExist-fails",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]},
            {},
            True,
            id="DoesNotExist-holds",
        ),
    ],
)
def test_namespace_selector(namespace_selector, namespaces, applies):
    spec: dict[str, Any] = {"env": [Y]}
    if namespace_selector is not None:
        spec["namespaceSelector"] = namespace_selector
    outcome = run(pod(), [cluster_preset("c", **spec)], namespaces)
    assert outcome.applied == (("clusterpodpreset/c",) if applies else ())


def test_explain_says_which_selector_of_a_cluster_preset_failed():
    presets = [
        cluster_preset("ns", namespaceSelector={"matchLabels": {"env": "prod"}}, env=[Y]),
        cluster_preset("pod", selector={"matchLabels": {"app": "web"}}, env=[Y]),
    ]
    selection = select_presets({}, presets, namespace_labels={"env": "dev"}, explain=True)
    assert {(m.preset, m.failed, m.unmet) for m in selection.mismatches} == {
        ("clusterpodpreset/ns", "namespaceSelector", ("env=prod",)),
        ("clusterpodpreset/pod", "selector", ("app=web",)),
    }


def test_the_index_offers_cluster_presets_for_every_namespace():
    index = PresetIndex.build([cluster_preset("c", env=[Y]), preset("n", env=[Y])])
    assert [p.ref for p in index.candidates("elsewhere", {})] == ["clusterpodpreset/c"]
    assert {p.ref for p in index.candidates(NS, {})} == {"n", "clusterpodpreset/c"}
    assert len(index) == 2
    assert [p.ref for p in index.relevant(NS)] == ["clusterpodpreset/c", "n"]
    assert index.with_cluster([]).cluster_presets == ()
    assert [p.ref for p in index.with_namespace(NS, []).relevant(NS)] == ["clusterpodpreset/c"]


# Policies -----------------------------------------------------------------------------------


def conflicted_pod() -> dict[str, Any]:
    return pod(env=[X2])


@pytest.mark.parametrize(
    ("policy", "verdict", "env", "applied"),
    [
        pytest.param("SkipAll", "skip-all", ["X"], (), id="SkipAll-pod-unchanged"),
        pytest.param("SkipPreset", "apply", ["X", "Z"], ("other",), id="SkipPreset-others-apply"),
        pytest.param(
            "KeepExisting", "apply", ["X", "Y", "Z"], ("bad", "other"), id="KeepExisting-keeps-pod-item"
        ),
        pytest.param("Reject", "reject", ["X"], (), id="Reject-refuses"),
    ],
)
def test_each_policy_against_the_pods_own_item(policy, verdict, env, applied):
    presets = [
        preset("bad", onConflict=policy, env=[X1, Y]),
        preset("other", env=[{"name": "Z", "value": "z"}]),
    ]
    outcome = run(conflicted_pod(), presets)
    assert outcome.verdict == verdict
    result = result_of(conflicted_pod(), outcome)
    assert env_names(result) == env
    assert result["spec"]["containers"][0]["env"][0] == X2, "the pod's own value is never overridden"
    assert outcome.applied == applied
    [conflict] = outcome.conflicts
    assert (conflict.preset, conflict.policy, conflict.key) == ("bad", policy, "'X'")
    assert policy in conflict.warning()
    assert_idempotent(conflicted_pod(), presets)


@pytest.mark.parametrize(
    ("first", "second", "verdict", "env"),
    [
        pytest.param(
            {}, {"onConflict": "SkipAll"}, "skip-all", [], id="later-SkipAll-conflicts-with-earlier"
        ),
        pytest.param({}, {"onConflict": "SkipPreset"}, "apply", ["X"], id="later-SkipPreset-left-out"),
        pytest.param(
            {}, {"onConflict": "KeepExisting"}, "apply", ["X", "Y"], id="later-KeepExisting-keeps-earlier"
        ),
        pytest.param({}, {"onConflict": "Reject"}, "reject", [], id="later-Reject-refuses"),
        pytest.param(
            {"onConflict": "KeepExisting"},
            {"onConflict": "SkipAll", "priority": 1},
            "apply",
            ["X", "Y"],
            id="priority-makes-the-SkipAll-preset-own-the-key",
        ),
    ],
)
def test_policies_combined_between_two_presets(first, second, verdict, env):
    presets = [preset("a", env=[X1], **first), preset("b", env=[X2, Y], **second)]
    outcome = run(pod(), presets)
    assert outcome.verdict == verdict
    assert env_names(result_of(pod(), outcome)) == env
    assert_idempotent(pod(), presets)


def test_priority_decides_who_owns_a_key_under_keep_existing():
    presets = [preset("a", env=[X1], onConflict="KeepExisting"), preset("b", env=[X2], priority=1)]
    result = result_of(pod(), run(pod(), presets))
    assert result["spec"]["containers"][0]["env"] == [X2]


def test_a_skip_preset_preset_does_not_count_as_existing_for_later_presets():
    presets = [
        preset("a", onConflict="SkipPreset", env=[X1, {"name": "Y", "value": "1"}]),
        preset("b", env=[{"name": "Y", "value": "2"}]),
    ]
    outcome = run(conflicted_pod(), presets)
    assert outcome.verdict == "apply"
    assert result_of(conflicted_pod(), outcome)["spec"]["containers"][0]["env"][1] == {
        "name": "Y",
        "value": "2",
    }


def test_a_skip_all_preset_that_conflicts_makes_no_later_reject_preset_conflict():
    presets = [
        preset("a", env=[X1, {"name": "Y", "value": "1"}]),
        preset("b", onConflict="Reject", env=[{"name": "Y", "value": "2"}]),
    ]
    outcome = run(conflicted_pod(), presets)
    assert outcome.verdict == "skip-all"
    assert [c.preset for c in outcome.conflicts] == ["a"]


def test_reject_wins_over_skip_all():
    presets = [preset("a", env=[X1]), preset("b", onConflict="Reject", env=[X1])]
    assert run(conflicted_pod(), presets).verdict == "reject"


def test_keep_existing_partly_present_on_reinvocation_adds_nothing_and_does_not_conflict_with_itself():
    presets = [preset("a", onConflict="KeepExisting", env=[X1, Y], volumes=[{"name": "v", "emptyDir": {}}])]
    first = run(conflicted_pod(), presets)
    again = result_of(conflicted_pod(), first)
    second = run(again, presets)
    assert second.patch == ()
    assert [c.key for c in second.conflicts] == ["'X'"], "only the pod's own X, never its own Y"


def test_conflict_between_a_cluster_and_a_namespaced_preset_names_both():
    presets = [cluster_preset("proxy", env=[X1]), preset("team", env=[X2])]
    outcome = run(pod(), presets)
    [conflict] = outcome.conflicts
    line = conflict.describe()
    assert "podpreset 'team'" in line and "clusterpodpreset 'proxy'" in line
    assert "1" not in line and "2" not in line, "never values"


def test_reject_is_a_409_naming_preset_container_and_key():
    review = admission_review(conflicted_pod(), uid="u1", namespace=NS)
    decision = admit(review, PresetIndex.build([preset("strict", onConflict="Reject", env=[X1])]))
    response = decision.response["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 409
    message = response["status"]["message"]
    assert "'strict'" in message and "container 'ctr'" in message and "'X'" in message
    assert "patch" not in response
    assert decision.outcome is not None and decision.outcome.action == "rejected"
    assert "rejected" in response["warnings"][0]


# Protected names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "field"),
    [
        pytest.param({"env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "evil"}]}, "env", id="env-prefix"),
        pytest.param({"env": [{"name": "HTTPS_PROXY", "value": "evil"}]}, "env", id="env-exact-name"),
        pytest.param(
            {"envFrom": [{"configMapRef": {"name": "x"}, "prefix": "KUBERNETES_X"}]},
            "envFrom",
            id="envFrom-prefix",
        ),
    ],
)
def test_a_protected_name_is_a_conflict_of_its_preset(item, field):
    protected = Protected.parse(["KUBERNETES_*", "HTTPS_PROXY"])
    outcome = run(pod(), [cluster_preset("attack", **item)], protected=protected)
    assert outcome.verdict == "skip-all"
    [conflict] = outcome.conflicts
    assert conflict.reason == "protected" and conflict.field == field
    assert "protected" in conflict.warning() and "evil" not in conflict.warning()


def test_keep_existing_leaves_out_only_the_protected_item():
    presets = [preset("p", onConflict="KeepExisting", env=[{"name": "KUBERNETES_PORT", "value": "1"}, Y])]
    outcome = run(pod(), presets)
    assert env_names(result_of(pod(), outcome)) == ["Y"]
    assert_idempotent(pod(), presets)


def test_an_env_from_without_prefix_cannot_be_checked_and_nothing_protected_means_nothing_refused():
    assert run(pod(), [preset("p", envFrom=[{"configMapRef": {"name": "x"}}])]).verdict == "apply"
    env = [{"name": "KUBERNETES_X", "value": "1"}]
    assert run(pod(), [preset("p", env=env)], protected=NOTHING_PROTECTED).verdict == "apply"


def test_protected_parse_rejects_bad_entries():
    assert Protected.parse(["A", "B_*"]) == Protected(names=frozenset({"A"}), prefixes=("B_",))
    for bad in ("", "*", "A=B", "A*B*"):
        with pytest.raises(ValueError, match="protected env name"):
            Protected.parse([bad])


# Containers ---------------------------------------------------------------------------------


def two_containers() -> dict[str, Any]:
    the_pod = pod()
    the_pod["spec"]["containers"].append({"name": "istio-proxy", "image": "proxy", "env": [X2]})
    the_pod["spec"]["initContainers"] = [{"name": "setup", "image": "s"}]
    return the_pod


@pytest.mark.parametrize(
    ("selector", "targets"),
    [
        pytest.param(None, None, id="default-all-conflicts-in-sidecar"),
        pytest.param({"exclude": ["istio-*"]}, ["ctr", "setup"], id="exclude-sidecar"),
        pytest.param({"include": ["c*"]}, ["ctr"], id="include-glob"),
        pytest.param({"exclude": ["istio-proxy"], "initContainers": False}, ["ctr"], id="no-init-containers"),
        pytest.param({"include": ["[!i]*"]}, ["ctr", "setup"], id="negated-class"),
    ],
)
def test_container_selector(selector, targets):
    spec: dict[str, Any] = {"env": [X1]}
    if selector is not None:
        spec["containerSelector"] = selector
    presets = [preset("p", volumes=[{"name": "v", "emptyDir": {}}], **spec)]
    outcome = run(two_containers(), presets)
    if targets is None:
        assert outcome.verdict == "skip-all"
        assert [c.container for c in outcome.conflicts] == ["container 'istio-proxy'"]
        return
    result = result_of(two_containers(), outcome)
    got = [
        c["name"]
        for key in ("initContainers", "containers")
        for c in result["spec"][key]
        if X1 in (c.get("env") or ())
    ]
    assert sorted(got) == sorted(targets)
    assert result["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}], "pod-level fields always apply"
    [result_entry] = outcome.results
    assert {label for label, _ in result_entry.skipped_containers} == {
        label
        for label in ("init container 'setup'", "container 'ctr'", "container 'istio-proxy'")
        if label.split("'")[1] not in targets
    }


# Pod-level fields ---------------------------------------------------------------------------


def test_pod_level_fields_are_added_and_their_conflicts_reported():
    presets = [
        preset(
            "p",
            nodeSelector={"disk": "ssd"},
            imagePullSecrets=[{"name": "reg"}, {"name": "own"}],
            podMetadata={"labels": {"team": "a"}, "annotations": {"example.com/note": "x"}},
        )
    ]
    the_pod = pod(labels={"app": "web"}, annotations={"a/b": "c"})
    the_pod["spec"]["imagePullSecrets"] = [{"name": "own"}]
    outcome = run(the_pod, presets)
    result = result_of(the_pod, outcome)
    assert result["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert result["spec"]["imagePullSecrets"] == [{"name": "own"}, {"name": "reg"}]
    assert result["metadata"]["labels"] == {"app": "web", "team": "a"}
    assert result["metadata"]["annotations"]["example.com/note"] == "x"
    assert result["metadata"]["annotations"]["a/b"] == "c"
    assert any(op["path"] == "/metadata/annotations/example.com~1note" for op in outcome.patch)
    assert_idempotent(the_pod, presets)

    the_pod["spec"]["nodeSelector"] = {"disk": "hdd"}
    the_pod["metadata"]["labels"]["team"] = "b"
    conflicts = run(the_pod, presets).conflicts
    assert sorted((c.field, c.key) for c in conflicts) == [("labels", "'team'"), ("nodeSelector", "'disk'")]


def test_pod_level_fields_on_a_pod_without_spec_maps_or_metadata():
    the_pod: dict[str, Any] = {"spec": {"containers": [{"name": "c", "image": "i"}]}}
    presets = [
        preset("p", nodeSelector={"a": "b"}, podMetadata={"labels": {"l": "v"}, "annotations": {"n": "v"}})
    ]
    result = result_of(the_pod, run(the_pod, presets))
    assert result["metadata"] == {
        "labels": {"l": "v"},
        "annotations": {"n": "v", "podpreset.admission.kubernetes.io/podpreset-p": ""},
    }
    assert result["spec"]["nodeSelector"] == {"a": "b"}


def test_added_labels_never_change_which_presets_match_even_on_reinvocation():
    presets = [
        preset("adds", podMetadata={"labels": {"tier": "gold"}}),
        preset("wants-gold", selector={"matchLabels": {"tier": "gold"}}, env=[Y]),
    ]
    first = run(pod(), presets)
    assert first.applied == ("adds",)
    second = run(result_of(pod(), first), presets)
    assert second.patch == () and second.applied == ("adds",)
    assert run(pod(labels={"tier": "gold"}), presets).applied == ("adds", "wants-gold")


# Env order ----------------------------------------------------------------------------------


def test_injected_env_goes_before_the_first_var_that_references_it_with_index_based_adds():
    the_pod = pod(env=[{"name": "A", "value": "1"}, {"name": "URL", "value": "postgres://$(DB_HOST)/app"}])
    presets = [preset("db", env=[{"name": "DB_HOST", "value": "db"}, {"name": "OTHER", "value": "o"}])]
    outcome = run(the_pod, presets)
    assert env_names(result_of(the_pod, outcome)) == ["A", "DB_HOST", "URL", "OTHER"]
    assert [op["path"] for op in outcome.patch if "/env" in op["path"]] == [
        "/spec/containers/0/env/1",
        "/spec/containers/0/env/-",
    ]
    assert_idempotent(the_pod, presets)


@pytest.mark.parametrize(
    ("existing", "added", "order", "stuck"),
    [
        pytest.param(["A=1"], ["B=2"], ["A", "B"], [], id="no-references-append"),
        pytest.param(["A=$(B)"], ["B=2"], ["B", "A"], [], id="before-its-reference"),
        pytest.param(["A=$$(B)"], ["B=2"], ["A", "B"], [], id="escaped-is-no-reference"),
        pytest.param(["A=$(C)"], ["B=2", "C=$(B)"], ["B", "C", "A"], [], id="transitive-through-injected"),
        pytest.param([], ["C=$(B)", "B=1"], ["B", "C"], [], id="injected-among-themselves"),
        pytest.param(["Z=1"], ["C=$(B)", "B=$(C)"], ["Z", "C", "B"], ["C", "B"], id="cycle-appended"),
        pytest.param(
            ["A=$(B)", "H=1"], ["B=$(H)"], ["A", "H", "B"], ["B"], id="against-the-containers-own-order"
        ),
        pytest.param(["S=$(S)"], ["T=1"], ["S", "T"], [], id="self-reference-ignored"),
    ],
)
def test_order_env(existing, added, order, stuck):
    def var(text: str) -> dict[str, Any]:
        name, value = text.split("=", 1)
        return {"name": name, "value": value}

    own = [var(t) for t in existing]
    placed, stuck_vars = order_env(own, [var(t) for t in added])
    final: list[str] = []
    slots: dict[int, list[str]] = {}
    for slot, item in placed:
        slots.setdefault(slot, []).append(item["name"])
    for i in range(len(own) + 1):
        final.extend(slots.get(i, ()))
        if i < len(own):
            final.append(own[i]["name"])
    assert final == order
    assert [v["name"] for v in stuck_vars] == stuck


def test_injected_env_is_ordered_in_a_container_without_env_too():
    presets = [preset("p", env=[{"name": "A", "value": "x-$(B)"}, {"name": "B", "value": "1"}])]
    outcome = run(pod(), presets)
    assert env_names(result_of(pod(), outcome)) == ["B", "A"]
    assert_idempotent(pod(), presets)


def test_a_cycle_is_appended_and_warned_about():
    presets = [preset("c", env=[{"name": "P", "value": "$(Q)"}, {"name": "Q", "value": "$(P)"}])]
    outcome = run(pod(env=[Y]), presets)
    assert outcome.verdict == "apply"
    assert env_names(result_of(pod(env=[Y]), outcome)) == ["Y", "P", "Q"]
    [note] = outcome.notes
    assert "cycle" in note and "'P'" in note and "container 'ctr'" in note
    assert note in outcome.warnings


def test_references_reads_only_unescaped_dollar_parentheses():
    assert references("$(A)-$$(B)-$(C") == {"A"}
    assert references(None) == set()


# The named steps alone ----------------------------------------------------------------------


def test_plan_and_decide_are_plain_values_a_test_can_call_alone():
    presets = [preset("a", env=[X1]), preset("b", onConflict="SkipPreset", env=[X2])]
    plan = plan_presets(pod(), presets, protected=DEFAULT_PROTECTED, count=True)
    assert [(r.preset.name, r.status) for r in plan.results] == [("a", "applied"), ("b", "skipped-preset")]
    assert plan.results[0].added["env"] == 1
    assert decide(plan) == "apply"
    assert [p.name for p in plan.applied] == ["a"]


def test_admit_reads_namespace_labels_passed_in():
    review = admission_review(pod(), uid="u", namespace=NS)
    index = PresetIndex.build(
        [cluster_preset("c", namespaceSelector={"matchLabels": {"env": "prod"}}, env=[Y])]
    )
    assert "patch" not in admit(review, index).response["response"]
    patched = admit(review, index, namespaces=PROD).response["response"]
    ops = json.loads(base64.b64decode(patched["patch"]))
    assert {"op": "add", "path": "/spec/containers/0/env", "value": [Y]} in ops
