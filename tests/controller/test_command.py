"""``podpreset controller``'s settings and the status pass's readers of API objects."""

from __future__ import annotations

import subprocess
import sys

import pytest

from webhook.cli import build_parser
from webhook.controller.api import resource_of
from webhook.controller.command import settings_from_args
from webhook.controller.status import parse_conflict_event, parse_pod, status_path
from webhook.settings import SettingsError


def settings(*argv: str, environ: dict[str, str] | None = None):
    args = build_parser(with_serve=False).parse_args(["controller", *argv])
    return settings_from_args(args, environ or {})


def test_defaults_follow_the_shared_names() -> None:
    found = settings(environ={"POD_NAME": "podpreset-controller-abc"})
    assert found.leader_elect is True
    assert (found.lease_duration, found.renew_deadline, found.retry_period) == (15, 10.0, 2.0)
    assert found.identity == "podpreset-controller-abc"


def test_flags_win_over_variables() -> None:
    found = settings(
        "--lease-duration",
        "30",
        "--no-leader-elect",
        environ={"PODPRESET_LEASE_DURATION": "20", "PODPRESET_PROTECTED": "A*"},
    )
    assert found.lease_duration == 30
    assert found.leader_elect is False
    assert found.protected == ("A*",)


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        pytest.param(
            ("--lease-duration", "5"),
            "--lease-duration (5) must be greater than --renew-deadline",
            id="lease-too-short",
        ),
        pytest.param(
            ("--retry-period", "nan"), "--retry-period/PODPRESET_RETRY_PERIOD: must be a finite", id="nan"
        ),
        pytest.param(("--health-bind", "8080"), "expected HOST:PORT", id="bind"),
        pytest.param(("--protected", "A=B"), "is not an env name", id="protected"),
    ],
)
def test_bad_settings_are_refused_by_name(argv, problem) -> None:
    with pytest.raises(SettingsError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        settings(*argv)


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        pytest.param(
            {"PODPRESET_LEADER_ELECT": "maybe"},
            "--leader-elect/PODPRESET_LEADER_ELECT: expected true or false, got 'maybe'",
            id="boolean",
        ),
        pytest.param(
            {"PODPRESET_LOG_FORMAT": "xml"},
            "--log-format/PODPRESET_LOG_FORMAT: expected text or json, got 'xml'",
            id="log-format",
        ),
        pytest.param(
            {"PODPRESET_HEALTH_BIND": ":8080"},
            "--health-bind/PODPRESET_HEALTH_BIND: expected HOST:PORT, got ':8080'",
            id="bind-without-host",
        ),
    ],
)
def test_bad_variables_are_refused_by_name(environ, problem) -> None:
    with pytest.raises(SettingsError) as refused:
        settings(environ=environ)
    assert str(refused.value) == problem


def test_a_variable_turns_leader_election_off_and_an_empty_one_is_unset() -> None:
    assert settings(environ={"PODPRESET_LEADER_ELECT": "False"}).leader_elect is False
    assert settings(environ={"PODPRESET_LEADER_ELECT": "", "PODPRESET_LOG_FORMAT": ""}).log_format == "text"


def test_the_command_exits_2_with_one_line_for_bad_settings() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "webhook.cli", "controller", "--renew-deadline", "20"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "podpreset controller: --lease-duration (15) must be greater than --renew-deadline (20.0)"
    ]


def test_a_conflict_event_is_read_from_its_reference_and_annotations() -> None:
    event = {
        "reason": "PodPresetConflict",
        "lastTimestamp": "2026-12-06T10:00:00Z",
        "metadata": {
            "annotations": {"podpreset.dev/pod": "web-1", "podpreset.dev/field": "container 'app': env 'A'"}
        },
        "related": {
            "apiVersion": "podpreset.dev/v1",
            "kind": "PodPreset",
            "namespace": "team",
            "name": "web",
        },
    }
    found, problems = parse_conflict_event(event)
    assert problems == ()
    assert found is not None
    assert (found.preset, found.time, found.pod, found.field) == (
        ("PodPreset", "team", "web"),
        "2026-12-06T10:00:00Z",
        "web-1",
        "container 'app': env 'A'",
    )
    assert parse_conflict_event({**event, "related": None}) == (None, ())
    assert parse_conflict_event({**event, "reason": "Other"}) == (None, ())


def test_a_pod_is_kept_as_its_applied_annotation_keys_only() -> None:
    pod = {"metadata": {"annotations": {"podpreset.admission.kubernetes.io/podpreset-web": "7", "x": "y"}}}
    assert parse_pod(pod) == (("podpreset.admission.kubernetes.io/podpreset-web",), ())
    assert parse_pod({"metadata": {}}) == ((), ())


def test_status_paths_and_the_resources_requests_are_counted_under() -> None:
    assert (
        status_path(("PodPreset", "team", "web"))
        == "/apis/podpreset.dev/v1/namespaces/team/podpresets/web/status"
    )
    assert (
        status_path(("ClusterPodPreset", "", "blue"))
        == "/apis/podpreset.dev/v1/clusterpodpresets/blue/status"
    )
    assert resource_of(status_path(("PodPreset", "team", "web"))) == "podpresets/status"
    assert resource_of("/api/v1/pods") == "pods"
    assert resource_of("/apis/coordination.k8s.io/v1/namespaces/ns/leases/podpreset-controller") == "leases"
    assert resource_of("/api/v1/namespaces") == "namespaces"
