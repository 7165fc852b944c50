"""Warning Events for preset conflicts, recorded off the request path.

``EventRecorder.record_conflicts(decision)`` is the app's ``on_decision`` listener: it turns each
conflict of a (non dry-run) decision into a ``core/v1`` Event and puts it on a bounded queue, then
returns at once. One daemon thread per worker creates the Events. When the queue is full (the API
server is slow or down) new Events are dropped and counted; admission never waits for them.

The Event is about the pod's controller (its ``ownerReferences`` entry with ``controller: true``)
when it has one, since a pod being created may have no name yet; otherwise about the pod, by name
or generateName. It lives in the request's namespace. Messages name presets, containers and keys,
never values. For ``podpreset controller`` (the presets' ``status.conflicts`` and ``lastConflict``)
each Event also names, as data, the preset in ``related`` and the pod and place in the annotations
``podpreset.dev/pod`` and ``podpreset.dev/field`` (``presets.status.conflict_field``).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import queue
import re
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

from presets.admission import Decision
from presets.merge import Conflict
from presets.status import conflict_field

logger = logging.getLogger(__name__)

REASON = "PodPresetConflict"
POD_ANNOTATION = "podpreset.dev/pod"
FIELD_ANNOTATION = "podpreset.dev/field"
COMPONENT = "podpreset"
DEFAULT_CAPACITY = 256
REQUEST_TIMEOUT = (5.0, 10.0)
_INVALID_NAME_CHARS = re.compile(r"[^a-z0-9.-]+")

ClientFactory = Callable[[], Any]


def involved_object(pod: Mapping[str, Any], namespace: str) -> dict[str, str]:
    """What the Event is about: the pod's controller when it has one, else the pod itself."""
    metadata = pod.get("metadata") if isinstance(pod.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    for owner in metadata.get("ownerReferences") or ():
        if (
            isinstance(owner, dict)
            and owner.get("controller") is True
            and owner.get("name")
            and owner.get("kind")
        ):
            ref = {
                "apiVersion": str(owner.get("apiVersion", "")),
                "kind": str(owner["kind"]),
                "name": str(owner["name"]),
                "namespace": namespace,
            }
            if owner.get("uid"):
                ref["uid"] = str(owner["uid"])
            return ref
    name = metadata.get("name") or metadata.get("generateName") or ""
    return {"apiVersion": "v1", "kind": "Pod", "name": str(name), "namespace": namespace}


def conflict_events(decision: Decision, *, instance: str = "") -> list[dict[str, Any]]:
    """The Event bodies for a decision's conflicts; none for dry runs or decisions without conflicts."""
    request, outcome = decision.request, decision.outcome
    if request.dry_run or outcome is None or not outcome.conflicts or request.object is None:
        return []
    involved = involved_object(request.object, request.namespace)
    pod_name = request.pod_name
    about_pod = involved["kind"] == "Pod"
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    base = _INVALID_NAME_CHARS.sub("-", involved["name"].lower()).strip(".-")[:200] or "pod"
    events = []
    for conflict in outcome.conflicts:
        subject = "" if about_pod else f"pod {pod_name or '(unnamed)'}: "
        events.append(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "generateName": base + ".",
                    "namespace": request.namespace,
                    "annotations": {
                        POD_ANNOTATION: (pod_name or "(unnamed)")[:253],
                        FIELD_ANNOTATION: conflict_field(conflict)[:1024],
                    },
                },
                "involvedObject": involved,
                "related": preset_reference(conflict, request.namespace),
                "reason": REASON,
                "type": "Warning",
                "message": (f"{subject}{conflict.warning()}")[:1024],
                "source": {"component": COMPONENT},
                "reportingComponent": COMPONENT,
                "reportingInstance": instance,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            }
        )
    return events


def preset_reference(conflict: Conflict, namespace: str) -> dict[str, str]:
    """The preset a conflict is about, as an Event's ``related`` reference."""
    reference = {"apiVersion": "podpreset.dev/v1", "kind": conflict.kind, "name": conflict.preset}
    if conflict.kind == "PodPreset":
        reference["namespace"] = namespace  # a PodPreset applies only in its own namespace
    return reference


class EventRecorder:
    """A bounded queue of Events and the one daemon thread that creates them."""

    def __init__(
        self,
        settings: object = None,
        *,
        client_factory: ClientFactory | None = None,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self._settings = settings
        self._client_factory = client_factory
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._instance = f"{socket.gethostname()}/{os.getpid()}"
        self.dropped = 0
        """Events not recorded because the queue was full."""
        self.failed = 0
        """Events the API server did not accept (or could not be reached for)."""
        self.recorded = 0

    def start(self) -> None:
        """Start the worker thread (idempotent); call after the fork."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="podpreset-events", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Let queued Events be sent for up to ``timeout`` seconds, then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        thread.join(timeout)

    def record_conflicts(self, decision: Decision) -> None:
        """Queue a Warning Event per conflict; returns immediately, never for dry runs."""
        events = conflict_events(decision, instance=self._instance)
        if not events:
            return
        if self._thread is None:
            self.start()
        for event in events:
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                with self._lock:
                    self.dropped += 1
                logger.warning(
                    "event queue full: dropped a %s event for %s/%s",
                    REASON,
                    event["metadata"]["namespace"],
                    event["involvedObject"]["name"],
                )

    def _run(self) -> None:
        api: Any = None
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                if api is None:
                    api = self._core_api()
                api.create_namespaced_event(
                    event["metadata"]["namespace"], event, _request_timeout=REQUEST_TIMEOUT
                )
                self.recorded += 1
            except Exception as exc:  # best effort: log, count, carry on
                self.failed += 1
                logger.warning(
                    "could not record a %s event for %s/%s: %s",
                    REASON,
                    event["metadata"]["namespace"],
                    event["involvedObject"]["name"],
                    getattr(exc, "reason", None) or exc,
                )

    def _core_api(self) -> Any:
        from kubernetes import client  # only workers that record Events load the client

        if self._client_factory is not None:
            return client.CoreV1Api(self._client_factory())
        from webhook.sources.kube import make_api_client

        return client.CoreV1Api(make_api_client(self._settings))  # type: ignore[arg-type]
