"""What the gunicorn arbiter prepares before it forks, so that the workers share it.

A forked worker shares its parent's memory pages until it writes to them. Everything a worker
would otherwise import for itself after the fork (Flask and Werkzeug, prometheus_client, orjson,
the engine, and in kube mode the parts of the Kubernetes client the watch and the Event recorder
use) costs each worker its own copy; imported once in the arbiter it is one copy for the replica.
``gc.freeze()`` then moves every object that exists at that point into the collector's permanent
generation: a worker's collections never walk them, so they never write to those pages (a
collection writes to the header of every object it visits). Reference counting still writes to
the objects a worker actually uses, so only those pages become private.

Nothing here starts a thread or opens a connection (the arbiter must not hold either across the
fork); ``warm_up`` only imports modules and builds nothing that owns a resource.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib
import json
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

COMMON_MODULES = (
    "flask",
    "werkzeug.exceptions",
    "prometheus_client",
    "prometheus_client.multiprocess",
    "prometheus_client.values",
    "orjson",
    "presets.admission",
    "presets.engine",
    "webhook.server.app",
    "webhook.observe.metrics",
    "webhook.sources.snapshot",
    "gunicorn.workers.gthread",
    "webhook.observe.logqueue",
)
"""Imported by every worker, whatever its preset source."""

FILE_MODULES = ("webhook.sources.files", "webhook.sources.documents")
KUBE_MODULES = (
    "webhook.sources.kube",
    "webhook.sources.health",
    "webhook.observe.events",
    "kubernetes.client",
    "kubernetes.config",
    "kubernetes.client.api.custom_objects_api",
    "kubernetes.client.api.core_v1_api",
)
"""The parts of the Kubernetes client a worker uses. Its package imports the generated models
whatever part of it is used (``api_client`` imports them to deserialize typed answers), but loads
each API class on first use. A worker uses two: ``CustomObjectsApi`` (the PodPreset and
ClusterPodPreset watches) and ``CoreV1Api`` (the Namespace watch, and the conflict Events), so
both are imported here, shared, rather than once per worker. (``webhook.sources.live``, the CLI's
``apply --kubeconfig``, uses the same two and never runs in a worker.)"""


WARM_UP_REQUESTS = 30
WARM_UP_APPS = 10


def warm_up(
    *, kubernetes: bool, app_factory: Callable[[], Any] | None = None, extra: tuple[str, ...] = ()
) -> list[str]:
    """Import the modules the workers will use, run a throwaway app through its request path,
    give freed heap back to the system, then freeze every object out of the collector.

    Running the request path matters as much as importing it: CPython 3.11 rewrites a function's
    bytecode in place (its warm-up counters and specialized instructions) the first times it runs,
    so code first run in a worker dirties that worker's copy of the page. Run here, once, it stays
    shared. The throwaway app answers ``WARM_UP_REQUESTS`` reviews through Flask's test client with
    logging switched off (no decision lines) and before the metrics directory exists (so no
    counts reach the workers' metrics); it starts no source and is dropped.

    Returns the modules that could not be imported (logged, not fatal: a worker that needs one
    fails with the real error when it imports it).
    """
    modules = COMMON_MODULES + (KUBE_MODULES if kubernetes else FILE_MODULES) + extra
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            missing.append(name)
            logger.debug("pre-fork import of %s failed: %s", name, exc)
    if app_factory is not None:
        try:
            _exercise(app_factory)
        except Exception:  # a warm-up is an optimisation: never a reason not to serve
            logger.debug("pre-fork warm-up requests failed", exc_info=True)
    gc.collect()
    _release_free_heap()
    gc.freeze()
    return missing


def _exercise(app_factory: Callable[[], Any]) -> None:
    body = json.dumps(_REVIEW).encode()
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        # Several apps: a function is rewritten only once it has run a few times (8 in 3.11).
        for _ in range(WARM_UP_APPS):
            client = app_factory().test_client()
        for _ in range(WARM_UP_REQUESTS):
            client.post("/mutate", data=body, content_type="application/json")
            client.get("/readyz")
            client.get("/healthz")
    finally:
        logging.disable(previous)


def _release_free_heap() -> None:
    """glibc keeps freed heap (a big list's JSON, say) mapped; ``malloc_trim`` returns it, so the
    workers do not inherit it. Nothing happens on another C library."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


_CONTAINER = {
    "name": "app",
    "image": "registry.example/app:1",
    "env": [{"name": f"VAR_{n}", "value": str(n)} for n in range(5)],
    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
}
_REVIEW = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {
        "uid": "00000000-0000-4000-8000-000000000000",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "default",
        "operation": "CREATE",
        "userInfo": {"username": "podpreset-warm-up"},
        "object": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "warm-up-", "labels": {"app": "warm-up"}},
            "spec": {
                "containers": [_CONTAINER, {**_CONTAINER, "name": "sidecar"}],
                "volumes": [{"name": "data", "emptyDir": {}}],
            },
        },
        "dryRun": True,
    },
}
"""A pod review shaped as the API server sends one (a dry run: nothing reacts to it)."""
