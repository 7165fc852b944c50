"""The controller's one way to the API server: JSON requests over the client's connection, counted.

``KubeApi.request`` sends one request and returns the decoded JSON (or, with ``stream=True``, the
raw urllib3 response of a watch); a non-2xx answer raises ``ApiError`` carrying the status. Every
request is counted by verb and resource in ``podpreset_controller_api_requests_total``, so the
load the controller puts on the API server is a number (docs/performance.md). The generated
client's models are never used: they rename fields and drop those they do not know.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA_ONE = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
"""Accept headers asking for objects' metadata only (lists, and watch events)."""
MERGE_PATCH = "application/merge-patch+json"
POOL_SIZE = 24


class ApiError(Exception):
    """The API server answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, reason: str, message: str = "", body: str = "") -> None:
        super().__init__(
            f"API error {status} {reason}: {message}" if message else f"API error {status} {reason}"
        )
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body


def resource_of(path: str) -> str:
    """The resource a request path addresses, with its subresource: ``podpresets/status``."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] else []
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return "other"
    return f"{rest[0]}/{rest[2]}" if len(rest) >= 3 else rest[0]


class KubeApi:
    """JSON requests through one Kubernetes ``ApiClient`` (auth, TLS, host), counted."""

    def __init__(self, api_client: Any, registry: CollectorRegistry | None = None) -> None:
        configuration = api_client.configuration
        if (configuration.connection_pool_maxsize or 0) < POOL_SIZE:
            # One connection per open watch (ten) plus the Lease and status writes: the
            # client's default pool (5 per CPU) would discard connections and open new ones.
            from kubernetes.client import rest

            configuration.connection_pool_maxsize = POOL_SIZE
            api_client.rest_client = rest.RESTClientObject(configuration)
        self._client = api_client
        self.requests = Counter(
            "podpreset_controller_api_requests",
            "Requests the controller sent to the API server, by verb and resource (a watch counts once "
            "when it opens, a paged list once per page).",
            ["verb", "resource"],
            registry=registry,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
        stream: bool = False,
    ) -> Any:
        """One request. Returns the JSON answer, or the open urllib3 response when ``stream``."""
        params = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        verb = _verb(method, params)
        self.requests.labels(verb, resource_of(path)).inc()
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        _, url, headers, serialized, _ = self._client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(params.items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._client.call_api(
                method, url, header_params=headers, body=serialized, _request_timeout=timeout
            )
        except Exception as exc:
            status = getattr(exc, "status", None)
            if isinstance(status, int) and status:
                raise ApiError(status, str(getattr(exc, "reason", "") or "")) from exc
            raise
        raw = response.response
        if not 200 <= raw.status <= 299:
            text = raw.data.decode("utf-8", errors="replace") if raw.data else ""
            try:
                message = str(json.loads(text).get("message") or "")
            except (ValueError, AttributeError):
                message = text[:200]
            raise ApiError(raw.status, str(raw.reason or ""), message, text)
        if stream:
            return raw
        data = raw.data
        return json.loads(data) if data else {}


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _verb(method: str, params: Mapping[str, str]) -> str:
    if method == "GET":
        return "watch" if params.get("watch") == "true" else "get"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        method, method.lower()
    )
