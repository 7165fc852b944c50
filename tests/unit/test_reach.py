"""What a preset may reach: the volume types of namespaced presets, the protected loader and agent
variables, and how much of a refused value a message repeats."""

from __future__ import annotations

from typing import Any

import pytest

from presets.engine import apply_presets, refuse_presets
from presets.model import (
    ANY_VOLUME_TYPES,
    DEFAULT_PROTECTED,
    DEFAULT_VOLUME_TYPES,
    PodPreset,
    VolumeTypes,
    parse_preset,
    volume_type,
)


def preset(name: str, kind: str = "PodPreset", **spec: Any) -> PodPreset:
    metadata = {"name": name} if kind == "ClusterPodPreset" else {"name": name, "namespace": "team-a"}
    doc = {"apiVersion": "podpreset.dev/v1", "kind": kind, "metadata": metadata, "spec": spec}
    return parse_preset(doc, source="t", document=1, default_namespace="team-a")


def pod() -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "x"}]}}


def volumes(*items: dict[str, Any]) -> dict[str, Any]:
    return {"volumes": list(items)}


@pytest.mark.parametrize(
    ("volume", "kind"),
    [
        pytest.param({"name": "v", "hostPath": {"path": "/"}}, "hostPath", id="host-path"),
        pytest.param({"name": "v", "nfs": {"server": "s", "path": "/"}}, "nfs", id="nfs"),
        pytest.param({"name": "v"}, "emptyDir", id="no-source-is-empty-dir-as-the-api-server-defaults-it"),
        pytest.param({"name": "v", "hostPath": None, "secret": {}}, "secret", id="a-null-source-is-absent"),
    ],
)
def test_a_volume_type_is_the_key_of_its_source(volume: dict[str, Any], kind: str) -> None:
    assert volume_type(volume) == kind


def test_the_default_allows_exactly_the_restricted_pod_security_types() -> None:
    assert DEFAULT_VOLUME_TYPES.describe() == (
        "configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret"
    )
    assert VolumeTypes.parse(["secret", "*"]) == ANY_VOLUME_TYPES
    assert VolumeTypes.parse([]).describe() == "none"
    with pytest.raises(ValueError, match="'HostPath' is not a volume type"):
        VolumeTypes.parse(["HostPath"])


def test_only_namespaced_presets_with_a_type_outside_the_setting_are_refused() -> None:
    host = preset(
        "host", **volumes({"name": "logs", "hostPath": {"path": "/var/log"}}, {"name": "s", "secret": {}})
    )
    fine = preset("fine", **volumes({"name": "cache", "emptyDir": {}}))
    cluster = preset(
        "agent", kind="ClusterPodPreset", **volumes({"name": "sock", "hostPath": {"path": "/run"}})
    )
    kept, refusals = refuse_presets((cluster, host, fine), DEFAULT_VOLUME_TYPES)
    assert kept == (cluster, fine)
    assert [(r.preset.name, r.volumes) for r in refusals] == [("host", (("logs", "hostPath"),))]
    assert refuse_presets((cluster, host, fine), ANY_VOLUME_TYPES) == ((cluster, host, fine), ())


def test_a_refused_preset_is_left_out_and_the_others_still_apply() -> None:
    host = preset(
        "host", env=[{"name": "A", "value": "1"}], **volumes({"name": "logs", "hostPath": {"path": "/"}})
    )
    other = preset("other", env=[{"name": "B", "value": "2"}])
    outcome = apply_presets(pod(), [host, other], namespace="team-a")
    assert outcome.action == "mutated" and outcome.applied == ("other",)
    assert outcome.warnings[0].startswith(
        "podpreset 'host' is not applied: volume 'logs' is of type hostPath"
    )
    assert [e["name"] for e in outcome.pod["spec"]["containers"][0]["env"]] == ["B"]
    alone = apply_presets(pod(), [host], namespace="team-a")
    assert alone.action == "unchanged" and alone.patch == () and len(alone.warnings) == 1


@pytest.mark.parametrize(
    "name",
    ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
     "NODE_OPTIONS", "PYTHONSTARTUP", "PERL5OPT", "RUBYOPT", "DOTNET_STARTUP_HOOKS", "KUBERNETES_PORT"],
)  # fmt: skip
def test_loader_and_agent_variables_are_protected_by_default(name: str) -> None:
    outcome = apply_presets(pod(), [preset("agent", env=[{"name": name, "value": "x"}])], namespace="team-a")
    assert outcome.action == "conflict" and outcome.conflicts[0].reason == "protected"
    assert DEFAULT_PROTECTED.why_name(name)
