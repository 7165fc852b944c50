"""The rollout fingerprint of a workload's pod template, and what a pass decides from it."""

from typing import Any

import pytest
from support.presets import cluster_preset, preset

from presets.model import Protected, VolumeTypes
from presets.rollout import (
    HASH_ANNOTATION,
    NEVER,
    STATE_ANNOTATION,
    Fingerprint,
    changes,
    decide,
    fingerprint,
    opted_in,
    read_record,
    rollout_patch,
)
from presets.selection import PresetIndex

WEB = {"matchLabels": {"app": "web"}}
DB = {"matchLabels": {"app": "db"}}


def template(labels: dict[str, str] | None = None, **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "web"} if labels is None else labels},
        "spec": {"containers": [{"name": "app", "image": "img", **container}]},
    }


def env(name: str, value: str) -> list[dict[str, str]]:
    return [{"name": name, "value": value}]


def fp(*presets: Any, tmpl: dict[str, Any] | None = None, **options: Any) -> Fingerprint:
    return fingerprint(tmpl or template(), "namespace", PresetIndex.build(presets), **options)


def workload(recorded: Fingerprint | None, tmpl: dict[str, Any] | None = None) -> dict[str, Any]:
    annotations = {STATE_ANNOTATION: recorded.record()} if recorded else {}
    return {
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "namespace", "annotations": annotations},
        "spec": {"template": tmpl or template()},
    }


BASE = preset("a", selector=WEB, env=env("A", "1"))


@pytest.mark.parametrize(
    "edited",
    [
        pytest.param(preset("a", rv="999", selector=WEB, env=env("A", "1")), id="resourceVersion-only"),
        pytest.param(
            preset("a", selector={"matchLabels": {"app": "web"}, "matchExpressions": []}, env=env("A", "1")),
            id="selector-rewritten-still-matching",
        ),
        pytest.param(preset("a", selector={}, env=env("A", "1")), id="selector-widened-still-matching"),
    ],
)
def test_an_edit_that_changes_nothing_the_preset_injects_leaves_the_hash(edited):
    assert fp(edited) == fp(BASE)
    assert fp(edited).hash == fp(BASE).hash


def test_a_preset_that_does_not_match_the_template_is_not_in_the_hash():
    before = fp(BASE)
    other = preset("b", selector=DB, env=env("B", "1"))
    assert fp(BASE, other).hash == before.hash
    assert fp(BASE, preset("b", selector=DB, env=env("B", "2"))).hash == before.hash
    assert fp(BASE, preset("c", namespace="elsewhere", env=env("C", "1"))).hash == before.hash


@pytest.mark.parametrize(
    "edited",
    [
        pytest.param(preset("a", selector=WEB, env=env("A", "2")), id="env-value"),
        pytest.param(preset("a", selector=WEB, env=env("A", "1"), priority=5), id="priority"),
        pytest.param(
            preset("a", selector=WEB, env=env("A", "1"), tolerations=[{"operator": "Exists"}]),
            id="toleration-added",
        ),
        pytest.param(
            preset("a", selector=WEB, env=env("A", "1"), podMetadata={"labels": {"team": "x"}}),
            id="pod-label-added",
        ),
    ],
)
def test_an_edit_of_what_a_matching_preset_injects_changes_the_hash_and_rolls(edited):
    before, after = fp(BASE), fp(edited)
    assert after.hash != before.hash
    step = decide(workload(before), after)
    assert (step.action, step.changes) == ("roll", ("podpreset a changed",))


def test_a_preset_starting_and_stopping_to_match_rolls_naming_it():
    before = fp(BASE)
    added = fp(BASE, cluster_preset("proxy", env=env("PROXY", "p")))
    assert decide(workload(before), added).changes == ("clusterpodpreset proxy now applies to it (applied)",)
    assert decide(workload(added), before).changes == (
        "clusterpodpreset proxy no longer matches it (or was deleted)",
    )


def test_never_presets_are_named_but_left_out_of_the_hash_and_never_roll():
    never = preset("n", selector=WEB, env=env("N", "1"), rollout="Never")
    with_never = fp(BASE, never)
    assert dict(with_never.entries)["podpreset/n"] == NEVER
    assert with_never.hash == fp(BASE).hash
    assert fp(BASE, preset("n", selector=WEB, env=env("N", "2"), rollout="Never")) == with_never
    # Opting out, or back in, records the change without rolling.
    on_change = fp(BASE, preset("n", selector=WEB, env=env("N", "1")))
    assert decide(workload(on_change), with_never).action == "record"
    assert decide(workload(with_never), on_change).action == "record"
    assert decide(workload(with_never), with_never).action == "none"


def test_a_never_preset_whose_edit_changes_another_presets_outcome_rolls_for_that_other():
    before = fp(BASE, preset("n", selector=WEB, env=env("Z", "1"), rollout="Never"))
    clashing = fp(BASE, preset("n", selector=WEB, env=env("A", "other"), rollout="Never"))
    assert clashing.hash != before.hash
    # n comes after a and conflicts with it (SkipAll): a is no longer applied either.
    assert decide(workload(before), clashing).changes == ("podpreset a applied -> not-applied",)


