"""The Kubernetes source's bookkeeping, fed watch events as the API server sends them.

The list/watch against a real API server is covered by tests/e2e.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from webhook.sources.kube import Backoff, KubeSource, WatchExpired, WatchFailed, parse_object


def preset_object(name: str, namespace: str = "team-a", rv: str = "1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "podpreset.dev/v1",
        "kind": "PodPreset",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv},
        "spec": spec or {"env": [{"name": "A", "value": "1"}]},
    }


def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


def test_a_valid_object_becomes_a_preset_of_its_namespace_with_its_resource_version() -> None:
    preset, problems = parse_object(preset_object("db", rv="42"))
    assert problems == ()
    assert preset is not None
    assert (preset.namespace, preset.name, preset.resource_version) == ("team-a", "db", "42")


def test_an_invalid_object_is_reported_by_namespace_name_and_field() -> None:
    preset, problems = parse_object(preset_object("db", volumeMounts=[{"name": "x", "mountPath": "/x"}]))
    assert preset is None
    assert problems == (
        "podpreset team-a/db: spec.volumeMounts[0].name: volume 'x' is not declared in "
        "spec.volumes of this preset; add it there",
    )


def test_the_source_is_not_synced_before_the_first_list() -> None:
    source = KubeSource(None)
    assert not source.snapshot().synced
    assert len(source.snapshot().index) == 0


def test_watch_events_add_change_and_delete_presets_each_in_a_new_snapshot() -> None:
    source = KubeSource(None)
    source.presets.handle(event("ADDED", preset_object("a", rv="5")))
    first = source.snapshot()
    source.presets.handle(event("MODIFIED", preset_object("a", rv="6", env=[{"name": "B", "value": "2"}])))
    second = source.snapshot()
    source.presets.handle(event("DELETED", preset_object("a", rv="7")))
    third = source.snapshot()

    assert first is not second is not third
    assert [p.resource_version for p in first.index.for_namespace("team-a")] == ["5"]
    assert [p.env for p in second.index.for_namespace("team-a")] == [({"name": "B", "value": "2"},)]
    assert third.index.for_namespace("team-a") == ()
    assert source.presets.resource_version == "7"


def test_an_object_turned_invalid_is_dropped_and_reported_and_a_fix_clears_the_report() -> None:
    source = KubeSource(None)
    source.presets.handle(event("ADDED", preset_object("a")))
    source.presets.handle(event("MODIFIED", preset_object("a", rv="2", env=[{"name": "A=B", "value": "1"}])))
    broken = source.snapshot()
    source.presets.handle(event("MODIFIED", preset_object("a", rv="3")))
    fixed = source.snapshot()

    assert broken.index.for_namespace("team-a") == ()
    assert broken.problems == ("podpreset team-a/a: spec.env[0].name: 'A=B' must not contain '='",)
    assert fixed.problems == ()
    assert [p.name for p in fixed.index.for_namespace("team-a")] == ["a"]


def test_a_bookmark_moves_the_resource_version_without_a_new_snapshot() -> None:
    source = KubeSource(None)
    before = source.snapshot()
    source.presets.handle(
        {"type": "BOOKMARK", "object": {"kind": "PodPreset", "metadata": {"resourceVersion": "99"}}}
    )
    assert source.snapshot() is before
    assert source.presets.resource_version == "99"


def test_an_expired_resource_version_asks_for_a_relist() -> None:
    source = KubeSource(None)
    with pytest.raises(WatchExpired):
        source.presets.handle(
            {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
        )
    with pytest.raises(WatchFailed):
        source.presets.handle({"type": "ERROR", "object": {"kind": "Status", "code": 500, "message": "boom"}})


@pytest.mark.parametrize("attempt", range(12))
def test_backoff_grows_is_capped_and_jittered(attempt: int) -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    ceiling = min(30.0, 0.5 * 2**attempt)
    delays = {backoff.delay(attempt, random.Random(seed)) for seed in range(20)}
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(delays) > 1
