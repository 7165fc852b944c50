"""AdmissionReview v1 requests, shaped as kube-apiserver sends them to ``POST /mutate``."""

from __future__ import annotations

import copy
from typing import Any

POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}
PODS = {"group": "", "version": "v1", "resource": "pods"}
UID = "0b5e0c4e-1111-4222-8333-444455556666"
CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"


def admission_review(
    obj: Any,
    *,
    uid: str = UID,
    namespace: str = "default",
    operation: str = "CREATE",
    name: str = "",
    dry_run: bool = False,
    username: str = CONTROLLER,
    **request: Any,
) -> dict[str, Any]:
    """An AdmissionReview for ``obj`` (a pod unless ``resource`` says otherwise) as the API server
    sends it: kind and resource, the user, ``oldObject`` a copy of ``obj`` on UPDATE. ``request``
    adds or replaces fields of the request by their camelCase names (``subResource="status"``)."""
    body: dict[str, Any] = {
        "uid": uid,
        "kind": dict(POD_KIND),  # fresh dicts each time: tests change them in place
        "resource": dict(PODS),
        "requestKind": dict(POD_KIND),
        "requestResource": dict(PODS),
        "name": name,
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": username},
        "object": obj,
        "oldObject": copy.deepcopy(obj) if operation == "UPDATE" else None,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    body.update(request)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}
