"""Who escapes the webhook and how a cluster preset is made mandatory (issue 16).

- A namespace labelled ``podpreset.dev/ignore`` is left out by deploy/'s namespaceSelector.
- deploy/'s matchConditions keep mirror pods and pods with the exclude annotation from being sent
  at all: shown with deploy/'s selectors and conditions on a fail-closed webhook that can never
  answer, so a pod is created only if the API server did not call it.
- deploy/examples/mandatory/: a ValidatingAdmissionPolicy that checks the final pod refuses every
  way around a cluster preset.

They run in both modes: the API server decides all of this.
"""

from __future__ import annotations

import copy
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import (
    ANNOTATION_PREFIX,
    CLUSTER_ANNOTATION_PREFIX,
    DEPLOY,
    Cluster,
    Namespaces,
    annotations_of,
    create_pod,
    create_preset,
    env_of,
    label_namespace,
    manifests,
    pod_body,
    wait_for_pods_to,
)
from .rest import Kube, eventually

IGNORE = "podpreset.dev/ignore"
EXCLUDE = "podpreset.admission.kubernetes.io/exclude"
MIRROR = "kubernetes.io/config.mirror"
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def test_a_namespace_labelled_podpreset_dev_ignore_gets_no_presets_until_the_label_is_removed(
    admin: Kube, namespaces: Namespaces
) -> None:
    watched = namespaces.create("watched")
    ignored = namespaces.create("ignored", {IGNORE: ""})
    for ns in (watched, ignored):
        create_preset(admin, ns, "defaults", {"env": [{"name": "REGION", "value": "eu"}]})
    key = ANNOTATION_PREFIX + "defaults"
    wait_for_pods_to(admin, watched, pod_body("probe"), "the preset", lambda p: key in annotations_of(p))

    create_pod(admin, ignored, pod_body("left-alone"))
    pod = admin.get(f"/api/v1/namespaces/{ignored}/pods/left-alone")
    assert key not in annotations_of(pod)
    assert "env" not in pod["spec"]["containers"][0]

    label_namespace(admin, ignored, {IGNORE: None})
    mutated = wait_for_pods_to(
        admin, ignored, pod_body("probe"), "the label's removal", lambda p: key in annotations_of(p)
    )
    assert env_of(mutated["spec"]["containers"][0]) == {"REGION": "eu"}


class Unanswerable:
    """deploy/'s MutatingWebhookConfiguration (selectors, matchConditions) under another name,
    failing closed and pointed at a port where nothing listens, limited to namespaces carrying
    this test's label so that no other pod meets it."""

    def __init__(self, admin: Kube) -> None:
        self.admin = admin
        self.token = secrets.token_hex(4)
        self.name = f"e2e-unanswerable-{self.token}"
        (doc,) = manifests(DEPLOY / "base" / "mutatingwebhookconfiguration.yaml")
        doc = copy.deepcopy(doc)
        doc["metadata"] = {"name": self.name}
        (hook,) = doc["webhooks"]
        hook["name"] = f"unanswerable-{self.token}.e2e.podpreset.dev"
        hook["failurePolicy"] = "Fail"
        hook["timeoutSeconds"] = 2
        hook["clientConfig"] = {"url": "https://127.0.0.1:1/mutate"}
        hook["namespaceSelector"]["matchExpressions"].append(
            {"key": "e2e-unanswerable", "operator": "In", "values": [self.token]}
        )
        self.doc = doc

    def refuses(self, namespace: str, pod: dict[str, Any]) -> bool:
        reply = self.admin.request(
            "POST", f"/api/v1/namespaces/{namespace}/pods", copy.deepcopy(pod), params={"dryRun": "All"}
        )
        assert reply.status in (200, 201, 500), reply
        if reply.status == 500:
            assert "unanswerable" in reply.message, reply.message
        return reply.status == 500


@pytest.fixture
def unanswerable(admin: Kube) -> Iterator[Unanswerable]:
    hook = Unanswerable(admin)
    admin.apply_manifest(hook.doc)
    yield hook
    admin.delete(f"{WEBHOOKS}/{hook.name}")


