"""Every value of the chart, each shown to change what it names (``helm template``); the
certificate modes; the optional objects off and on."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography import x509

from .helm import container, find, kinds, render

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = find(docs, "Deployment", component="webhook")["spec"]["template"]["spec"]
    return spec


def webhook(docs: list[dict[str, Any]]) -> dict[str, Any]:
    hook: dict[str, Any] = find(docs, "MutatingWebhookConfiguration")["webhooks"][0]
    return hook


def env(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(docs).get("env", ())}


def test_replica_count() -> None:
    assert find(render({"replicaCount": 3}), "Deployment", component="webhook")["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        pytest.param({}, "podpreset:dev", id="default"),
        pytest.param(
            {"repository": "registry.example/pp", "tag": "1.2"}, "registry.example/pp:1.2", id="tag"
        ),
        pytest.param({"tag": ""}, "podpreset:0.1.0", id="empty-tag-is-app-version"),
        pytest.param(
            {"repository": "r/pp", "tag": "", "digest": "sha256:" + "a" * 64},
            "r/pp@sha256:" + "a" * 64,
            id="digest",
        ),
        pytest.param(
            {"repository": "r/pp", "tag": "1.2", "digest": "sha256:" + "b" * 64},
            "r/pp:1.2@sha256:" + "b" * 64,
            id="tag-and-digest",
        ),
    ],
)
def test_image(image: dict[str, str], expected: str) -> None:
    assert container(render({"image": image}))["image"] == expected


def test_image_pull_policy() -> None:
    assert container(render({"image": {"pullPolicy": "Always"}}))["imagePullPolicy"] == "Always"


def test_image_pull_secrets() -> None:
    assert "imagePullSecrets" not in pod_spec(render())
    docs = render({"imagePullSecrets": [{"name": "regcred"}]})
    assert pod_spec(docs)["imagePullSecrets"] == [{"name": "regcred"}]


def test_resources() -> None:
    resources = {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    assert container(render({"resources": resources}))["resources"] == resources
    assert "resources" not in container(render({"resources": None}))


def test_pod_disruption_budget() -> None:
    assert find(render(), "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    spec = find(render({"podDisruptionBudget": {"maxUnavailable": "50%"}}), "PodDisruptionBudget")["spec"]
    assert spec == {
        "maxUnavailable": "50%",
        "selector": {"matchLabels": {"app.kubernetes.io/component": "webhook"}},
    }
    assert "PodDisruptionBudget" not in kinds(render({"podDisruptionBudget": {"enabled": False}}))


def test_priority_class_name() -> None:
    assert pod_spec(render())["priorityClassName"] == "system-cluster-critical"
    assert pod_spec(render({"priorityClassName": "platform"}))["priorityClassName"] == "platform"
    assert "priorityClassName" not in pod_spec(render({"priorityClassName": ""}))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("nodeSelector", {"kubernetes.io/os": "linux"}, id="nodeSelector"),
        pytest.param(
            "tolerations", [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}], id="tolerations"
        ),
        pytest.param(
            "affinity",
            {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["infra"]}]}
                        ]
                    }
                }
            },
            id="affinity",
        ),
        pytest.param(
            "topologySpreadConstraints",
            [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "DoNotSchedule",
                }
            ],
            id="topologySpreadConstraints",
        ),
    ],
)
def test_scheduling(key: str, value: Any) -> None:
    default = pod_spec(render())
    assert pod_spec(render({key: value}))[key] == value
    if key == "topologySpreadConstraints":
        assert default[key][0]["topologyKey"] == "kubernetes.io/hostname"
        assert key not in pod_spec(render({key: []}))
    else:
        assert key not in default


def test_pod_security_context_merges_into_the_default_and_null_removes_a_key() -> None:
    default = pod_spec(render())["securityContext"]
    assert default["runAsUser"] == 65532
    context = pod_spec(
        render({"podSecurityContext": {"runAsUser": 10001, "fsGroup": 10001, "runAsGroup": None}})
    )["securityContext"]
    assert context == {
        **{k: v for k, v in default.items() if k != "runAsGroup"},
        "runAsUser": 10001,
        "fsGroup": 10001,
    }


def test_security_context_merges_into_the_default() -> None:
    default = container(render())["securityContext"]
    assert default["readOnlyRootFilesystem"] is True
    context = container(render({"securityContext": {"runAsUser": 10001, "capabilities": None}}))[
        "securityContext"
    ]
    assert context == {**{k: v for k, v in default.items() if k != "capabilities"}, "runAsUser": 10001}


def test_pod_labels_and_annotations() -> None:
    template = find(
        render({"podLabels": {"team": "platform"}, "podAnnotations": {"a/b": "c"}}),
        "Deployment",
        component="webhook",
    )["spec"]["template"]["metadata"]
    assert template["labels"]["team"] == "platform"
    assert template["labels"]["app.kubernetes.io/component"] == "webhook"
    assert template["annotations"] == {"a/b": "c"}


def test_namespace_create() -> None:
    assert "Namespace" not in kinds(render())
    made = find(render({"namespace": {"create": True}}, namespace="platform"), "Namespace")
    assert made["metadata"]["name"] == "platform"
    assert made["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_network_policy() -> None:
    policy = find(render(), "NetworkPolicy", component="webhook")
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "webhook"}}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    webhook_rule, metrics_rule = policy["spec"]["ingress"]
    assert webhook_rule["ports"] == [{"port": "https", "protocol": "TCP"}]
    assert webhook_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]
    assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert metrics_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"podpreset.dev/metrics-reader": "true"}}}
    ]
    peers = [{"ipBlock": {"cidr": "10.0.0.0/28"}}]
    policy = find(
        render({"networkPolicy": {"webhookFrom": peers, "metricsFrom": []}}),
        "NetworkPolicy",
        component="webhook",
    )
    webhook_rule, metrics_rule = policy["spec"]["ingress"]
    assert webhook_rule["from"] == peers
    assert "from" not in metrics_rule  # an empty list: from anywhere, as in a NetworkPolicy
    assert "NetworkPolicy" not in kinds(render({"networkPolicy": {"enabled": False}}))


def test_service_monitor_scrapes_the_metrics_port_through_a_service_of_its_own() -> None:
    assert "ServiceMonitor" not in kinds(render())
    docs = render({"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}, "interval": "15s"}})
    monitor = find(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {
        "port": "metrics",
        "path": "/metrics",
        "scheme": "http",
        "interval": "15s",
        "scrapeTimeout": "10s",
    }
    service = find(docs, "Service", "podpreset-webhook-metrics")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics"}]
    assert service["spec"]["selector"] == {"app.kubernetes.io/component": "webhook"}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert (
        not monitor["spec"]["selector"]["matchLabels"].items()
        <= find(docs, "Service", "podpreset-webhook")["metadata"]["labels"].items()
    )
    assert {"name": "metrics", "containerPort": 8080} in container(docs)["ports"]


def test_webhook_failure_policy_and_timeout_and_reinvocation() -> None:
    hook = webhook(render())
    assert (hook["failurePolicy"], hook["timeoutSeconds"], hook["reinvocationPolicy"]) == (
        "Ignore",
        5,
        "IfNeeded",
    )
    hook = webhook(
        render({"webhook": {"failurePolicy": "Fail", "timeoutSeconds": 10, "reinvocationPolicy": "Never"}})
    )
    assert (hook["failurePolicy"], hook["timeoutSeconds"], hook["reinvocationPolicy"]) == (
        "Fail",
        10,
        "Never",
    )


def test_webhook_namespace_selector_adds_to_the_built_in_exclusions() -> None:
    builtin = [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "tools"]},
        {"key": "podpreset.dev/ignore", "operator": "DoesNotExist"},
    ]
    assert webhook(render(namespace="tools"))["namespaceSelector"] == {"matchExpressions": builtin}
    extra = {"key": "env", "operator": "In", "values": ["prod"]}
    selector = webhook(
        render(
            {
                "webhook": {
                    "namespaceSelector": {"matchLabels": {"presets": "on"}, "matchExpressions": [extra]}
                }
            },
            namespace="tools",
        )
    )["namespaceSelector"]
    assert selector == {"matchLabels": {"presets": "on"}, "matchExpressions": [*builtin, extra]}


def test_webhook_object_selector() -> None:
    assert "objectSelector" not in webhook(render())
    selector = {"matchExpressions": [{"key": "presets", "operator": "NotIn", "values": ["off"]}]}
    assert webhook(render({"webhook": {"objectSelector": selector}}))["objectSelector"] == selector


def test_protected() -> None:
    assert not [a for a in container(render())["args"] if a.startswith("--protected")]
    args = container(render({"protected": ["KUBERNETES_*", "LD_PRELOAD", "ACME_TOKEN"]}))["args"]
    assert [a for a in args if a.startswith("--protected")] == [
        "--protected=KUBERNETES_*,LD_PRELOAD,ACME_TOKEN"
    ]


def test_log_level_and_format() -> None:
    assert env(render()) == {"PODPRESET_LOG_FORMAT": "json"}
    assert env(render({"logLevel": "DEBUG", "logFormat": "text"})) == {
        "PODPRESET_LOG_FORMAT": "text",
        "PODPRESET_LOG_LEVEL": "DEBUG",
    }


def test_extra_args_come_after_the_charts_own() -> None:
    args = container(render({"extraArgs": ["--workers=4", "--threads=8"]}))["args"]
    assert args[0] == "serve" and args[-2:] == ["--workers=4", "--threads=8"]


def test_release_name_and_namespace_name_everything() -> None:
    docs = render(release="presets", namespace="platform")
    assert find(docs, "Deployment", component="webhook")["metadata"] == {
        **find(docs, "Deployment", component="webhook")["metadata"],
        "name": "presets-podpreset-webhook",
        "namespace": "platform",
    }
    service = webhook(docs)["clientConfig"]["service"]
    assert (service["name"], service["namespace"]) == ("presets-podpreset-webhook", "platform")
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(find(docs, "Secret", "presets-podpreset-webhook-tls")["data"]["tls.crt"])
    )
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert names == [
        "presets-podpreset-webhook.platform.svc",
        "presets-podpreset-webhook.platform.svc.cluster.local",
    ]


# Certificate modes.


def certificates(docs: list[dict[str, Any]]) -> tuple[x509.Certificate, x509.Certificate, x509.Certificate]:
    """The helm mode's CA (from its Secret), the serving certificate, and the caBundle's CA."""
    ca = find(docs, "Secret", "podpreset-webhook-ca")["data"]
    tls = find(docs, "Secret", "podpreset-webhook-tls")["data"]
    bundle = webhook(docs)["clientConfig"]["caBundle"]
    assert tls["ca.crt"] == ca["tls.crt"] == bundle
    return (
        x509.load_pem_x509_certificate(base64.b64decode(ca["tls.crt"])),
        x509.load_pem_x509_certificate(base64.b64decode(tls["tls.crt"])),
        x509.load_pem_x509_certificate(base64.b64decode(bundle)),
    )


def test_helm_mode_makes_a_ca_and_a_serving_certificate_it_signed() -> None:
    docs = render()
    ca, serving, bundle = certificates(docs)
    assert bundle == ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    serving.verify_directly_issued_by(ca)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "podpreset-webhook.podpreset-system.svc",
        "podpreset-webhook.podpreset-system.svc.cluster.local",
    ]
    days = (serving.not_valid_after_utc - serving.not_valid_before_utc).days
    assert 824 <= days <= 825
    assert find(docs, "Deployment", component="webhook")["spec"]["template"]["spec"]["volumes"][0]["secret"][
        "secretName"
    ] == ("podpreset-webhook-tls")
    assert not [d for d in docs if d["apiVersion"].startswith("cert-manager.io/")]


def test_helm_mode_validity_days() -> None:
    ca, serving, _ = certificates(render({"certificates": {"helm": {"caDays": 400, "servingDays": 30}}}))
    assert 399 <= (ca.not_valid_after_utc - ca.not_valid_before_utc).days <= 400
    assert 29 <= (serving.not_valid_after_utc - serving.not_valid_before_utc).days <= 30


def test_cert_manager_mode_chains_a_ca_and_injects_it() -> None:
    docs = render({"certificates": {"mode": "cert-manager"}})
    assert [d for d in docs if d["kind"] == "Secret"] == []
    mwc = find(docs, "MutatingWebhookConfiguration")
    assert mwc["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "podpreset-system/podpreset-ca"
    }
    assert "caBundle" not in mwc["webhooks"][0]["clientConfig"]
    ca = find(docs, "Certificate", "podpreset-ca")["spec"]
    serving = find(docs, "Certificate", "podpreset-webhook")["spec"]
    ca_issuer = find(docs, "Issuer", "podpreset-ca")["spec"]
    selfsigned = find(docs, "Issuer", "podpreset-selfsigned")["spec"]
    assert selfsigned == {"selfSigned": {}}
    assert ca["isCA"] is True and ca["issuerRef"]["name"] == "podpreset-selfsigned"
    assert ca["privateKey"]["rotationPolicy"] == "Never"
    assert ca_issuer == {"ca": {"secretName": ca["secretName"]}}
    assert serving["issuerRef"] == {"kind": "Issuer", "name": "podpreset-ca"}
    assert serving["secretName"] == "podpreset-webhook-tls"
    assert serving["dnsNames"] == [
        "podpreset-webhook.podpreset-system.svc",
        "podpreset-webhook.podpreset-system.svc.cluster.local",
    ]
    assert (serving["duration"], serving["renewBefore"]) == ("2160h", "720h")


def test_external_mode_uses_the_given_secret_and_ca_bundle() -> None:
    docs = render(
        {"certificates": {"mode": "external", "external": {"secretName": "my-tls", "caBundle": PEM}}}
    )
    assert [d for d in docs if d["kind"] == "Secret" or d["apiVersion"].startswith("cert-manager.io/")] == []
    assert base64.b64decode(webhook(docs)["clientConfig"]["caBundle"]).decode() == PEM
    assert pod_spec(docs)["volumes"][0] == {"name": "tls", "secret": {"secretName": "my-tls"}}


# The controller.


def controller_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = find(docs, "Deployment", component="controller")["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = only
    return result


def test_controller_replicas_resources_and_extra_args() -> None:
    docs = render(
        {
            "controller": {
                "replicaCount": 3,
                "resources": {"requests": {"memory": "80Mi"}},
                "extraArgs": ["--status-interval=10"],
            }
        }
    )
    assert find(docs, "Deployment", component="controller")["spec"]["replicas"] == 3
    container = controller_container(docs)
    assert container["resources"] == {
        "requests": {"cpu": "20m", "memory": "80Mi"},
        "limits": {"memory": "256Mi"},
    }
    assert container["args"] == ["controller", "--health-bind=0.0.0.0:8080", "--status-interval=10"]


def test_controller_judges_presets_with_the_webhooks_protected_names() -> None:
    docs = render({"protected": ["KUBERNETES_*", "SECRET_TOKEN"]})
    assert "--protected=KUBERNETES_*,SECRET_TOKEN" in container(docs)["args"]
    assert "--protected=KUBERNETES_*,SECRET_TOKEN" in controller_container(docs)["args"]


def test_controller_disabled_leaves_out_all_its_objects() -> None:
    docs = render({"controller": {"enabled": False}})
    assert [d["metadata"]["name"] for d in docs if "controller" in d["metadata"]["name"]] == []
    assert find(docs, "Deployment", component="webhook")


def test_controller_objects_follow_the_release_name() -> None:
    docs = render(release="presets", namespace="platform")
    deployment = find(docs, "Deployment", component="controller")
    assert (deployment["metadata"]["name"], deployment["metadata"]["namespace"]) == (
        "presets-podpreset-controller",
        "platform",
    )
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "presets-podpreset-controller"
    binding = find(docs, "RoleBinding", "presets-podpreset-controller-leader-election")
    assert binding["metadata"]["namespace"] == "platform"
