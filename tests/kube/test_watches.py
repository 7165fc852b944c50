"""The three watches of the Kubernetes source: resume, relist on 410, namespace labels, readiness.

The requests are scripted here (a list answer, then watch streams); the same loop against a real
API server is covered by tests/e2e.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from webhook.sources.kube import (
    CLUSTERPODPRESETS,
    NAMESPACES,
    PODPRESETS,
    Backoff,
    KubeSource,
    Resource,
    Watch,
)


def namespace_object(name: str, rv: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "resourceVersion": rv, "labels": labels},
    }


def preset_object(name: str, namespace: str, rv: str) -> dict[str, Any]:
    return {
        "apiVersion": "podpreset.dev/v1",
        "kind": "PodPreset",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv},
        "spec": {"env": [{"name": "A", "value": "1"}]},
    }


@dataclass
class Answer:
    """What a request returns: a list's body, or a watch's stream of events."""

    body: Any = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def data(self) -> bytes:
        return json.dumps(self.body).encode()

    def stream(self, amt: Any = None, decode_content: bool = True) -> Iterator[bytes]:
        for event in self.events:
            yield json.dumps(event).encode() + b"\n"

    def close(self) -> None:
        return None


@dataclass
class Script:
    """Answers requests in order, records each request's options; past the script, stops the
    watch and answers with an empty stream."""

    answers: list[Answer]
    stop: threading.Event
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, api_client: Any, **options: Any) -> Answer:
        self.requests.append(options)
        if len(self.requests) > len(self.answers):
            self.stop.set()
            return Answer()
        return self.answers[len(self.requests) - 1]


def run_scripted(resource: Resource[Any], answers: list[Answer]) -> tuple[Watch[Any], Script, list[Any]]:
    stop = threading.Event()
    script = Script(answers, stop)
    changes: list[Any] = []
    scripted = Resource(resource.name, script, resource.parse, resource.fingerprint)
    watch = Watch(
        scripted,
        lambda w, changed: changes.append(changed),
        object,
        backoff=Backoff(base=0.0, cap=0.0),
        stop=stop,
    )
    watch._run()
    return watch, script, changes


def listing(rv: str, *items: dict[str, Any]) -> Answer:
    return Answer(body={"metadata": {"resourceVersion": rv}, "items": list(items)})


def test_a_watch_resumes_from_the_last_resource_version_it_saw_and_relists_on_410() -> None:
    watch, script, changes = run_scripted(
        PODPRESETS,
        [
            listing("10", preset_object("a", "team-a", "9")),
            Answer(events=[{"type": "ADDED", "object": preset_object("b", "team-a", "11")}]),
            Answer(events=[{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}]),
            Answer(
                events=[{"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}]
            ),
            listing("20", preset_object("b", "team-a", "18")),
        ],
    )

    versions = [(r.get("watch", False), r.get("resource_version")) for r in script.requests]
    assert versions == [(False, None), (True, "10"), (True, "11"), (True, "15"), (False, None), (True, "20")]
    assert all(r["_preload_content"] is False for r in script.requests)
    assert all(r["allow_watch_bookmarks"] for r in script.requests if r.get("watch"))
    assert sorted(name for _, name in watch.items) == ["b"]  # the relist replaced everything
    assert watch.resource_version == "20"
    assert changes == [None, ("team-a",), None]


def test_a_failed_request_is_reported_then_retried_and_the_report_clears() -> None:
    class Refused(Exception):
        status = 403
        reason = "Forbidden"

    stop = threading.Event()
    calls: list[dict[str, Any]] = []
    changes: list[Any] = []

    def call(api_client: Any, **options: Any) -> Answer:
        calls.append(options)
        if len(calls) == 1:
            raise Refused()
        if len(calls) == 3:
            stop.set()
        return listing("3") if len(calls) == 2 else Answer()

    watch = Watch(
        Resource("namespaces", call, NAMESPACES.parse),
        lambda w, changed: changes.append((changed, w.problem_lines())),
        object,
        backoff=Backoff(base=0.0, cap=0.0),
        stop=stop,
    )
    watch._run()
    assert changes == [((), ("kubernetes: namespaces: API error 403 Forbidden",)), (None, ())]
    assert watch.synced


def test_the_source_is_synced_only_when_all_three_resources_have_listed() -> None:
    source = KubeSource(None)
    states = []
    for watch in source.watches:
        watch.items, watch.synced = {}, True
        source._changed(watch, None)
        states.append(source.snapshot().synced)
    assert states == [False, False, True]


def test_a_relabelled_namespace_is_in_the_next_snapshot_and_the_index_is_kept() -> None:
    source = KubeSource(None)
    source.presets.handle({"type": "ADDED", "object": preset_object("a", "prod", "2")})
    source.namespaces.handle({"type": "ADDED", "object": namespace_object("prod", "3", env="prod")})
    before = source.snapshot()
    source.namespaces.handle({"type": "MODIFIED", "object": namespace_object("prod", "4", env="staging")})
    after = source.snapshot()
    source.namespaces.handle({"type": "DELETED", "object": namespace_object("prod", "5", env="staging")})
    gone = source.snapshot()

    assert dict(before.namespaces["prod"]) == {"env": "prod"}
    assert dict(after.namespaces["prod"]) == {"env": "staging"}
    assert "prod" not in gone.namespaces
    assert after.index is before.index  # a namespace event does not rebuild the presets
    assert source.namespaces.resource_version == "5"


def test_namespace_labels_of_a_list_replace_the_previous_ones() -> None:
    watch, _, _ = run_scripted(
        NAMESPACES,
        [listing("7", namespace_object("a", "1", team="x"), namespace_object("b", "2"))],
    )
    assert {name: dict(labels) for (_, name), labels in watch.items.items()} == {"a": {"team": "x"}, "b": {}}


def cluster_preset_object(name: str, rv: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "podpreset.dev/v1",
        "kind": "ClusterPodPreset",
        "metadata": {"name": name, "resourceVersion": rv},
        "spec": spec or {"env": [{"name": "A", "value": "1"}]},
    }


def test_cluster_preset_events_replace_the_cluster_presets_and_keep_the_namespaced_ones() -> None:
    source = KubeSource(None)
    for watch in source.watches:
        watch.synced = True
        source._changed(watch, None)
    source.presets.handle({"type": "ADDED", "object": preset_object("a", "team-a", "2")})
    source.cluster_presets.handle({"type": "ADDED", "object": cluster_preset_object("proxy", "3")})
    added = source.snapshot()
    source.cluster_presets.handle({"type": "DELETED", "object": cluster_preset_object("proxy", "4")})
    deleted = source.snapshot()

    assert [(p.kind, p.name, p.namespace) for p in added.index.cluster_presets] == [
        ("ClusterPodPreset", "proxy", "")
    ]
    assert [p.name for p in added.index.for_namespace("team-a")] == ["a"]
    assert deleted.index.cluster_presets == ()
    assert [p.name for p in deleted.index.for_namespace("team-a")] == ["a"]


def test_an_invalid_cluster_preset_is_reported_by_kind_and_name() -> None:
    source = KubeSource(None)
    source.cluster_presets.handle(
        {"type": "ADDED", "object": cluster_preset_object("bad", "5", env=[{"name": "A=B", "value": "1"}])}
    )
    assert source.snapshot().index.cluster_presets == ()
    assert source.snapshot().problems == (
        "clusterpodpreset bad: spec.env[0].name: 'A=B' must not contain '='",
    )


def test_list_items_without_kind_are_read_as_their_resources_kind() -> None:
    item = cluster_preset_object("proxy", "3")
    del item["kind"], item["apiVersion"]
    watch, _, _ = run_scripted(CLUSTERPODPRESETS, [listing("9", item)])
    (preset,) = watch.items.values()
    assert (preset.kind, preset.name) == ("ClusterPodPreset", "proxy")


def test_a_list_is_read_in_pages_and_the_watch_starts_from_the_last_pages_version() -> None:
    first = listing("30", namespace_object("a", "1"))
    first.body["metadata"]["continue"] = "token-1"
    watch, script, _ = run_scripted(NAMESPACES, [first, listing("30", namespace_object("b", "2"))])

    pages = [(r.get("limit"), r.get("_continue")) for r in script.requests if not r.get("watch")]
    assert pages == [(500, None), (500, "token-1")]
    assert sorted(name for _, name in watch.items) == ["a", "b"]
    assert script.requests[-1]["resource_version"] == "30"


def test_a_status_write_keeps_the_preset_and_its_resource_version_a_spec_change_replaces_it() -> None:
    with_status = dict(preset_object("a", "team-a", "12"), status={"injectedPods": 3})
    changed_spec = dict(preset_object("a", "team-a", "13"), spec={"env": [{"name": "A", "value": "2"}]})
    watch, _, changes = run_scripted(
        PODPRESETS,
        [
            listing("10", preset_object("a", "team-a", "9")),
            Answer(
                events=[
                    {"type": "MODIFIED", "object": with_status},
                    {
                        "type": "MODIFIED",
                        "object": dict(
                            with_status,
                            metadata={**with_status["metadata"], "resourceVersion": "14", "generation": 1},
                        ),
                    },
                ]
            ),
            Answer(events=[{"type": "MODIFIED", "object": changed_spec}]),
        ],
    )
    preset = watch.items[("team-a", "a")]
    assert preset.resource_version == "13"
    assert preset.env == ({"name": "A", "value": "2"},)
    assert changes == [None, ("team-a",)]  # the status-only events published nothing
    assert watch.resource_version == "13"


def test_without_a_fingerprint_every_modified_event_is_parsed() -> None:
    plain = Resource(PODPRESETS.name, PODPRESETS.call, PODPRESETS.parse)
    watch, _, changes = run_scripted(
        plain,
        [
            listing("10", preset_object("a", "team-a", "9")),
            Answer(events=[{"type": "MODIFIED", "object": preset_object("a", "team-a", "12")}]),
        ],
    )
    assert watch.items[("team-a", "a")].resource_version == "12"
    assert changes == [None, ("team-a",)]
