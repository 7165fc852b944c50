"""The rollout pass's own rules, with an API stand-in: the rate limit across passes, a workload
changed meanwhile, a controller that stops leading mid-pass. The pass against a real API server
is tests/e2e/test_rollout_pass_on_the_api_server.py's."""

from __future__ import annotations

from typing import Any

from presets.model import parse_api_object
from presets.rollout import fingerprint
from presets.selection import PresetIndex
from webhook.controller.rollout import Options, RateLimit, RolloutPass, run_pass


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Status(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"API error {status}")
        self.status = status


def deployment(name: str, state: str | None = None) -> dict[str, Any]:
    annotations = {"podpreset.dev/rollout": "true"}
    if state:
        annotations["podpreset.dev/rollout-state"] = state
    return {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": "5", "annotations": annotations},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "img"}]},
            }
        },
    }


PRESET = {
    "metadata": {"name": "tuning", "namespace": "ns", "resourceVersion": "1"},
    "spec": {"selector": {"matchLabels": {"app": "web"}}, "env": [{"name": "W", "value": "1"}]},
}


class FakeApi:
    """Lists what it was given; PATCH and POST are recorded, or answered with ``patch_status``."""

    def __init__(self, deployments: list[dict[str, Any]], patch_status: int = 0) -> None:
        self.deployments = deployments
        self.patch_status = patch_status
        self.writes: list[tuple[str, str]] = []

    def request(self, method: str, path: str, **options: Any) -> Any:
        if method == "GET":
            if path.endswith("/podpresets"):
                return {"items": [PRESET]}
            if path.endswith("/deployments"):
                return {"items": self.deployments}
            if path == "/api/v1/namespaces":
                return {"items": [{"metadata": {"name": "ns"}}]}
            return {"items": []}
        if method == "PATCH" and self.patch_status:
            raise Status(self.patch_status)
        self.writes.append((method, path))
        return {}


def stale(name: str) -> dict[str, Any]:
    """A workload whose record was made when the preset injected W=0 (so it changed for it)."""
    old = {**PRESET, "spec": {**PRESET["spec"], "env": [{"name": "W", "value": "0"}]}}
    preset, problems = parse_api_object({"apiVersion": "podpreset.dev/v1", "kind": "PodPreset", **old})
    assert preset is not None, problems
    template = deployment(name)["spec"]["template"]
    recorded = fingerprint(template, "ns", PresetIndex.build([preset]), namespaces={"ns": {}})
    return deployment(name, recorded.record())


def test_the_rate_limit_refills_per_minute_and_carries_across_passes():
    clock = Clock()
    limit = RateLimit(2, clock)
    assert [limit.take(), limit.take(), limit.take()] == [True, True, False]
    assert limit.seconds_to_next() == 30.0
    clock.now = 30.0
    assert limit.take() and not limit.take()


def test_a_pass_rolls_at_most_the_limit_and_the_controller_comes_back_when_a_token_is_due():
    clock = Clock()
    api = FakeApi([stale("a"), stale("b"), stale("c")])
    rollout = RolloutPass(api, Options(), per_minute=2, interval=30.0, clock=clock)

    class Context:
        leading = staticmethod(lambda: True)

    delay = rollout.run(Context())
    assert rollout.last is not None
    assert [r.verdict for r in rollout.last.results] == ["rolled", "rolled", "waiting"]
    assert sum(method == "POST" for method, _ in api.writes) == 2  # an Event per roll
    assert delay == 30.0  # one token back after 30 s at 2 a minute


def test_a_workload_changed_since_it_was_read_is_left_to_the_next_pass():
    report = run_pass(FakeApi([stale("a")], patch_status=409), Options(), RateLimit(10))
    assert [(r.verdict, r.reason) for r in report.results] == [
        ("skipped", "it changed since it was read; the next pass decides again")
    ]


def test_a_controller_that_stops_leading_writes_nothing_more():
    api = FakeApi([stale("a"), stale("b")])
    report = run_pass(api, Options(), RateLimit(10), leading=lambda: False)
    assert report.results == [] and api.writes == []