def test_mirror_pods_excluded_pods_and_ignored_namespaces_are_never_sent_to_the_webhook(
    admin: Kube, namespaces: Namespaces, unanswerable: Unanswerable
) -> None:
    ns = namespaces.create("unanswerable", {"e2e-unanswerable": unanswerable.token})
    eventually("the unanswerable webhook to be in force", lambda: unanswerable.refuses(ns, pod_body("p")))

    assert unanswerable.refuses(ns, pod_body("p", annotations={EXCLUDE: "false"}))
    assert unanswerable.refuses(ns, pod_body("p", annotations={EXCLUDE: "True"}))
    assert unanswerable.refuses(ns, pod_body("p", annotations={"other": "true"}))
    assert not unanswerable.refuses(ns, pod_body("p", annotations={EXCLUDE: "true"}))
    mirror = pod_body("p", annotations={MIRROR: "anything"}, nodeName="a-node")  # as the kubelet makes it
    assert not unanswerable.refuses(ns, mirror)

    label_namespace(admin, ns, {IGNORE: "yes"})
    eventually(
        "the ignore label to take the namespace out",
        lambda: not unanswerable.refuses(ns, pod_body("p")),
    )


MANDATORY = DEPLOY / "examples" / "mandatory"
POLICY = "podpreset-egress-proxy-required"
PROXY = "http://proxy.internal:3128"


def kubectl_apply(cluster: Cluster, *args: str) -> None:
    subprocess.run(
        ["kubectl", "--kubeconfig", str(cluster.admin.kubeconfig), "apply", "--server-side", *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )


@pytest.fixture
def mandatory_proxy(cluster: Cluster) -> Iterator[None]:
    """deploy/examples/mandatory/ applied as its comment says, removed afterwards."""
    kubectl_apply(cluster, "-f", str(MANDATORY))
    yield
    admin = cluster.admin
    admin.delete(f"/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/{POLICY}")
    admin.delete(f"/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/{POLICY}")
    admin.delete("/apis/podpreset.dev/v1/clusterpodpresets/egress-proxy")


def refusal(admin: Kube, namespace: str, pod: dict[str, Any]) -> str | None:
    """The API server's message if it refuses ``pod`` (dry run), else None."""
    reply = admin.request(
        "POST", f"/api/v1/namespaces/{namespace}/pods", copy.deepcopy(pod), params={"dryRun": "All"}
    )
    if reply.status in (200, 201):
        return None
    assert reply.status in (403, 422), reply
    return reply.message


def test_a_validating_admission_policy_on_the_final_pod_makes_a_cluster_preset_mandatory(
    admin: Kube, namespaces: Namespaces, mandatory_proxy: None
) -> None:
    ns = namespaces.create("mandatory", {"podpreset.dev/egress-proxy": "required"})
    free = namespaces.create("free")
    excluded = pod_body("excluded", annotations={EXCLUDE: "true"})
    eventually("the policy to be in force", lambda: refusal(admin, ns, excluded))
    key = CLUSTER_ANNOTATION_PREFIX + "egress-proxy"
    wait_for_pods_to(admin, ns, pod_body("probe"), "the cluster preset", lambda p: key in annotations_of(p))

    # Mutated by the webhook: the policy sees the injected variable and admits the pod.
    create_pod(
        admin,
        ns,
        pod_body("proxied", initContainers=[{"name": "init", "image": "registry.k8s.io/pause:3.10"}]),
    )
    pod = admin.get(f"/api/v1/namespaces/{ns}/pods/proxied")
    assert env_of(pod["spec"]["containers"][0]) == {"HTTPS_PROXY": PROXY}
    assert env_of(pod["spec"]["initContainers"][0]) == {"HTTPS_PROXY": PROXY}

    # Every way around the webhook is refused, with the policy's message.
    message = refusal(admin, ns, excluded)
    assert message and POLICY in message and "HTTPS_PROXY" in message
    own_value = pod_body(
        "own-proxy",
        containers=[
            {
                "name": "app",
                "image": "registry.k8s.io/pause:3.10",
                "env": [{"name": "HTTPS_PROXY", "value": "http://elsewhere:1"}],
            }
        ],
    )
    message = refusal(admin, ns, own_value)
    assert message and POLICY in message
    label_namespace(admin, ns, {IGNORE: ""})
    eventually("the ignored namespace's pods to be refused", lambda: refusal(admin, ns, pod_body("plain")))

    # Namespaces the preset does not select are not the policy's business.
    assert refusal(admin, free, excluded) is None
    assert refusal(admin, free, own_value) is None
