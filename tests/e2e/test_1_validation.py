"""Scenario 1: the API server itself refuses invalid presets, with a message a user understands."""

from __future__ import annotations

from typing import Any

import pytest

from .rest import Kube

ENV = [{"name": "A", "value": "1"}]


def preset(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "podpreset.dev/v1", "kind": "PodPreset", "metadata": {"name": name}, "spec": spec}


INVALID = [
    pytest.param(
        preset("n" * 54, {"env": ENV}),
        "metadata.name may be at most 53 characters",
        id="name-over-53-characters",
    ),
    pytest.param(
        preset("mount-undeclared", {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}),
        "every volumeMount must name a volume declared in spec.volumes",
        id="mount-names-no-volume-of-preset",
    ),
    pytest.param(
        preset(
            "mounted-twice",
            {
                "volumes": [{"name": "data", "emptyDir": {}}],
                "volumeMounts": [{"name": "data", "mountPath": "/a"}, {"name": "data", "mountPath": "/b"}],
            },
        ),
        "may mount each of its volumes only once",
        id="volume-mounted-twice",
    ),
    pytest.param(
        preset("dup-env", {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}),
        'spec.env[1]: Duplicate value: {"name":"A"}',
        id="duplicate-env-name",
    ),
    pytest.param(
        preset("dup-volume", {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]}),
        'spec.volumes[1]: Duplicate value: {"name":"v"}',
        id="duplicate-volume-name",
    ),
    pytest.param(
        preset(
            "bad-operator", {"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}, "env": ENV}
        ),
        "operator Near is not one of In, NotIn, Exists, DoesNotExist",
        id="selector-unknown-operator",
    ),
    pytest.param(
        preset(
            "in-without-values",
            {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}, "env": ENV},
        ),
        "values must not be empty when operator is In",
        id="selector-in-without-values",
    ),
    pytest.param(
        preset(
            "exists-with-values",
            {
                "selector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
                "env": ENV,
            },
        ),
        "values must be empty when operator is Exists",
        id="selector-exists-with-values",
    ),
    pytest.param(
        preset("bad-label-key", {"selector": {"matchLabels": {"not a key": "x"}}, "env": ENV}),
        "invalid label key",
        id="selector-invalid-label-key",
    ),
    pytest.param(
        preset("bad-label-value", {"selector": {"matchLabels": {"app": "-x-"}}, "env": ENV}),
        "a label value is at most 63",
        id="selector-invalid-label-value",
    ),
    pytest.param(
        preset("injects-nothing", {"selector": {"matchLabels": {"app": "web"}}}),
        "the preset injects nothing",
        id="injects-nothing",
    ),
    pytest.param(
        preset("empty-lists", {"env": [], "volumes": []}),
        "the preset injects nothing",
        id="injects-nothing-with-empty-lists",
    ),
    pytest.param(
        preset("two-sources", {"volumes": [{"name": "v", "emptyDir": {}, "secret": {"secretName": "s"}}]}),
        "volume v must have exactly one volume source",
        id="volume-with-two-sources",
    ),
    pytest.param(
        preset("bad-toleration", {"tolerations": [{"operator": "Equal", "value": "x"}]}),
        "a toleration with an empty key must have operator Exists",
        id="toleration-empty-key-equal",
    ),
    pytest.param(
        preset("env-bad-field", {"env": [{"name": "A", "valueFrom": {"fieldRef": {}}}]}),
        "fieldPath: Required value",
        id="env-fieldref-without-fieldpath",
    ),
]


@pytest.mark.parametrize(("body", "message"), INVALID)
def test_the_api_server_refuses_an_invalid_preset_saying_why(
    admin: Kube, namespace: str, body: dict[str, Any], message: str
) -> None:
    reply = admin.request("POST", f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets", body)
    assert reply.status == 422, reply
    assert message in reply.message
    # Nothing was stored.
    assert admin.get(f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets")["items"] == []


def test_a_valid_preset_with_every_field_is_stored_as_sent(admin: Kube, namespace: str) -> None:
    spec = {
        "selector": {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}],
        },
        "env": [
            {"name": "A", "value": "1"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        "volumes": [
            {
                "name": "info",
                "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]},
            }
        ],
        "volumeMounts": [{"name": "info", "mountPath": "/etc/podinfo", "readOnly": True}],
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    reply = admin.create(
        f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets", preset("everything", spec)
    )
    stored = admin.get(f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets/everything")
    assert stored["spec"] == spec
    assert stored["metadata"]["resourceVersion"] == reply.body["metadata"]["resourceVersion"]


def test_kubectl_get_shows_the_printer_columns(admin: Kube, namespace: str) -> None:
    admin.create(
        f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets",
        preset(
            "columns",
            {
                "selector": {"matchLabels": {"app": "web"}},
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            },
        ),
    )
    table = admin.table(f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets")
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Selector", "Expressions", "Age"]
    (row,) = table["rows"]
    cells = dict(zip(columns, row["cells"], strict=True))
    assert cells["Name"] == "columns"
    assert '"app":"web"' in cells["Selector"].replace(" ", "")
