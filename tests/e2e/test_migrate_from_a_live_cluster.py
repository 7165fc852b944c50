"""Issue 19 end to end: ``podpreset migrate --kubeconfig`` reads the other injectors' objects from
a real API server; its output is accepted by server-side apply with strict field validation; and
the webhook then gives a pod the env, volumes and mounts the original gave it.

The three source kinds are served here by CustomResourceDefinitions this test writes itself: a
schema that keeps any spec, enough to store and list the objects as their clusters hold them
(the settings.k8s.io one stands in for the built-in API Kubernetes removed in 1.20). They are
cluster-wide objects, so the scenario runs only against the local control plane.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cli import run_cli

from .conftest import ANNOTATION_PREFIX, TOP, Cluster, annotations_of, pod_body, wait_for_pods_to
from .rest import ApiError, Kube, eventually

pytestmark = pytest.mark.local_only

SOURCES = {
    "settings.k8s.io": ("v1alpha1", "podpresets", "PodPreset"),
    "redhatcop.redhat.io": ("v1alpha1", "podpresets", "PodPreset"),
    "kubeflow.org": ("v1alpha1", "poddefaults", "PodDefault"),
}
IMAGE = "registry.k8s.io/pause:3.10"


def source_crd(group: str) -> dict[str, Any]:
    version, plural, kind = SOURCES[group]
    metadata: dict[str, Any] = {"name": f"{plural}.{group}"}
    if group.endswith(".k8s.io"):
        # Groups under k8s.io need this annotation; the value says why it is not an approved API.
        metadata["annotations"] = {
            "api-approved.kubernetes.io": "unapproved, a test stand-in for a removed API"
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                            },
                        }
                    },
                }
            ],
        },
    }


def test_a_cluster_serving_none_of_the_three_kinds_is_migrated_to_nothing_saying_so(admin: Kube) -> None:
    # Runs before the module's fixture installs the stand-in CRDs: none of them is served yet.
    result = migrate(admin)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "not served by this cluster (skipped): podpresets.settings.k8s.io, podpresets.redhatcop.redhat.io, "
        "poddefaults.kubeflow.org",
        "0 object(s) converted, 0 field(s) not expressible",
    ]


@pytest.fixture(scope="module")
def sources(cluster: Cluster) -> None:
    admin = cluster.admin
    for group in SOURCES:
        admin.apply_manifest(source_crd(group))
    for group, (version, plural, _) in SOURCES.items():
        eventually(
            f"{plural}.{group} to be served",
            lambda g=group, v=version, p=plural: admin.request("GET", f"/apis/{g}/{v}/{p}").status == 200,
        )


def create_source(admin: Kube, namespace: str, group: str, name: str, spec: dict[str, Any]) -> None:
    version, plural, kind = SOURCES[group]
    admin.create(
        f"/apis/{group}/{version}/namespaces/{namespace}/{plural}",
        {
            "apiVersion": f"{group}/{version}",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        },
    )


def migrate(admin: Kube, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("migrate", "--kubeconfig", admin.kubeconfig, *args, cwd=TOP, timeout=120)


def server_side_apply(admin: Kube, obj: dict[str, Any]) -> dict[str, Any]:
    """``kubectl apply --server-side`` of one object, refusing any field the CRD's schema lacks."""
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    reply = admin.request(
        "PATCH",
        f"/apis/podpreset.dev/v1/namespaces/{namespace}/podpresets/{name}",
        obj,
        params={"fieldManager": "podpreset-migrate", "fieldValidation": "Strict"},
        content_type="application/apply-patch+yaml",
    )
    if reply.status not in (200, 201):
        raise ApiError(reply, f"server-side apply of {name}")
    stored: dict[str, Any] = reply.body
    return stored


def offline_apply(
    presets: list[dict[str, Any]], pod: dict[str, Any], namespace: str, tmp: Path
) -> dict[str, Any]:
    """What ``podpreset apply`` does to ``pod`` with these preset documents."""
    (tmp / "presets.yaml").write_text(yaml.safe_dump_all(presets))
    (tmp / "pod.yaml").write_text(yaml.safe_dump(pod))
    done = run_cli("apply", "-f", tmp / "presets.yaml", "-n", namespace, tmp / "pod.yaml", cwd=TOP)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = yaml.safe_load(done.stdout)
    return result


def injected(pod: dict[str, Any]) -> dict[str, Any]:
    """What a preset adds that this test compares: each container's env, envFrom and mounts, the
    pod's volumes (API server defaults such as a volume's defaultMode left out)."""
    volumes = []
    for original in pod["spec"].get("volumes") or ():
        volume = copy.deepcopy(original)
        for source in volume.values():
            if isinstance(source, dict):
                source.pop("defaultMode", None)
        volumes.append(volume)
    return {
        "containers": {
            c["name"]: {k: c.get(k) or [] for k in ("env", "envFrom", "volumeMounts")}
            for group in ("initContainers", "containers")
            for c in pod["spec"].get(group) or ()
        },
        "volumes": volumes,
    }


