"""A tiny JSON REST client for the tests: raw camelCase objects in and out, and the response headers.

The official client's models convert to snake_case and hide the ``Warning`` header; the tests need
exactly what the API server stored and said.
"""

from __future__ import annotations

import base64
import copy
import json
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    warnings: tuple[str, ...]
    body: Any

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else str(self.body)


class ApiError(AssertionError):
    """The API server answered with an unexpected status."""

    def __init__(self, reply: Reply, what: str) -> None:
        super().__init__(f"{what}: HTTP {reply.status}: {reply.message or reply.body}")
        self.reply = reply


class Kube:
    """Requests to one API server with one identity, from a kubeconfig (client cert or token)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        self.server = cluster["server"].rstrip("/")
        self.kubeconfig = kubeconfig
        self._dir = Path(tempfile.mkdtemp(prefix="e2e-kube-"))
        if "certificate-authority-data" in cluster:
            ctx = ssl.create_default_context(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
            )
        else:
            ctx = ssl.create_default_context(cafile=cluster["certificate-authority"])
        if "client-certificate" in user:
            ctx.load_cert_chain(user["client-certificate"], user["client-key"])
        elif "client-certificate-data" in user:
            cert, key = self._dir / "client.crt", self._dir / "client.key"
            cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
            key.write_bytes(base64.b64decode(user["client-key-data"]))
            ctx.load_cert_chain(str(cert), str(key))
        self._ssl = ctx
        self._token = user.get("token")
        self._impersonate: str | None = None

    def impersonating(self, user: str) -> Kube:
        """The same client acting as ``user`` through the impersonation header: requests are
        authorized as that user (in group system:authenticated), as for ``kubectl --as``."""
        other = copy.copy(self)
        other._impersonate = user
        return other

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Reply:
        url = self.server + path + ("?" + urllib.parse.urlencode(params) if params else "")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", accept)
        if data is not None:
            req.add_header("Content-Type", content_type)
        if self._token:
            req.add_header("Authorization", f"Bearer {self._token}")
        if self._impersonate:
            req.add_header("Impersonate-User", self._impersonate)
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=30) as response:
                return _reply(response.status, response.headers, response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return _reply(exc.code, exc.headers, exc.read())

    def get(self, path: str, **params: str) -> Any:
        reply = self.request("GET", path, params=params or None)
        if reply.status != 200:
            raise ApiError(reply, f"GET {path}")
        return reply.body

    def table(self, path: str) -> Any:
        """What ``kubectl get`` prints: the server-side Table with the printer columns."""
        reply = self.request("GET", path, accept="application/json;as=Table;v=v1;g=meta.k8s.io")
        if reply.status != 200:
            raise ApiError(reply, f"GET {path} as Table")
        return reply.body

    def create(self, path: str, body: Any, *, dry_run: bool = False) -> Reply:
        reply = self.request("POST", path, body, params={"dryRun": "All"} if dry_run else None)
        if reply.status not in (200, 201):
            raise ApiError(reply, f"POST {path}")
        return reply

    def apply_manifest(self, doc: Mapping[str, Any]) -> Reply:
        """Create (or replace) one manifest document, as admin would with kubectl apply."""
        path = collection_path(doc)
        reply = self.request("POST", path, doc)
        if reply.status == 409:
            name = doc["metadata"]["name"]
            current = self.get(f"{path}/{name}")
            replaced = dict(
                doc, metadata=dict(doc["metadata"], resourceVersion=current["metadata"]["resourceVersion"])
            )
            reply = self.request("PUT", f"{path}/{name}", replaced)
        if reply.status not in (200, 201):
            raise ApiError(reply, f"apply {doc['kind']} {doc['metadata']['name']}")
        return reply

    def delete(self, path: str) -> Reply:
        return self.request("DELETE", path)

    def watch(self, path: str, timeout: float, **params: str) -> Iterator[dict[str, Any]]:
        """The watch events of ``path`` (a collection) for at most ``timeout`` seconds."""
        query = urllib.parse.urlencode({**params, "watch": "1", "timeoutSeconds": str(int(timeout))})
        req = urllib.request.Request(f"{self.server}{path}?{query}")
        req.add_header("Accept", "application/json")
        if self._token:
            req.add_header("Authorization", f"Bearer {self._token}")
        with urllib.request.urlopen(req, context=self._ssl, timeout=timeout + 10) as response:
            for line in response:
                if line.strip():
                    yield json.loads(line)


def _reply(status: int, headers: Any, raw: bytes) -> Reply:
    try:
        body = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        body = raw.decode(errors="replace")
    warnings = tuple(_warning_text(h) for h in headers.get_all("Warning") or ())
    return Reply(status=status, headers=dict(headers.items()), warnings=warnings, body=body)


def _warning_text(header: str) -> str:
    # RFC 7234 form used by the API server: 299 - "text"
    _, _, text = header.partition(" - ")
    return text.strip().strip('"').replace('\\"', '"') if text else header


_PLURALS = {
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "CustomResourceDefinition": "customresourcedefinitions",
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
    "Pod": "pods",
    "Event": "events",
    "PodPreset": "podpresets",
    "ClusterPodPreset": "clusterpodpresets",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ReplicaSet": "replicasets",
}
_CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "ClusterPodPreset",
}


def collection_path(doc: Mapping[str, Any]) -> str:
    group_version = doc["apiVersion"]
    prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    kind = doc["kind"]
    if kind in _CLUSTER_SCOPED:
        return f"{prefix}/{_PLURALS[kind]}"
    return f"{prefix}/namespaces/{doc['metadata']['namespace']}/{_PLURALS[kind]}"


def eventually(what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll ``check()`` until it returns a truthy value; fail naming ``what`` and the last result.
    The timeout only stops a test that would wait for ever (60 s: the machine may be busy)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (AssertionError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout:.0f}s: {what} (last: {last!r})")
        time.sleep(interval)
