#!/usr/bin/env python3
"""Generate the PodPreset and ClusterPodPreset CRDs from the Kubernetes API server's own OpenAPI.

    hack/gen-crd.py            # write deploy/crd/podpresets.podpreset.dev.yaml and
                               # deploy/crd/clusterpodpresets.podpreset.dev.yaml from hack/openapi/*.json,
                               # and the same two files into the Helm chart's charts/podpreset/crds/
    hack/gen-crd.py --fetch    # first start kube-apiserver + etcd ($KUBEBUILDER_ASSETS) and refresh the
                               # stored OpenAPI snippet from GET /openapi/v3/api/v1
    hack/gen-crd.py --check    # exit 1 when a committed CRD differs from what would be generated

The item schemas (EnvVar, EnvFromSource, Volume, VolumeMount, Toleration, LabelSelector) are the
API server's, with every ``$ref`` resolved inline and turned into a structural schema: the
``allOf: [$ref]`` wrappers are flattened, ``oneOf`` int-or-string / quantity types become
``x-kubernetes-int-or-string``, and what a CRD schema cannot hold (defaults, patch strategies,
unions) is dropped. On top come bounds (``maxItems``, ``maxLength``) that keep CEL's cost
estimate within budget, and the CEL rules for DESIGN §4's validation and for the newer fields
(container globs, label and annotation keys, the reserved annotation prefix, ``onConflict``).
Both kinds share one spec schema; the ClusterPodPreset adds ``namespaceSelector``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from presets.model import (
    ANNOTATION_PREFIX,
    GLOB_RE,
    MAX_CLUSTER_NAME_LENGTH,
    MAX_NAME_LENGTH,
    POLICIES,
    PRIORITY_RANGE,
    ROLLOUT_POLICIES,
)

TOP = Path(__file__).resolve().parent.parent


def newest_kubernetes() -> str:
    """The newest supported Kubernetes version: what the highest ``tools/k8s-1.N`` module builds."""
    modules = sorted(
        (int(path.parent.name.rsplit(".", 1)[1]), path)
        for path in TOP.glob("tools/k8s-1.*/go.mod")
        if path.parent.name.rsplit(".", 1)[1].isdigit()
    )
    if not modules:
        sys.exit("no tools/k8s-1.N/go.mod: cannot tell which Kubernetes version the CRDs come from")
    path = modules[-1][1]
    for line in path.read_text().splitlines():
        words = line.split()
        if words[:1] == ["require"]:
            words = words[1:]
        if len(words) >= 2 and words[0] == "k8s.io/kubernetes" and words[1].startswith("v"):
            return words[1]
    sys.exit(f"{path.relative_to(TOP)}: no k8s.io/kubernetes requirement")


# The CRDs' item schemas come from the newest supported version, so a preset may use every pod field
# a current cluster knows (an older API server prunes the fields it does not know).
K8S_VERSION = newest_kubernetes()
SNIPPET = TOP / "hack" / "openapi" / f"core-v1-{K8S_VERSION}.json"
OUTPUT = TOP / "deploy" / "crd" / "podpresets.podpreset.dev.yaml"
CLUSTER_OUTPUT = TOP / "deploy" / "crd" / "clusterpodpresets.podpreset.dev.yaml"
CHART_CRDS = TOP / "charts" / "podpreset" / "crds"
"""Helm installs the files of a chart's crds/ as they are (no templating): the same bytes."""

CORE = "io.k8s.api.core.v1."
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
ROOTS = {
    "env": CORE + "EnvVar",
    "envFrom": CORE + "EnvFromSource",
    "volumes": CORE + "Volume",
    "volumeMounts": CORE + "VolumeMount",
    "tolerations": CORE + "Toleration",
    "selector": META + "LabelSelector",
}
SPECIAL = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
        "x-kubernetes-int-or-string": True,
    },
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
    },
    # managedFields' opaque trie, inside an ephemeral volume's claim template metadata.
    META + "FieldsV1": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}
KEEP = {
    "description",
    "type",
    "format",
    "properties",
    "items",
    "required",
    "enum",
    "additionalProperties",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "anyOf",
    "pattern",
    "minimum",
    "maximum",
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
}

