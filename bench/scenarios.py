"""The benchmark's inputs: preset documents and one AdmissionReview per scenario.

Every scenario is a ``Scenario``: the preset documents to load (grouped in files, as the file
source reads them), the AdmissionReview POSTed to ``/mutate``, and what ``admit`` must decide
for it (how many presets apply, whether it conflicts) so that a benchmark never measures the
wrong path by accident. The pod is the same realistic pod in ``typical``, ``scale`` and
``conflict``; only the presets around it change, so their latencies compare like for like.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

NAMESPACE = "payments"
APP_LABELS = {"app": "checkout", "tier": "backend", "team": "payments", "env": "prod"}

HTTP_SCENARIOS = ("scale", "noop", "typical", "cluster-scale", "big-pod", "conflict")
"""In run order: typical sits between noop and cluster-scale, its ratios' partners; scale and
big-pod are one further."""
ENGINE_SCENARIOS = ("typical", "scale", "cluster-scale", "big-pod")


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """One benchmark input: presets by file name, the review, and the decision it must get."""

    name: str
    files: dict[str, list[dict[str, Any]]]
    review: dict[str, Any]
    matching: int
    """Presets that select the pod (all applied unless ``conflict``)."""
    conflict: bool = False
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    """Namespace labels, written as ``Namespace`` documents next to the presets."""

    @property
    def presets(self) -> Iterator[dict[str, Any]]:
        for documents in self.files.values():
            yield from documents

    @property
    def preset_count(self) -> int:
        return sum(len(documents) for documents in self.files.values())

    def body(self) -> bytes:
        """The request body exactly as the API server would send it (compact JSON)."""
        return json.dumps(self.review, separators=(",", ":")).encode()

    def write_presets(self, directory: Path) -> Path:
        """Write the presets as multi-document YAML files into ``directory``; returns it."""
        directory.mkdir(parents=True, exist_ok=True)
        dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        files = dict(self.files)
        if self.namespaces:
            files["namespaces.yaml"] = [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
                for name, labels in self.namespaces.items()
            ]
        for file_name, documents in files.items():
            text = yaml.dump_all(documents, Dumper=dumper, sort_keys=False)
            (directory / file_name).write_text(text, encoding="utf-8")
        return directory


def preset(name: str, namespace: str, selector: dict[str, Any], index: int) -> dict[str, Any]:
    """A preset in the shape platform teams write: env (with downward API), envFrom, a volume
    and its mount, a toleration. ``index`` keeps every item's key distinct across presets."""
    return {
        "apiVersion": "podpreset.dev/v1",
        "kind": "PodPreset",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(1000 + index)},
        "spec": {
            "selector": selector,
            "env": [
                {"name": f"PRESET_{index}_ENDPOINT", "value": f"https://svc-{index}.internal:8443"},
                {"name": f"PRESET_{index}_REGION", "value": "eu-west-1"},
                {"name": f"PRESET_{index}_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            ],
            "envFrom": [{"configMapRef": {"name": f"preset-{index}-config"}}],
            "volumes": [{"name": f"preset-{index}-certs", "secret": {"secretName": f"preset-{index}-certs"}}],
            "volumeMounts": [
                {"name": f"preset-{index}-certs", "mountPath": f"/etc/preset-{index}", "readOnly": True}
            ],
            "tolerations": [
                {
                    "key": f"dedicated-{index}",
                    "operator": "Equal",
                    "value": "payments",
                    "effect": "NoSchedule",
                }
            ],
        },
    }


def matching_selector(index: int) -> dict[str, Any]:
    """Selects the benchmark pod, with both matchLabels and an expression, as real ones do."""
    return {
        "matchLabels": {"app": "checkout"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["backend", f"extra-{index}"]}],
    }


def other_selector(index: int) -> dict[str, Any]:
    """Selects other pods of the namespace (fails on the first label)."""
    return {"matchLabels": {"app": f"service-{index}", "tier": "backend"}}


def namespace_presets(namespace: str, count: int, matching: int, offset: int = 0) -> list[dict[str, Any]]:
    """``count`` presets of one namespace; the first ``matching`` (by name) select the pod.

    Matching and non-matching presets are interleaved by name so that the pod's presets are not
    all at the front of the sorted list.
    """
    step = max(count // max(matching, 1), 1)
    documents = []
    for i in range(count):
        index = offset + i
        selects = i % step == 0 and i // step < matching
        selector = matching_selector(index) if selects else other_selector(index)
        documents.append(preset(f"preset-{i:05d}", namespace, selector, index))
    return documents


def container(name: str, env_count: int, *, init: bool = False) -> dict[str, Any]:
    """A container as a Deployment's template produces it, with ``env_count`` env vars."""
    env: list[dict[str, Any]] = [
        {"name": f"{name.upper().replace('-', '_')}_VAR_{i}", "value": f"value-{i}"} for i in range(env_count)
    ]
    if env_count:
        env[0] = {
            "name": env[0]["name"],
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
        }
    return {
        "name": name,
        "image": f"registry.example.com/payments/{name}:1.42.0",
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c"] if init else ["/app/server"],
        "args": ["migrate --wait"] if init else ["--port=8080", "--metrics-port=9090"],
        "ports": [] if init else [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "env": env,
        "envFrom": [{"secretRef": {"name": f"{name}-secrets"}}],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {
                "name": "kube-api-access-abcde",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "readOnly": True,
            },
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def pod(containers: int = 2, init_containers: int = 1, env_count: int = 5) -> dict[str, Any]:
    """A pod created by a ReplicaSet: generateName, no name, owner references, defaults."""
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "generateName": "checkout-7d9f8b6c4-",
            "namespace": NAMESPACE,
            "labels": {**APP_LABELS, "pod-template-hash": "7d9f8b6c4"},
            "annotations": {
                "kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z",
                "prometheus.io/scrape": "true",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "checkout-7d9f8b6c4",
                    "uid": "0b6c1f2e-5d4a-4e1b-9c3d-7a8b9c0d1e2f",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {
                    "name": "kube-api-access-abcde",
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {
                                "configMap": {
                                    "name": "kube-root-ca.crt",
                                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                }
                            },
                            {
                                "downwardAPI": {
                                    "items": [
                                        {
                                            "path": "namespace",
                                            "fieldRef": {
                                                "apiVersion": "v1",
                                                "fieldPath": "metadata.namespace",
                                            },
                                        }
                                    ]
                                }
                            },
                        ],
                    },
                },
            ],
            "initContainers": [container(f"init-{i}", env_count, init=True) for i in range(init_containers)],
            "containers": [container(f"app-{i}" if i else "app", env_count) for i in range(containers)],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "checkout",
            "serviceAccount": "checkout",
            "securityContext": {"runAsUser": 10001, "fsGroup": 10001},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
    }


