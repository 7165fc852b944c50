"""Listing in pages, and listing once before the fork (``list_now``) for the workers to start from.

The list/watch against a real API server is covered by tests/e2e; here the API is a stand-in that
answers list calls the way kube-apiserver pages them (``limit`` and ``continue``).
"""

from __future__ import annotations

from typing import Any

import pytest

from webhook import kube
from webhook.kube import LIST_PAGE, KubeSource


class PagingApi:
    """Answers ``list_cluster_custom_object`` from ``objects``, ``limit`` at a time."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects
        self.calls: list[dict[str, Any]] = []

    def list_cluster_custom_object(self, group: str, version: str, plural: str, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        start = int(kwargs.get("_continue") or 0)
        limit = kwargs["limit"]
        end = start + limit
        metadata: dict[str, Any] = {"resourceVersion": "777"}
        if end < len(self.objects):
            metadata["continue"] = str(end)
        return {"items": self.objects[start:end], "metadata": metadata}


def objects(count: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "podpreset.dev/v1",
            "kind": "PodPreset",
            "metadata": {"name": f"p-{n:05d}", "namespace": f"ns-{n % 7}", "resourceVersion": str(n)},
            "spec": {"env": [{"name": "A", "value": str(n)}]},
        }
        for n in range(count)
    ]


def test_a_list_larger_than_a_page_is_read_page_by_page_into_one_snapshot() -> None:
    api = PagingApi(objects(2 * LIST_PAGE + 3))
    source = KubeSource(None)
    source._api = lambda: api  # type: ignore[method-assign]
    source._list()
    snapshot = source.snapshot()
    assert snapshot.synced
    assert len(snapshot.index) == 2 * LIST_PAGE + 3
    assert [call.get("_continue") for call in api.calls] == [None, str(LIST_PAGE), str(2 * LIST_PAGE)]
    assert all(call["limit"] == LIST_PAGE for call in api.calls)
    assert source._resource_version == "777"


def test_list_now_leaves_a_synced_source_without_a_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    api = PagingApi(objects(3))
    closed: list[bool] = []

    class Client:
        def close(self) -> None:
            closed.append(True)

    monkeypatch.setattr(kube, "make_api_client", lambda settings: Client())
    source = KubeSource(None)
    source._api = lambda: api  # type: ignore[method-assign]
    assert source.list_now() is True
    assert source.snapshot().synced
    assert len(source.snapshot().index) == 3
    assert closed == [True]
    assert source._api_client is None


def test_a_failed_list_now_leaves_the_worker_to_list_for_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(settings: object) -> Any:
        raise ConnectionRefusedError("no API server")

    monkeypatch.setattr(kube, "make_api_client", refuse)
    source = KubeSource(None)
    assert source.list_now() is False
    assert not source.snapshot().synced
    assert source._resource_version is None


def test_a_list_made_long_before_the_worker_starts_is_not_served(monkeypatch: pytest.MonkeyPatch) -> None:
    api = PagingApi(objects(3))

    class Client:
        def close(self) -> None:
            pass

    monkeypatch.setattr(kube, "make_api_client", lambda settings: Client())
    source = KubeSource(None)
    source._api = lambda: api  # type: ignore[method-assign]
    assert source.list_now()
    source._prelisted_at = (source._prelisted_at or 0) - kube.PRELIST_MAX_AGE - 1
    source._forget_stale_prelist()
    assert not source.snapshot().synced
    assert source._resource_version is None
