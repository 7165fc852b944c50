"""The API server itself refuses invalid presets, with a message a user understands."""

from __future__ import annotations

from typing import Any

import pytest

from .rest import Kube

ENV = [{"name": "A", "value": "1"}]
# The longest valid parts of a label key: a DNS-subdomain prefix of 253 characters, a name of 63.
PREFIX_253 = ".".join(["p" * 63] * 4)[:253]
NAME_63 = "n" * 63


def preset(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "podpreset.dev/v1", "kind": "PodPreset", "metadata": {"name": name}, "spec": spec}


def with_selector(name: str, selector: dict[str, Any]) -> dict[str, Any]:
    """A preset whose only fault (if any) is in its selector."""
    return preset(name, {"selector": selector, "env": ENV})


def with_expression(name: str, expression: dict[str, Any]) -> dict[str, Any]:
    """A preset whose only fault (if any) is in its one selector expression."""
    return with_selector(name, {"matchExpressions": [expression]})


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
        with_expression("bad-operator", {"key": "a", "operator": "Near"}),
        "operator Near is not one of In, NotIn, Exists, DoesNotExist",
        id="selector-unknown-operator",
    ),
    pytest.param(
        with_expression("in-without-values", {"key": "a", "operator": "In"}),
        "values must not be empty when operator is In",
        id="selector-in-without-values",
    ),
    pytest.param(
        with_expression("exists-with-values", {"key": "a", "operator": "Exists", "values": ["x"]}),
        "values must be empty when operator is Exists",
        id="selector-exists-with-values",
    ),
    pytest.param(
        with_selector("bad-label-key", {"matchLabels": {"not a key": "x"}}),
        "invalid label key",
        id="selector-invalid-label-key",
    ),
    pytest.param(
        with_selector("label-name-64", {"matchLabels": {"n" * 64: "x"}}),
        "invalid label key",
        id="selector-label-key-name-over-63",
    ),
    pytest.param(
        with_selector("label-prefix-254", {"matchLabels": {f"q{PREFIX_253}/app": "x"}}),
        "invalid label key",
        id="selector-label-key-prefix-over-253",
    ),
    pytest.param(
        with_selector("label-empty-prefix", {"matchLabels": {"/app": "x"}}),
        "invalid label key",
        id="selector-label-key-empty-prefix",
    ),
    pytest.param(
        with_expression("expr-name-64", {"key": "n" * 64, "operator": "Exists"}),
        "invalid label key " + "n" * 64,
        id="selector-expression-key-name-over-63",
    ),
    pytest.param(
        with_expression("expr-prefix-254", {"key": f"q{PREFIX_253}/app", "operator": "Exists"}),
        "invalid label key q",
        id="selector-expression-key-prefix-over-253",
    ),
    pytest.param(
        with_expression("expr-bad-value", {"key": "a", "operator": "In", "values": ["x_"]}),
        "a label value is at most 63",
        id="selector-expression-invalid-value",
    ),
    pytest.param(
        with_selector("label-value-64", {"matchLabels": {"app": "v" * 64}}),
        "may not be more than 63",
        id="selector-label-value-over-63",
    ),
    pytest.param(
        with_selector("bad-label-value", {"matchLabels": {"app": "-x-"}}),
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
        "volume v may have at most one volume source",
        id="volume-with-two-sources",
    ),
    pytest.param(
        preset(
            "dup-env-from",
            {
                "envFrom": [
                    {"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
                    {"secretRef": {"name": "settings"}, "prefix": "CFG_"},
                    {"prefix": "CFG_", "configMapRef": {"name": "settings", "optional": True}},
                ]
            },
        ),
        "the same envFrom source (prefix, configMapRef name, secretRef name) is listed twice",
        id="duplicate-env-from-source",
    ),
    pytest.param(
        preset("env-from-no-source", {"envFrom": [{"prefix": "CFG_"}]}),
        "must set exactly one of configMapRef or secretRef",
        id="env-from-without-source",
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


VALID = [
    pytest.param(
        {
            # Kubernetes defaults a volume with no source to emptyDir: {}; legacy presets rely on it.
            "volumes": [{"name": "scratch"}],
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        },
        id="volume-without-source",
    ),
    pytest.param(
        {
            "selector": {
                "matchLabels": {f"{PREFIX_253}/{NAME_63}": "v" * 63, "empty": ""},
                "matchExpressions": [{"key": f"{PREFIX_253}/{NAME_63}", "operator": "In", "values": [""]}],
            },
            "env": ENV,
        },
        id="longest-label-key-and-value",
    ),
    pytest.param(
        {
            # One name as a ConfigMap and as a Secret, or with two prefixes: different sources.
            "envFrom": [
                {"configMapRef": {"name": "settings"}},
                {"secretRef": {"name": "settings"}},
                {"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
            ]
        },
        id="env-from-same-name-different-sources",
    ),
]


@pytest.mark.parametrize("spec", VALID)
def test_the_api_server_accepts_what_the_engine_accepts(
    admin: Kube, namespace: str, spec: dict[str, Any]
) -> None:
    admin.create(f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets", preset("valid", spec))
    stored = admin.get(f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets/valid")
    assert stored["spec"] == spec


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
    assert columns == [
        "Name",
        "Selector",
        "Expressions",
        "Priority",
        "OnConflict",
        "Matched",
        "Injected",
        "Conflicts",
        "Valid",
        "Age",
    ]
    (row,) = table["rows"]
    cells = dict(zip(columns, row["cells"], strict=True))
    assert cells["Name"] == "columns"
    assert '"app":"web"' in cells["Selector"].replace(" ", "")