SETTINGS_SPEC = {
    "selector": {"matchLabels": {"app": "shop"}},
    "env": [{"name": "DB_PORT", "value": "6379"}],
    "envFrom": [{"configMapRef": {"name": "db-settings"}}],
    "volumes": [{"name": "cache", "emptyDir": {}}],
    "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
}
REDHAT_SPEC = {
    "selector": {"matchLabels": {"tracing": "on"}},
    "env": [{"name": "OTEL_SERVICE_NAME", "value": "shop"}],
}
PODDEFAULT_SPEC = {
    "selector": {"matchLabels": {"gcp": "true"}},
    "desc": "GCP credentials",
    "env": [{"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/secret/gcp/key.json"}],
    "volumes": [{"name": "gcp-key", "secret": {"secretName": "gcp-key"}}],
    "volumeMounts": [{"name": "gcp-key", "mountPath": "/secret/gcp", "readOnly": True}],
    "labels": {"credentials": "gcp"},
    "serviceAccountName": "editor",
    "sidecars": [{"name": "proxy", "image": IMAGE}],
}


def test_migrate_reads_the_cluster_and_its_output_is_applied_by_the_api_server_and_injects_as_the_originals(
    admin: Kube, namespace: str, sources: None, tmp_path: Path
) -> None:
    create_source(admin, namespace, "settings.k8s.io", "db", SETTINGS_SPEC)
    create_source(admin, namespace, "redhatcop.redhat.io", "tracing", REDHAT_SPEC)
    create_source(admin, namespace, "kubeflow.org", "gcp", PODDEFAULT_SPEC)

    result = migrate(admin, "-n", namespace, "-o", "json")
    assert result.returncode == 0, result.stderr
    where = f"poddefaults.kubeflow.org {namespace}/gcp"
    assert f"{where}: spec.serviceAccountName: not expressible in podpreset.dev/v1: " in result.stderr
    assert f"{where}: spec.sidecars: not expressible in podpreset.dev/v1: " in result.stderr
    listed = json.loads(result.stdout)
    by_name = {item["metadata"]["name"]: item for item in listed["items"]}
    assert sorted(by_name) == ["db", "gcp", "tracing"]
    assert by_name["db"]["spec"] == SETTINGS_SPEC
    assert by_name["gcp"]["metadata"]["annotations"] == {"podpreset.dev/description": "GCP credentials"}

    strict = migrate(admin, "-n", namespace, "--strict")
    assert strict.returncode == 1 and strict.stdout == ""

    for item in listed["items"]:
        stored = server_side_apply(admin, item)
        assert stored["spec"] == item["spec"], "the API server pruned or changed a migrated field"

    def pod(labels: dict[str, str]) -> dict[str, Any]:
        return pod_body(
            "web",
            labels=labels,
            initContainers=[{"name": "setup", "image": IMAGE}],
            containers=[{"name": "app", "image": IMAGE}, {"name": "log", "image": IMAGE}],
        )

    def admitted(name: str, labels: dict[str, str]) -> dict[str, Any]:
        mutated = wait_for_pods_to(
            admin,
            namespace,
            pod(labels),
            f"the webhook to apply the migrated preset {name}",
            lambda p: ANNOTATION_PREFIX + name in annotations_of(p),
        )
        return mutated

    # The in-tree plugin's semantics, which redhat-cop's webhook also implements: podpreset apply of
    # the original object (the redhat-cop one read as the settings.k8s.io PodPreset it copies).
    for name, spec, labels in (
        ("db", SETTINGS_SPEC, {"app": "shop"}),
        ("tracing", REDHAT_SPEC, {"tracing": "on"}),
    ):
        legacy = {
            "apiVersion": "settings.k8s.io/v1alpha1",
            "kind": "PodPreset",
            "metadata": {"name": name},
            "spec": spec,
        }
        expected = injected(offline_apply([legacy], pod(labels), namespace, tmp_path))
        assert expected["containers"]["setup"]["env"], "the original injects into init containers too"
        assert injected(admitted(name, labels)) == expected

    # The PodDefault, worked out from kubeflow's applyPodDefaultsOnPod: env and mounts appended to
    # each container, never to init containers; the volume and the labels to the pod; no sidecar.
    mutated = admitted("gcp", {"gcp": "true"})
    containers = {
        "env": PODDEFAULT_SPEC["env"],
        "envFrom": [],
        "volumeMounts": PODDEFAULT_SPEC["volumeMounts"],
    }
    assert injected(mutated) == {
        "containers": {
            "setup": {"env": [], "envFrom": [], "volumeMounts": []},
            "app": containers,
            "log": containers,
        },
        "volumes": PODDEFAULT_SPEC["volumes"],
    }
    assert mutated["metadata"]["labels"]["credentials"] == "gcp"
    assert [c["name"] for c in mutated["spec"]["containers"]] == ["app", "log"], "a sidecar was added"