# Bounds: they keep the CEL cost estimate in budget and are far beyond any real preset.
MAX_ITEMS = {
    "env": 256,
    "envFrom": 64,
    "volumes": 64,
    "volumeMounts": 64,
    "tolerations": 64,
    "imagePullSecrets": 32,
}
MAX_MAP_KEYS = 64
MAX_GLOBS = 32
MAX_VALUE_LENGTH = 32 * 1024
"""Characters of an env value or a podMetadata annotation value: the large strings a preset
carries; a whole preset is bounded apart (``--max-preset-bytes``, 256 KiB by default)."""
MAX_STRING_LENGTH = 4096
"""Characters of every other string of the injected items that has no tighter bound (paths,
names, keys of volume sources): far beyond any real one (PATH_MAX is 4096)."""
# The engine's rules (presets/selector.py label_key_problem, label_value_problem): a key is an
# optional DNS-subdomain prefix of at most 253 characters and '/', then a name of 1-63 characters;
# a value is empty or 1-63 characters. The regexes bound the name and value lengths themselves;
# the prefix length is checked with indexOf (the regex allows at most one '/').
LABEL_KEY_RE = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_RE = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"


def label_key_rule(key: str) -> str:
    """CEL: ``key`` (an expression) is a valid label key."""
    return f"{key}.matches('{LABEL_KEY_RE}') && {key}.indexOf('/') <= 253"


LABEL_KEY_MESSAGE = (
    "an optional DNS subdomain prefix (lowercase letters, digits, '-' and '.', at most 253 characters) and "
    "'/', then a name of 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
)
LABEL_VALUE_MESSAGE = (
    "a label value is at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or "
    "digit (or empty)"
)


