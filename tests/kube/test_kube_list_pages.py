"""Listing once before the fork (``KubeSource.list_now``) for the workers to start from.

The requests are answered by stand-ins here (a list answer per resource, then a watch stream);
the list/watch against a real API server is covered by tests/e2e. Paging itself is covered in
tests/kube/test_watches.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from webhook.sources import kube
from webhook.sources.kube import Backoff, KubeSource, Resource


def preset_object(name: str, namespace: str, rv: str) -> dict[str, Any]:
    return {
        "apiVersion": "podpreset.dev/v1",
        "kind": "PodPreset",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv},
        "spec": {"env": [{"name": "A", "value": rv}]},
    }


def namespace_object(name: str, rv: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "resourceVersion": rv, "labels": labels},
    }


class Answer:
    def __init__(self, body: Any = None) -> None:
        self.body = body

    @property
    def data(self) -> bytes:
        return json.dumps(self.body).encode()

    def stream(self, amt: Any = None, decode_content: bool = True) -> Iterator[bytes]:
        return iter(())

    def close(self) -> None:
        return None


class Api:
    """One resource's requests: lists answered from ``items`` at ``rv`` (or refused), watches with
    an empty stream, stopping the source once all three have asked to watch; every request's
    options recorded."""

    def __init__(
        self,
        source: KubeSource,
        watched: set[str],
        rv: str,
        items: list[dict[str, Any]],
        refuse: bool = False,
    ) -> None:
        self.watched = watched
        self.source, self.rv, self.items, self.refuse = source, rv, items, refuse
        self.requests: list[dict[str, Any]] = []
        self.clients: list[Any] = []

    def __call__(self, api_client: Any, **options: Any) -> Answer:
        self.requests.append(options)
        self.clients.append(api_client)
        if options.get("watch"):
            self.watched.add(self.rv)
            if len(self.watched) == 3:
                self.source._stop.set()
            return Answer()
        if self.refuse:
            raise ConnectionRefusedError("no API server")
        return Answer({"metadata": {"resourceVersion": self.rv}, "items": self.items})


class Client:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def scripted_source(
    monkeypatch: pytest.MonkeyPatch, refuse: str | None = None
) -> tuple[KubeSource, dict[str, Api], list[Client]]:
    clients: list[Client] = []

    def make_client(settings: object) -> Client:
        clients.append(Client())
        return clients[-1]

    monkeypatch.setattr(kube, "make_api_client", make_client)
    source = KubeSource(None, backoff=Backoff(base=0.0, cap=0.0))
    contents = {
        "podpresets": ("10", [preset_object("a", "team-a", "9")]),
        "clusterpodpresets": ("11", []),
        "namespaces": ("12", [namespace_object("team-a", "5", team="a")]),
    }
    apis = {}
    watched: set[str] = set()
    for watch in source.watches:
        rv, items = contents[watch.resource.name]
        api = Api(source, watched, rv, items, refuse=watch.resource.name == refuse)
        apis[watch.resource.name] = api
        watch.resource = Resource(watch.resource.name, api, watch.resource.parse)
    return source, apis, clients


def run_watches(source: KubeSource) -> None:
    """Start the watch threads as a worker does; they stop once all three have asked to watch."""
    source.start()
    for watch in source.watches:
        watch.join(timeout=60)  # a bound for a watch that never stops, not a speed
        assert watch._thread is not None and not watch._thread.is_alive()


def test_list_now_lists_all_three_publishes_a_synced_snapshot_and_closes_its_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, apis, clients = scripted_source(monkeypatch)
    assert source.list_now() is True
    snapshot = source.snapshot()
    assert snapshot.synced
    assert snapshot.namespaces["team-a"] == {"team": "a"}
    assert len(clients) == 1 and clients[0].closed
    assert source._api_client is None
    assert [len(api.requests) for api in apis.values()] == [1, 1, 1]
    states = source.health.watches()
    assert {name: state.lists for name, state in states.items()} == {
        "podpresets": 1,
        "clusterpodpresets": 1,
        "namespaces": 1,
    }
    assert source.health.problems() == ()


def test_a_worker_starting_from_a_fresh_list_watches_from_its_resource_versions_without_listing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, apis, clients = scripted_source(monkeypatch)
    assert source.list_now()
    run_watches(source)
    for name, rv in (("podpresets", "10"), ("clusterpodpresets", "11"), ("namespaces", "12")):
        requests = apis[name].requests
        assert [r.get("watch", False) for r in requests[:2]] == [False, True], name
        assert all(r.get("watch") and r["resource_version"] == rv for r in requests[1:]), name
    # the worker's watches use a client of their own, not the one closed before the fork
    assert len(clients) == 2 and not clients[1].closed
    assert all(client is clients[1] for api in apis.values() for client in api.clients[1:])
    assert source.snapshot().synced


def test_a_failed_list_now_forgets_every_list_and_the_worker_lists_for_itself(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    source, apis, clients = scripted_source(monkeypatch, refuse="namespaces")
    with caplog.at_level("WARNING", logger="webhook.sources.kube"):
        assert source.list_now() is False
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "ConnectionRefusedError" in warnings[0].getMessage()
    assert not source.snapshot().synced
    assert len(source.snapshot().index) == 0
    assert all(w.resource_version is None and not w.synced and not w.items for w in source.watches)
    assert source.health.watches() == {}
    assert clients[0].closed and source._api_client is None
    apis["namespaces"].refuse = False
    run_watches(source)
    for api in apis.values():  # each list is made again, in the worker, before its watch
        assert [r.get("watch", False) for r in api.requests[:3]] == [False, False, True]
        assert all(r.get("watch") for r in api.requests[2:])
    assert source.snapshot().synced


def test_a_list_made_long_before_the_worker_starts_is_not_served(monkeypatch: pytest.MonkeyPatch) -> None:
    source, apis, _ = scripted_source(monkeypatch)
    assert source.list_now()
    source.presets._prelisted_at = (source.presets._prelisted_at or 0) - kube.PRELIST_MAX_AGE - 1
    observed: list[bool] = []
    stop_first_list = threading.Event()
    original = apis["podpresets"].__call__

    def watch_listing(api_client: Any, **options: Any) -> Answer:
        if not options.get("watch") and not stop_first_list.is_set():
            stop_first_list.set()
            observed.append(source.snapshot().synced)  # as readiness sees it before the relist
        return original(api_client, **options)

    source.presets.resource = Resource("podpresets", watch_listing, source.presets.resource.parse)
    run_watches(source)
    assert observed == [False]  # the stale list was dropped before any worker thread ran
    for api in apis.values():  # all three list again, then watch
        assert [r.get("watch", False) for r in api.requests[:3]] == [False, False, True]
        assert all(r.get("watch") for r in api.requests[2:])
    assert source.snapshot().synced
