"""Bad values are refused by values.schema.json (or the templates) with a message that names the
value and the problem, before anything reaches a cluster."""

from __future__ import annotations

from typing import Any

import pytest

from .helm import render_error


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param({"replicas": 3}, ["additional properties 'replicas' not allowed"], id="misspelt-key"),
        pytest.param({"replicaCount": 0}, ["/replicaCount", "minimum"], id="no-replicas"),
        pytest.param({"replicaCount": "two"}, ["/replicaCount", "integer"], id="replicas-not-a-number"),
        pytest.param(
            {"image": {"pullPolicy": "Sometimes"}}, ["/image/pullPolicy", "Always"], id="pull-policy"
        ),
        pytest.param({"image": {"digest": "abc"}}, ["/image/digest", "does not match pattern"], id="digest"),
        pytest.param(
            {"webhook": {"failurePolicy": "Open"}}, ["/webhook/failurePolicy", "Ignore"], id="failure"
        ),
        pytest.param(
            {"webhook": {"timeoutSeconds": 60}}, ["/webhook/timeoutSeconds", "maximum"], id="timeout"
        ),
        pytest.param(
            {"webhook": {"reinvocationPolicy": "Always"}},
            ["/webhook/reinvocationPolicy", "IfNeeded"],
            id="reinvoke",
        ),
        pytest.param(
            {"webhook": {"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}}},
            ["/webhook/namespaceSelector/matchExpressions/0/operator"],
            id="selector-operator",
        ),
        pytest.param(
            {"protected": ["BAD NAME"]}, ["/protected/0", "does not match pattern"], id="protected-name"
        ),
        pytest.param({"logFormat": "xml"}, ["/logFormat", "json"], id="log-format"),
        pytest.param({"logLevel": "LOUD"}, ["/logLevel"], id="log-level"),
        pytest.param(
            {"extraArgs": ["workers=2"]}, ["/extraArgs/0", "does not match pattern"], id="extra-arg"
        ),
        pytest.param({"certificates": {"mode": "vault"}}, ["/certificates/mode", "cert-manager"], id="mode"),
        pytest.param(
            {"certificates": {"mode": "external"}},
            ["/certificates/external", "secretName", "caBundle"],
            id="external-without-secret",
        ),
        pytest.param(
            {"certificates": {"mode": "external", "external": {"secretName": "s", "caBundle": "not a pem"}}},
            ["/certificates/external/caBundle", "BEGIN CERTIFICATE"],
            id="external-ca-not-pem",
        ),
        pytest.param(
            {"podDisruptionBudget": {"minAvailable": "half"}}, ["/podDisruptionBudget/minAvailable"], id="pdb"
        ),
        pytest.param(
            {"resources": {"limits": {"memory": "lots"}}}, ["/resources/limits/memory"], id="quantity"
        ),
        pytest.param({"serviceMonitor": {"interval": "often"}}, ["/serviceMonitor/interval"], id="interval"),
        pytest.param({"networkPolicy": {"enabled": "yes"}}, ["/networkPolicy/enabled", "boolean"], id="bool"),
    ],
)
def test_bad_values_are_refused_naming_the_value(values: dict[str, Any], expected: list[str]) -> None:
    message = render_error(values)
    assert "values don't meet the specifications of the schema" in message, message
    for part in expected:
        assert part in message, message
    assert "goroutine" not in message and "panic" not in message
