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

import gc
import importlib
import logging

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
    "webhook.app",
    "webhook.metrics",
    "webhook.sources",
    "gunicorn.workers.gthread",
    "logging.handlers",
    "queue",
    "webhook.logqueue",
)
"""Imported by every worker, whatever its preset source."""

FILE_MODULES = ("webhook.filesource", "webhook.files")
KUBE_MODULES = (
    "webhook.kube",
    "webhook.events",
    "kubernetes.client",
    "kubernetes.config",
    "kubernetes.client.api.custom_objects_api",
)
"""The watch's part of the Kubernetes client. Its package imports the generated models whatever
part of it is used (``api_client`` imports them to deserialize typed answers), but loads each API
class on first use: ``CustomObjectsApi`` (the watch) is imported here, and with it the pydantic
machinery its methods build on their first call. ``CoreV1Api`` (about 20 MiB, used only to post
conflict Events) is left to the first Event a worker records."""


def warm_up(*, kubernetes: bool, extra: tuple[str, ...] = ()) -> list[str]:
    """Import the modules the workers will use, then freeze every object out of the collector.

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
    gc.collect()
    gc.freeze()
    return missing
