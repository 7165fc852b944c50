"""The status pass's round: what it writes, how many per round, and nothing when not leading."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from presets.model import DEFAULT_PROTECTED, DEFAULT_VOLUME_TYPES
from presets.status import PresetState, judge_preset
from webhook.controller.api import ApiError
from webhook.controller.command import ControllerSettings
from webhook.controller.loop import PassContext
from webhook.controller.status import StatusPass


class FakeApi:
    def __init__(self, missing: set[str] | None = None) -> None:
        self.patches: list[tuple[str, Any]] = []
        self.missing = missing or set()

    def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        assert method == "PATCH", (method, path)
        if any(name in path for name in self.missing):
            raise ApiError(404, "Not Found")
        self.patches.append((path, body))
        return {}


def state(name: str) -> PresetState:
    obj = {
        "apiVersion": "podpreset.dev/v1",
        "kind": "PodPreset",
        "metadata": {"name": name, "namespace": "team", "generation": 1},
        "spec": {"env": [{"name": "A", "value": "1"}]},
    }
    preset, validity = judge_preset(
        obj, max_bytes=1 << 20, protected=DEFAULT_PROTECTED, volume_types=DEFAULT_VOLUME_TYPES
    )
    return PresetState(
        key=("PodPreset", "team", name), generation=1, preset=preset, validity=validity, status={}
    )


def status_pass(api: FakeApi, **settings: Any) -> StatusPass:
    made = StatusPass(ControllerSettings(**settings), api, CollectorRegistry())  # type: ignore[arg-type]
    for i in range(5):
        made.presets.items[("team", f"p{i}")] = state(f"p{i}")
    return made


def test_a_round_writes_at_most_rate_times_interval_and_leaves_the_rest_for_the_next() -> None:
    api = FakeApi()
    made = status_pass(api, status_interval=1.0, status_writes_per_second=2.0)
    context = PassContext(leading=lambda: True, wake=lambda: None)
    assert made.round(context) == 2
    assert [p for p, _ in api.patches] == [
        "/apis/podpreset.dev/v1/namespaces/team/podpresets/p0/status",
        "/apis/podpreset.dev/v1/namespaces/team/podpresets/p1/status",
    ]
    assert made._changed.is_set()
    assert made.round(context) == 2  # what it wrote is not written again before the watch shows it
    assert made.round(context) == 1
    assert made.round(context) == 0
    body = api.patches[0][1]
    assert body["status"]["conditions"][0]["reason"] == "Accepted"
    assert body["status"]["injectedPods"] == 0


def test_nothing_is_written_while_not_leading() -> None:
    api = FakeApi()
    made = status_pass(api)
    assert made.round(PassContext(leading=lambda: False, wake=lambda: None)) == 0
    assert api.patches == []


def test_a_preset_deleted_meanwhile_is_skipped() -> None:
    api = FakeApi(missing={"/p0/"})
    made = status_pass(api)
    assert made.round(PassContext(leading=lambda: True, wake=lambda: None)) == 4
    assert not any("/p0/" in p for p, _ in api.patches)
