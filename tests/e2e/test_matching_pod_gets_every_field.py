"""A matching pod gets everything, read back from the API server."""

from __future__ import annotations

from .conftest import (
    ANNOTATION_PREFIX,
    annotations_of,
    create_pod,
    create_preset,
    env_of,
    pod_body,
    wait_for_pods_to,
)
from .rest import Kube

FULL_SPEC = {
    "selector": {"matchLabels": {"app": "web"}},
    "env": [
        {"name": "DB_HOST", "value": "db.internal"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
    ],
    "envFrom": [
        {"configMapRef": {"name": "app-settings"}},
        {"secretRef": {"name": "app-secrets"}, "prefix": "S_"},
    ],
    "volumes": [
        {"name": "cache", "emptyDir": {}},
        {
            "name": "podinfo",
            "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]},
        },
    ],
    "volumeMounts": [
        {"name": "cache", "mountPath": "/cache"},
        {"name": "podinfo", "mountPath": "/etc/podinfo", "readOnly": True},
    ],
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
}


def web_pod(name: str) -> dict:
    return pod_body(
        name,
        labels={"app": "web"},
        containers=[
            {"name": "app", "image": "registry.k8s.io/pause:3.10", "env": [{"name": "OWN", "value": "mine"}]}
        ],
        initContainers=[{"name": "setup", "image": "registry.k8s.io/pause:3.10"}],
    )


def install_web_defaults(admin: Kube, namespace: str) -> str:
    """Create the web-defaults preset, wait until the webhook applies it; its resourceVersion."""
    preset = create_preset(admin, namespace, "web-defaults", FULL_SPEC)
    key = ANNOTATION_PREFIX + "web-defaults"
    wait_for_pods_to(
        admin,
        namespace,
        web_pod("probe"),
        "the webhook to know the preset",
        lambda p: key in annotations_of(p),
    )
    return str(preset["metadata"]["resourceVersion"])


def test_a_matching_pod_gets_every_field_and_the_annotation_with_the_presets_resource_version(
    admin: Kube, namespace: str
) -> None:
    version = install_web_defaults(admin, namespace)
    key = ANNOTATION_PREFIX + "web-defaults"

    create_pod(admin, namespace, web_pod("web-1"))
    pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/web-1")

    assert annotations_of(pod)[key] == version
    spec = pod["spec"]
    for container in (*spec["containers"], *spec["initContainers"]):
        env = env_of(container)
        assert env["DB_HOST"] == "db.internal"
        assert env["POD_NAME"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env["CPU_LIMIT"]["resourceFieldRef"]["resource"] == "limits.cpu"
        assert [e.get("configMapRef", e.get("secretRef"))["name"] for e in container["envFrom"]] == [
            "app-settings",
            "app-secrets",
        ]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["cache"] == "/cache"
        assert mounts["podinfo"] == "/etc/podinfo"
    # The pod's own env stays first; preset items are appended after it.
    assert [e["name"] for e in spec["containers"][0]["env"]] == ["OWN", "DB_HOST", "POD_NAME", "CPU_LIMIT"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["podinfo"]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.labels"
    assert "emptyDir" in volumes["cache"]
    assert {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]


def test_a_pod_the_selector_does_not_match_is_untouched(admin: Kube, namespace: str) -> None:
    install_web_defaults(admin, namespace)

    other = pod_body("db-1", labels={"app": "db"})
    create_pod(admin, namespace, other)
    pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/db-1")

    assert not any(k.startswith(ANNOTATION_PREFIX) for k in annotations_of(pod))
    assert "env" not in pod["spec"]["containers"][0]
    assert not any(v["name"] in ("cache", "podinfo") for v in pod["spec"].get("volumes") or ())
    assert not any(t.get("key") == "dedicated" for t in pod["spec"].get("tolerations") or ())


def test_a_pod_posted_without_namespace_and_with_only_generate_name_is_mutated(
    admin: Kube, namespace: str
) -> None:
    install_web_defaults(admin, namespace)
    key = ANNOTATION_PREFIX + "web-defaults"

    body = pod_body(generate_name="web-", labels={"app": "web"})
    assert "namespace" not in body["metadata"]
    created = create_pod(admin, namespace, body).body
    name = created["metadata"]["name"]
    assert name.startswith("web-")
    pod = admin.get(f"/api/v1/namespaces/{namespace}/pods/{name}")

    assert key in annotations_of(pod)
    assert env_of(pod["spec"]["containers"][0])["DB_HOST"] == "db.internal"