@pytest.mark.parametrize(
    ("policy", "effect_of_a"),
    [
        pytest.param("SkipAll", "not-applied", id="SkipAll-skips-every-preset"),
        pytest.param("SkipPreset", "applied", id="SkipPreset-leaves-only-itself-out"),
    ],
)
def test_the_policy_outcome_is_part_of_each_entry(policy, effect_of_a):
    clash = preset("b", selector=WEB, env=env("A", "2"), onConflict=policy)
    entries = dict(fp(BASE, clash).entries)
    assert entries["podpreset/a"].endswith("/" + effect_of_a)
    assert entries["podpreset/b"].endswith("/conflict" if policy == "SkipAll" else "/skipped-preset")


def test_a_changed_policy_outcome_rolls_even_when_no_spec_changed():
    clash = preset("b", selector=WEB, env=env("A", "2"), onConflict="SkipPreset")
    before = fp(BASE, clash)
    after = fp(BASE, clash, protected=Protected.parse(["A"]))
    step = decide(workload(before), after)
    assert step.action == "roll"
    assert "podpreset a applied -> conflict" in step.changes


def test_a_preset_refused_for_its_volume_types_is_recorded_as_refused():
    host = preset("h", selector=WEB, volumes=[{"name": "h", "hostPath": {"path": "/x"}}])
    assert dict(fp(host).entries)["podpreset/h"].endswith("/refused")
    allowed = fp(host, namespaced_volume_types=VolumeTypes.parse(["*"]))
    assert dict(allowed.entries)["podpreset/h"].endswith("/applied")


def test_a_template_that_excludes_itself_or_a_namespace_the_webhook_ignores_gets_nothing():
    excluded = template()
    excluded["metadata"]["annotations"] = {"podpreset.admission.kubernetes.io/exclude": "true"}
    assert fp(BASE, tmpl=excluded).entries == ()
    ignored = fingerprint(
        template(),
        "namespace",
        PresetIndex.build([BASE]),
        namespaces={"namespace": {"podpreset.dev/ignore": ""}},
    )
    assert ignored.entries == ()


def test_cluster_presets_see_the_namespace_labels():
    prod_only = cluster_preset("prod", namespaceSelector={"matchLabels": {"env": "prod"}}, env=env("P", "1"))
    index = PresetIndex.build([prod_only])
    prod = fingerprint(template(), "namespace", index, namespaces={"namespace": {"env": "prod"}})
    dev = fingerprint(template(), "namespace", index, namespaces={"namespace": {"env": "dev"}})
    assert [k for k, _ in prod.entries] == ["clusterpodpreset/prod"]
    assert dev.entries == ()


def test_first_sight_records_without_rolling():
    step = decide(workload(None), fp(BASE))
    assert step.action == "record"
    patch = rollout_patch(step, "42")
    assert patch == {
        "metadata": {"resourceVersion": "42", "annotations": {STATE_ANNOTATION: fp(BASE).record()}}
    }


def test_a_roll_writes_the_template_hash_and_the_record_conditionally():
    step = decide(workload(fp(BASE)), fp(preset("a", selector=WEB, env=env("A", "2"))))
    patch = rollout_patch(step, "7")
    assert patch is not None
    assert patch["metadata"]["resourceVersion"] == "7"
    assert patch["spec"]["template"]["metadata"]["annotations"] == {HASH_ANNOTATION: step.fingerprint.hash}
    assert read_record(patch["metadata"]["annotations"][STATE_ANNOTATION]) == step.fingerprint


def test_a_template_changed_by_its_owner_is_recorded_not_rolled_again():
    before = fp(BASE)
    edited_template = template(image_pull_policy_x="y")
    after = fp(preset("a", selector=WEB, env=env("A", "2")), tmpl=edited_template)
    assert decide(workload(before), after).action == "record"


def test_our_own_hash_annotation_is_not_part_of_the_template_digest():
    rolled = template()
    rolled["metadata"]["annotations"] = {HASH_ANNOTATION: "abc"}
    assert fp(BASE, tmpl=rolled) == fp(BASE)


def test_a_roll_into_pods_that_would_be_refused_is_held():
    before = fp(BASE)
    rejecting = fp(BASE, preset("r", selector=WEB, env=env("A", "2"), onConflict="Reject"))
    assert rejecting.refused
    step = decide(workload(before), rejecting)
    assert step.action == "hold"
    assert rollout_patch(step, "1") is None


def test_an_unreadable_record_counts_as_first_sight():
    broken = workload(None)
    broken["metadata"]["annotations"][STATE_ANNOTATION] = "{not json"
    assert decide(broken, fp(BASE)).action == "record"
    assert read_record('{"presets": [], "template": "x"}') is None


def test_the_changes_list_both_a_spec_and_an_effect_change():
    old = Fingerprint(entries=(("podpreset/a", "111/applied"),), template="t")
    new = Fingerprint(entries=(("podpreset/a", "222/conflict"),), template="t")
    assert changes(old, new) == ("podpreset a changed, applied -> conflict",)


@pytest.mark.parametrize(
    ("annotations", "namespace_labels", "expected"),
    [
        pytest.param({"podpreset.dev/rollout": "true"}, {}, True, id="workload-annotation"),
        pytest.param({}, {"podpreset.dev/rollout": "true"}, True, id="namespace-label"),
        pytest.param(
            {"podpreset.dev/rollout": "false"},
            {"podpreset.dev/rollout": "true"},
            False,
            id="workload-opts-out",
        ),
        pytest.param({"podpreset.dev/rollout": "True"}, {}, False, id="only-the-string-true"),
        pytest.param({}, {}, False, id="neither"),
    ],
)
def test_opting_in(annotations, namespace_labels, expected):
    assert opted_in({"metadata": {"annotations": annotations}}, namespace_labels) is expected