def review(pod_object: dict[str, Any], uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002") -> dict[str, Any]:
    """An AdmissionReview v1 for a pod CREATE, as the API server sends it."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": NAMESPACE,
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "3c2b1a09-8f7e-4d6c-b5a4-938271605f4e",
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:kube-system",
                    "system:authenticated",
                ],
            },
            "object": pod_object,
            "oldObject": None,
            "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


def typical() -> Scenario:
    """10 presets in the pod's namespace, 3 match; 2 containers and an init container."""
    return Scenario(
        name="typical",
        files={f"{NAMESPACE}.yaml": namespace_presets(NAMESPACE, 10, 3)},
        review=review(pod()),
        matching=3,
    )


def scale() -> Scenario:
    """10,000 presets over 100 namespaces, 100 in the pod's; the same 3 match the same pod."""
    files = {f"{NAMESPACE}.yaml": namespace_presets(NAMESPACE, 100, 3)}
    for n in range(99):
        namespace = f"team-{n:02d}"
        files[f"{namespace}.yaml"] = namespace_presets(namespace, 100, 3, offset=100 * (n + 1))
    return Scenario(name="scale", files=files, review=review(pod()), matching=3)


def cluster_scale() -> Scenario:
    """``scale``'s 10,000 presets (2 of the pod's namespace match) and 1,000 ClusterPodPresets over
    100 labelled namespaces: one selects the pod and its namespace, one the pod but another
    namespace, the others other pods. 3 apply, as in ``typical``."""
    files = {f"{NAMESPACE}.yaml": namespace_presets(NAMESPACE, 100, 2)}
    namespaces = {NAMESPACE: {"env": "prod", "team": NAMESPACE}}
    for n in range(99):
        namespace = f"team-{n:02d}"
        files[f"{namespace}.yaml"] = namespace_presets(namespace, 100, 3, offset=100 * (n + 1))
        namespaces[namespace] = {"env": "prod" if n % 2 else "staging", "team": namespace}
    cluster = []
    for i in range(1000):
        index = 100_000 + i
        selector = matching_selector(index) if i in (0, 500) else other_selector(index)
        env = "staging" if i == 500 else "prod"
        document = preset(f"cluster-{i:04d}", "", selector, index)
        document["kind"] = "ClusterPodPreset"
        del document["metadata"]["namespace"]
        document["spec"] = {"namespaceSelector": {"matchLabels": {"env": env}}, **document["spec"]}
        cluster.append(document)
    files["cluster.yaml"] = cluster
    return Scenario(
        name="cluster-scale", files=files, review=review(pod()), matching=3, namespaces=namespaces
    )


def big_pod() -> Scenario:
    """10 containers with 50 env vars each; 5 of the namespace's 10 presets match."""
    return Scenario(
        name="big-pod",
        files={f"{NAMESPACE}.yaml": namespace_presets(NAMESPACE, 10, 5)},
        review=review(pod(containers=10, init_containers=0, env_count=50)),
        matching=5,
    )


def conflict() -> Scenario:
    """The typical pod and presets, but the pod sets one matching preset's env var differently."""
    documents = namespace_presets(NAMESPACE, 10, 3)
    clashing = next(d for d in documents if d["spec"]["selector"].get("matchExpressions"))
    env_name = clashing["spec"]["env"][1]["name"]
    pod_object = pod()
    pod_object["spec"]["containers"][0]["env"].append({"name": env_name, "value": "us-east-1"})
    return Scenario(
        name="conflict",
        files={f"{NAMESPACE}.yaml": documents},
        review=review(pod_object),
        matching=3,
        conflict=True,
    )


def noop() -> Scenario:
    """The floor: the typical review, answered by the no-op app (no presets at all)."""
    base = typical()
    return Scenario(name="noop", files={}, review=copy.deepcopy(base.review), matching=0)


BUILDERS = {
    "noop": noop,
    "typical": typical,
    "scale": scale,
    "cluster-scale": cluster_scale,
    "big-pod": big_pod,
    "conflict": conflict,
}


def build(name: str) -> Scenario:
    return BUILDERS[name]()