def fetch() -> None:
    """Start a control plane and store the closure of the schemas we use from /openapi/v3/api/v1."""
    sys.path.insert(0, str(TOP / "tests" / "e2e"))
    import controlplane

    with controlplane.running_control_plane() as plane:
        version = json.loads(plane.get("/version"))["gitVersion"]
        document = json.loads(plane.get("/openapi/v3/api/v1"))
    if version != K8S_VERSION:
        sys.exit(
            f"the API server is {version}, the newest supported version (tools/) is {K8S_VERSION}: "
            "run make crd-fetch (it starts the newest)"
        )
    schemas = document["components"]["schemas"]
    wanted: dict[str, Any] = {}
    todo = list(ROOTS.values())
    while todo:
        name = todo.pop()
        if name in wanted or name in SPECIAL:
            continue
        wanted[name] = schemas[name]
        todo.extend(_refs(schemas[name]))
    SNIPPET.parent.mkdir(parents=True, exist_ok=True)
    SNIPPET.write_text(
        json.dumps(
            {
                "source": f"kube-apiserver {version} GET /openapi/v3/api/v1",
                "schemas": dict(sorted(wanted.items())),
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )
    print(f"wrote {SNIPPET.relative_to(TOP)} ({len(wanted)} schemas)", file=sys.stderr)


def _refs(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        found = [schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else []
        for value in schema.values():
            found.extend(_refs(value))
        return found
    if isinstance(schema, list):
        return [r for item in schema for r in _refs(item)]
    return []


def structural(
    schema: dict[str, Any], schemas: dict[str, Any], stack: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Inline ``$ref``s and keep only what a structural CRD schema may hold."""
    schema = dict(schema)
    description = schema.get("description")
    ref = schema.pop("$ref", None)
    if ref is None and isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
        ref = schema.pop("allOf")[0]["$ref"]
    if ref is not None:
        name = ref.rsplit("/", 1)[-1]
        if name in stack:
            raise SystemExit(f"recursive schema {' -> '.join((*stack, name))}: cannot inline")
        if name in SPECIAL:
            target = dict(SPECIAL[name])
            target.setdefault("description", schemas.get(name, {}).get("description", ""))
        else:
            target = structural(schemas[name], schemas, (*stack, name))
        merged = dict(target)
        for key, value in schema.items():
            if key in ("x-kubernetes-list-type", "x-kubernetes-map-type"):
                merged[key] = value
        if description:
            merged["description"] = description
        return _clean(merged)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {k: structural(v, schemas, stack) for k, v in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = structural(value, schemas, stack)
        elif key in KEEP:
            out[key] = value
    return _clean(out)


def _clean(schema: dict[str, Any]) -> dict[str, Any]:
    schema = {k: v for k, v in schema.items() if k in KEEP and v not in (None, "")}
    if schema.get("x-kubernetes-list-type") == "map":
        # A list-map key must be required (defaults are dropped); otherwise keep the list atomic.
        item = schema.get("items", {})
        keys = schema.get("x-kubernetes-list-map-keys", [])
        if not set(keys) <= set(item.get("required", [])):
            schema["x-kubernetes-list-type"] = "atomic"
            schema.pop("x-kubernetes-list-map-keys", None)
    if "type" not in schema and not schema.get("x-kubernetes-int-or-string") and "properties" in schema:
        schema["type"] = "object"
    return schema


def rule(
    expression: str,
    message: str | None = None,
    *,
    message_expression: str | None = None,
    field_path: str | None = None,
    reason: str | None = None,
) -> dict[str, str]:
    out = {"rule": expression}
    if message:
        out["message"] = message
    if message_expression:
        out["messageExpression"] = message_expression
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def label_map(description: str, *, values: bool = True, max_value: int = 63) -> dict[str, Any]:
    """A map of label keys (CEL-checked) to strings of at most ``max_value`` characters; label
    values too when ``values``."""
    rules = [
        rule(
            "self.all(k, size(k) <= 317 && " + label_key_rule("k") + ")",
            "invalid key: a key is " + LABEL_KEY_MESSAGE,
        )
    ]
    value: dict[str, Any] = {"type": "string", "maxLength": max_value}
    if values:
        rules.append(rule(f"self.all(k, self[k].matches('{LABEL_VALUE_RE}'))", LABEL_VALUE_MESSAGE))
    return {
        "description": description,
        "type": "object",
        "maxProperties": MAX_MAP_KEYS,
        "additionalProperties": value,
        "x-kubernetes-validations": rules,
    }


def bound_strings(schema: Any, limit: int) -> None:
    """Give every string property and list item under ``schema`` without a ``maxLength`` (or an
    enum) that bound. Maps' values (``additionalProperties``: CSI attributes, an ephemeral claim's
    labels) are left as the API server has them."""
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and "maxLength" not in schema and "enum" not in schema:
        schema["maxLength"] = limit
    for child in (schema.get("properties") or {}).values():
        bound_strings(child, limit)
    bound_strings(schema.get("items"), limit)


def glob_list(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "type": "array",
        "maxItems": MAX_GLOBS,
        "x-kubernetes-list-type": "atomic",
        "items": {
            "type": "string",
            "maxLength": 253,
            "x-kubernetes-validations": [
                rule(
                    # Backslashes doubled: a CEL string literal has no \* or \? escape.
                    "self.matches('^" + GLOB_RE.pattern.replace("\\", "\\\\") + "$')",
                    message_expression="self + ' is not a container-name glob: lowercase letters, digits, "
                    "\\'-\\', \\'*\\', \\'?\\' and classes such as [a-z] or [!0-9]'",
                )
            ],
        },
    }


def richer_fields() -> dict[str, Any]:
    """The schemas of containerSelector, nodeSelector, imagePullSecrets, podMetadata, priority, onConflict."""
    low, high = PRIORITY_RANGE
    return {
        "containerSelector": {
            "description": "Which containers receive env, envFrom and volumeMounts (default: every container "
            "and init container). Glob patterns on the container name.",
            "type": "object",
            "properties": {
                "include": {
                    **glob_list("Only containers matching one of these (default: all)."),
                    "minItems": 1,
                },
                "exclude": glob_list("No container matching one of these, e.g. istio-proxy, linkerd-*."),
                "initContainers": {
                    "description": "Whether init containers receive them (default true).",
                    "type": "boolean",
                },
            },
        },
        "nodeSelector": label_map(
            "Merged into the pod's nodeSelector; the same key with another value is a conflict."
        ),
        "imagePullSecrets": {
            "description": "Added to the pod's imagePullSecrets, de-duplicated by name.",
            "type": "array",
            "maxItems": MAX_ITEMS["imagePullSecrets"],
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "maxLength": 253, "description": "A Secret's name."}
                },
                "x-kubernetes-validations": [
                    rule(
                        "self.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
                        message_expression="'imagePullSecrets name ' + self.name + ' is not a valid Secret "
                        "name (a DNS subdomain)'",
                        field_path=".name",
                    )
                ],
            },
        },
        "podMetadata": {
            "description": "Labels and annotations merged into the pod's metadata; the same key with another "
            "value is a conflict. Added labels never change which presets match.",
            "type": "object",
            "properties": {
                "labels": label_map("Labels added to the pod."),
                "annotations": {
                    **label_map("Annotations added to the pod.", values=False, max_value=MAX_VALUE_LENGTH),
                    "x-kubernetes-validations": [
                        rule(
                            "self.all(k, size(k) <= 317 && " + label_key_rule("k") + ")",
                            "invalid annotation key: a key is " + LABEL_KEY_MESSAGE,
                        ),
                        rule(
                            f"self.all(k, !k.startsWith('{ANNOTATION_PREFIX}'))",
                            f"annotation keys under {ANNOTATION_PREFIX} are reserved for podpreset's own",
                        ),
                    ],
                },
            },
        },
        "priority": {
            "description": "Presets apply in descending priority, then ClusterPodPresets before PodPresets, "
            "then by name. Default 0.",
            "type": "integer",
            "format": "int32",
            "minimum": low,
            "maximum": high,
        },
        "onConflict": {
            "description": "What a conflict of this preset does: SkipAll (default: no preset is applied), "
            "SkipPreset (this preset is left out), KeepExisting (its conflicting items are dropped), "
            "Reject (the pod is refused).",
            "type": "string",
            "enum": list(POLICIES),
        },
        "rollout": {
            "description": "Whether an edit of this preset rolls the workloads it matches that opted in "
            '(annotation podpreset.dev/rollout: "true" on the workload or its namespace): OnChange '
            "(default) or Never (the preset is left out of their podpreset.dev/presets-hash).",
            "type": "string",
            "enum": list(ROLLOUT_POLICIES),
        },
    }


def spec_schema(schemas: dict[str, Any], *, cluster: bool = False) -> dict[str, Any]:
    items = {
        field: structural({"$ref": "#/components/schemas/" + name}, schemas) for field, name in ROOTS.items()
    }

    selector = items.pop("selector")
    selector["description"] = (
        "Which pods of the preset's namespace it applies to. Empty or absent: every pod. "
        + selector.get("description", "")
    )
    labels = selector["properties"]["matchLabels"]
    labels["maxProperties"] = 64
    labels["additionalProperties"]["maxLength"] = 63
    labels["x-kubernetes-validations"] = [
        rule(
            "self.all(k, size(k) <= 317 && " + label_key_rule("k") + ")",
            "invalid label key: a label key is " + LABEL_KEY_MESSAGE,
        ),
        rule(f"self.all(k, self[k].matches('{LABEL_VALUE_RE}'))", LABEL_VALUE_MESSAGE),
    ]
    expressions = selector["properties"]["matchExpressions"]
    expressions["maxItems"] = 32
    requirement = expressions["items"]
    requirement["properties"]["key"]["maxLength"] = 317
    requirement["properties"]["values"]["maxItems"] = 64
    requirement["properties"]["values"]["items"]["maxLength"] = 63
    requirement["x-kubernetes-validations"] = [
        rule(
            label_key_rule("self.key"),
            message_expression="'invalid label key ' + self.key + ': a label key is "
            + LABEL_KEY_MESSAGE.replace("'", "\\'")
            + "'",
            field_path=".key",
        ),
        rule(
            "self.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist']",
            message_expression="'operator ' + self.operator + ' is not one of In, NotIn, Exists, DoesNotExist'",
            field_path=".operator",
        ),
        rule(
            "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
            message_expression="'values must not be empty when operator is ' + self.operator",
            field_path=".values",
        ),
        rule(
            "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0",
            message_expression="'values must be empty when operator is ' + self.operator",
            field_path=".values",
        ),
        rule(
            f"!has(self.values) || self.values.all(v, v.matches('{LABEL_VALUE_RE}'))",
            LABEL_VALUE_MESSAGE,
            field_path=".values",
        ),
    ]

    env = items["env"]
    env["properties"]["name"]["maxLength"] = 1024
    env["properties"]["value"]["maxLength"] = MAX_VALUE_LENGTH
    env["x-kubernetes-validations"] = [
        rule(
            "!self.name.contains('=')",
            message_expression="'env var name ' + self.name + ' must not contain \\'=\\''",
            field_path=".name",
        ),
        rule(
            "!(has(self.value) && size(self.value) > 0 && has(self.valueFrom))",
            message_expression="'env var ' + self.name + ': set value or valueFrom, not both'",
        ),
    ]

    volume = items["volumes"]
    volume["properties"]["name"]["maxLength"] = 63
    sources = sorted(k for k in volume["properties"] if k != "name")
    volume["x-kubernetes-validations"] = [
        rule(
            "self.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
            message_expression="'volume name ' + self.name + ' must be a DNS label: lowercase letters, digits "
            "and \\'-\\', starting and ending with a letter or digit'",
            field_path=".name",
        ),
        rule(
            # At most one: a volume with no source is valid, Kubernetes defaults it to emptyDir: {}
            # (and the engine accepts it, as legacy presets rely on that).
            "[" + ", ".join(f"has(self.{s})" for s in sources) + "].filter(x, x).size() <= 1",
            message_expression="'volume ' + self.name + ' may have at most one volume source (for "
            "example configMap, secret, emptyDir, downwardAPI, projected, persistentVolumeClaim; none "
            "means emptyDir)'",
        ),
    ]

    # The engine's envFrom rules (presets/model.py _check_env_from): exactly one source per item, and
    # no source twice in one preset, keyed by (prefix, configMapRef.name, secretRef.name).
    env_from = items["envFrom"]
    env_from["properties"]["prefix"]["maxLength"] = 1024
    env_from["properties"]["configMapRef"]["properties"]["name"]["maxLength"] = 253
    env_from["properties"]["secretRef"]["properties"]["name"]["maxLength"] = 253
    env_from["x-kubernetes-validations"] = [
        rule(
            "has(self.configMapRef) != has(self.secretRef)",
            "an envFrom source must set exactly one of configMapRef or secretRef",
        ),
    ]

    mount = items["volumeMounts"]
    mount["properties"]["name"]["maxLength"] = 63
    mount["properties"]["mountPath"]["maxLength"] = 4096

    toleration = items["tolerations"]
    toleration["properties"]["key"]["maxLength"] = 317
    toleration["properties"]["value"]["maxLength"] = 63
    toleration["x-kubernetes-validations"] = [
        rule(
            "!has(self.operator) || self.operator in ['Exists', 'Equal']",
            message_expression="'toleration operator ' + self.operator + ' is not Exists or Equal'",
            field_path=".operator",
        ),
        rule(
            "(has(self.key) && size(self.key) > 0) || (has(self.operator) && self.operator == 'Exists')",
            "a toleration with an empty key must have operator Exists (it then tolerates every taint)",
        ),
        rule(
            "!(has(self.operator) && self.operator == 'Exists') || !has(self.value) || size(self.value) == 0",
            "a toleration with operator Exists must not have a value",
            field_path=".value",
        ),
        rule(
            "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
            "tolerationSeconds only applies with effect NoExecute",
            field_path=".tolerationSeconds",
        ),
    ]

    for field in ("env", "envFrom", "volumes", "volumeMounts", "tolerations"):
        bound_strings(items[field], MAX_STRING_LENGTH)

    properties: dict[str, Any] = {"selector": selector}
    if cluster:
        namespace_selector = copy.deepcopy(selector)
        namespace_selector["description"] = (
            "Which namespaces' pods it applies to, by the namespace's labels (every namespace has "
            "kubernetes.io/metadata.name). Empty or absent: every namespace."
        )
        properties = {"namespaceSelector": namespace_selector, **properties}
    lists = {
        "env": (
            "Environment variables added to every container and init container of a matching pod.",
            ["name"],
        ),
        "envFrom": (
            "ConfigMaps and Secrets whose keys become environment variables of every container and init "
            "container.",
            None,
        ),
        "volumes": ("Volumes added to a matching pod.", ["name"]),
        "volumeMounts": (
            "Mounts of this preset's volumes, added to every container and init container.",
            ["mountPath"],
        ),
        "tolerations": ("Tolerations added to a matching pod.", None),
    }
    for field, (description, keys) in lists.items():
        schema: dict[str, Any] = {
            "description": description,
            "type": "array",
            "maxItems": MAX_ITEMS[field],
            "items": items[field],
        }
        if keys:
            schema["x-kubernetes-list-type"] = "map"
            schema["x-kubernetes-list-map-keys"] = keys
        else:
            schema["x-kubernetes-list-type"] = "atomic"
        properties[field] = schema
    properties.update(richer_fields())

    injection = (
        "env",
        "envFrom",
        "volumes",
        "volumeMounts",
        "tolerations",
        "nodeSelector",
        "imagePullSecrets",
    )
    metadata = ("labels", "annotations")
    injects = " || ".join(
        [f"(has(self.{f}) && size(self.{f}) > 0)" for f in injection]
        + [
            f"(has(self.podMetadata) && has(self.podMetadata.{f}) && size(self.podMetadata.{f}) > 0)"
            for f in metadata
        ]
    )
    names = ", ".join((*injection, "podMetadata"))
    return {
        "description": f"What the preset injects into the pods it selects. At least one of {names} must be set.",
        "type": "object",
        "properties": properties,
        "x-kubernetes-validations": [
            rule(
                injects,
                f"the preset injects nothing: set at least one of {names}",
                reason="FieldValueRequired",
            ),
            rule(
                "!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) && "
                "self.volumes.exists(v, v.name == m.name))",
                "every volumeMount must name a volume declared in spec.volumes of this same preset; add the "
                "missing volume to spec.volumes",
                field_path=".volumeMounts",
            ),
            rule(
                "!has(self.envFrom) || self.envFrom.all(e, self.envFrom.exists_one(f, "
                "(has(f.prefix) ? f.prefix : '') == (has(e.prefix) ? e.prefix : '') && "
                + " && ".join(
                    f"has(f.{ref}) == has(e.{ref}) && (!has(f.{ref}) || "
                    f"(has(f.{ref}.name) ? f.{ref}.name : '') == (has(e.{ref}.name) ? e.{ref}.name : ''))"
                    for ref in ("configMapRef", "secretRef")
                )
                + "))",
                "the same envFrom source (prefix, configMapRef name, secretRef name) is listed twice; "
                "keep one",
                field_path=".envFrom",
            ),
            rule(
                "!has(self.volumeMounts) || self.volumeMounts.all(m, self.volumeMounts.exists_one(n, "
                "n.name == m.name))",
                "a preset may mount each of its volumes only once (two volumeMounts name the same volume)",
                field_path=".volumeMounts",
            ),
        ],
    }


def status_schema() -> dict[str, Any]:
    """What podpreset controller writes (the status subresource); docs/semantics.md says what each means."""
    text = {"type": "string", "maxLength": 1024}
    count = {"type": "integer", "format": "int64", "minimum": 0}
    return {
        "description": "Written by podpreset controller; the webhook never reads it.",
        "type": "object",
        "properties": {
            "observedGeneration": {
                "description": "The metadata.generation this status describes.",
                "type": "integer",
                "format": "int64",
            },
            "conditions": {
                "description": "Valid: whether the webhook applies this preset, and if not why (the reason).",
                "type": "array",
                "maxItems": 8,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "items": {
                    "type": "object",
                    "required": ["type", "status", "reason", "lastTransitionTime"],
                    "properties": {
                        "type": {"type": "string", "maxLength": 316},
                        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                        "reason": {"type": "string", "maxLength": 1024},
                        "message": {"type": "string", "maxLength": 32768},
                        "lastTransitionTime": {"type": "string", "format": "date-time"},
                        "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
                    },
                },
            },
            "matchedWorkloads": {
                **count,
                "description": "Deployments, StatefulSets, DaemonSets, Jobs and CronJobs whose pod template "
                "this preset selects now.",
            },
            "injectedPods": {
                **count,
                "description": "Existing pods that carry this preset's applied annotation.",
            },
            "conflicts": {
                **count,
                "description": "PodPresetConflict Events about this preset that the API server still keeps.",
            },
            "lastConflict": {
                "description": "The newest of those Events.",
                "type": "object",
                "properties": {
                    "time": {"type": "string", "format": "date-time"},
                    "pod": {**text, "description": "The pod's name, or its generateName"},
                    "field": {**text, "description": "Where: container, field and key"},
                },
            },
        },
    }


def crd(schemas: dict[str, Any], *, cluster: bool = False) -> dict[str, Any]:
    kind = "ClusterPodPreset" if cluster else "PodPreset"
    plural = kind.lower() + "s"
    limit = MAX_CLUSTER_NAME_LENGTH if cluster else MAX_NAME_LENGTH
    annotation = "clusterpodpreset-<name>" if cluster else "podpreset-<name>"
    description = (
        "A ClusterPodPreset injects env vars, envFrom sources, volumes, volume mounts, tolerations and "
        "pod fields into every pod, in every namespace its namespaceSelector matches, that its selector "
        "matches, when the pod is created. What it references is resolved in the pod's namespace."
        if cluster
        else "A PodPreset injects env vars, envFrom sources, volumes, volume mounts, tolerations and pod "
        "fields into every pod of its namespace that its selector matches, when the pod is created."
    )
    columns: list[dict[str, Any]] = [
        {
            "name": "Selector",
            "type": "string",
            "jsonPath": ".spec.selector.matchLabels",
            "description": "The labels a pod must have; empty for every pod (see also Expressions)",
        },
        {
            "name": "Expressions",
            "type": "string",
            "jsonPath": ".spec.selector.matchExpressions",
            "priority": 1,
            "description": "The selector's matchExpressions",
        },
        # Wide columns (kubectl get -o wide), the same for both kinds.
        {"name": "Priority", "type": "integer", "jsonPath": ".spec.priority", "priority": 1},
        {"name": "OnConflict", "type": "string", "jsonPath": ".spec.onConflict", "priority": 1},
        # Written by podpreset controller (docs/semantics.md, "Status"); empty until it has.
        {
            "name": "Matched",
            "type": "integer",
            "jsonPath": ".status.matchedWorkloads",
            "description": "Deployments, StatefulSets, DaemonSets, Jobs and CronJobs whose pod template it selects",
        },
        {
            "name": "Injected",
            "type": "integer",
            "jsonPath": ".status.injectedPods",
            "description": "Pods that carry its applied annotation",
        },
        {
            "name": "Conflicts",
            "type": "integer",
            "jsonPath": ".status.conflicts",
            "description": "Its PodPresetConflict Events the API server still keeps (one hour by default)",
        },
        {
            "name": "Valid",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Valid")].status',
            "priority": 1,
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    if cluster:
        columns.insert(
            0,
            {
                "name": "Namespaces",
                "type": "string",
                "jsonPath": ".spec.namespaceSelector.matchLabels",
                "description": "The labels a namespace must have; empty for every namespace",
            },
        )
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.podpreset.dev",
            "annotations": {
                "podpreset.dev/generated-by": f"hack/gen-crd.py from kube-apiserver {K8S_VERSION} "
                "OpenAPI; do not edit"
            },
        },
        "spec": {
            "group": "podpreset.dev",
            "scope": "Cluster" if cluster else "Namespaced",
            "names": {
                "kind": kind,
                "listKind": kind + "List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": ["cpp" if cluster else "pp"],
                "categories": ["all-presets"],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    # A printer column shows the first value of a list path, so there are no per-field counts.
                    "additionalPrinterColumns": columns,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "description": description,
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(schemas, cluster=cluster),
                                "status": status_schema(),
                            },
                            "x-kubernetes-validations": [
                                rule(
                                    f"size(self.metadata.name) <= {limit}",
                                    f"metadata.name may be at most {limit} characters, because the pod annotation key "
                                    f"{annotation} must fit in 63 characters",
                                    reason="FieldValueInvalid",
                                ),
                            ],
                        }
                    },
                }
            ],
        },
    }


def render(schemas: dict[str, Any], *, cluster: bool = False) -> str:
    header = (
        "# Generated by hack/gen-crd.py (make crd) from kube-apiserver "
        + K8S_VERSION
        + "'s OpenAPI (hack/openapi/). Do not edit by hand.\n"
    )
    return header + yaml.safe_dump(crd(schemas, cluster=cluster), sort_keys=False, width=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--fetch", action="store_true", help="refresh the OpenAPI snippet from a real API server"
    )
    parser.add_argument("--check", action="store_true", help="fail when the committed CRD is out of date")
    args = parser.parse_args()
    if args.fetch:
        fetch()
    if not SNIPPET.exists():
        sys.exit(
            f"{SNIPPET.relative_to(TOP)} is missing: the newest supported Kubernetes is {K8S_VERSION} "
            "(tools/); run make crd-fetch to store its OpenAPI"
        )
    schemas = json.loads(SNIPPET.read_text())["schemas"]
    for generated, cluster in ((OUTPUT, False), (CLUSTER_OUTPUT, True)):
        text = render(schemas, cluster=cluster)
        for output in (generated, CHART_CRDS / generated.name):
            if args.check:
                if not output.exists() or output.read_text() != text:
                    sys.exit(f"{output.relative_to(TOP)} is out of date: run make crd")
                continue
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text)
            print(f"wrote {output.relative_to(TOP)} ({len(text) // 1024} KiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
