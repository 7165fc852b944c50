"""The Kubernetes source: list, then watch, PodPresets, ClusterPodPresets and Namespaces.

``KubeSource(settings)`` runs one ``Watch`` per resource in each gunicorn worker, each in its own
daemon thread started by ``start()`` after the fork. A watch lists its resource, then watches
from the list's resourceVersion with bookmarks; after every list and every event the source
publishes a new ``Snapshot`` by one assignment: the preset index (both kinds) and the labels of
every namespace, so a relabelled namespace counts for the next pod. The snapshot is ``synced``
once all three have listed. A watch that ends (the server's timeout, a dropped connection, an
API server restart) resumes from the last resourceVersion it saw; an expired one (410 Gone)
relists. Failures back off exponentially with jitter, capped, each watch on its own. The last
good snapshot keeps serving meanwhile. An object that fails validation is skipped, logged and
listed in ``Snapshot.problems``; it never stops the source.

``serve`` may list all three once in the gunicorn arbiter, before the fork (``list_now``): each
worker's watches then start by watching from those lists' resourceVersions, and the listed
presets are pages the workers share (``PRELIST_MAX_AGE`` bounds how old a list a worker uses).

Authentication: in-cluster configuration by default, ``settings.kubeconfig`` for development.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

import orjson

from presets.admission import PresetIndex
from presets.limits import DEFAULT_MAX_PRESET_BYTES
from presets.model import CLUSTER_KIND, KIND, PodPreset, parse_api_object
from webhook.sources.health import SourceHealth
from webhook.sources.snapshot import Snapshot

logger = logging.getLogger(__name__)

GROUP = "podpreset.dev"
VERSION = "v1"
PLURAL = "podpresets"
CLUSTER_PLURAL = "clusterpodpresets"
CONNECT_TIMEOUT = 10.0
WATCH_SECONDS = (240, 360)
"""The server ends each watch after a random time in this range; we then resume it."""
READ_SLACK = 90.0
"""A watch that sends nothing, not even a bookmark, for this long past its timeout is dead."""
STOP_JOIN_SECONDS = 1.0
"""How long ``stop`` waits for the watch threads; daemons, so a list still in flight is dropped."""
PRELIST_MAX_AGE = 30.0
"""A watch starts from the list ``serve`` made before the fork only if it is this fresh (seconds);
a worker forked later (gunicorn replacing one that died) lists for itself."""

Key = tuple[str, str]
"""(namespace, name) of an object; namespace "" for cluster-scoped ones."""
Labels = Mapping[str, str]
T = TypeVar("T")
Parsed = tuple[T | None, tuple[str, ...]]
"""An object turned into an item, or None and its problems (one line each)."""


class _Settings(Protocol):
    @property
    def kubeconfig(self) -> str | None: ...


class _SourceSettings(_Settings, Protocol):
    @property
    def max_preset_bytes(self) -> int: ...


class WatchExpired(Exception):
    """The resourceVersion to resume from is gone (HTTP 410): list again."""


class WatchFailed(Exception):
    """The API server answered a watch with an error other than 410."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter.

    Attempt n waits a random time in [d/2, d], where d = min(cap, base * 2**n). The cap keeps
    the time from an API server's return to the watch's within the 10 s recovery bound
    (docs/operations.md); a replica's workers then retry at most every few seconds each.
    """

    base: float = 0.5
    cap: float = 5.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 30)))
        return (rng or random).uniform(ceiling / 2, ceiling)


def make_api_client(settings: _Settings | None, context: str | None = None) -> Any:
    """A Kubernetes ``ApiClient``: from ``settings.kubeconfig`` when set, else in-cluster config."""
    # Imported here: the CLI's fast paths (apply, review, validate) never load the client.
    from kubernetes import client, config

    kubeconfig = getattr(settings, "kubeconfig", None)
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def object_key(obj: Mapping[str, Any]) -> Key:
    """(namespace, name) of an object; empty strings where they are missing or not strings."""
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(metadata, Mapping):
        metadata = {}
    namespace, name = metadata.get("namespace"), metadata.get("name")
    return (namespace if isinstance(namespace, str) else ""), (name if isinstance(name, str) else "")


def _kind_parser(
    kind: str, max_bytes: int = DEFAULT_MAX_PRESET_BYTES
) -> Callable[[Mapping[str, Any]], Parsed[PodPreset]]:
    """The parser for objects of one resource; ``kind`` and ``apiVersion`` filled in when a list
    leaves them out of its items. An object over ``max_bytes`` is skipped as invalid."""

    def parse(obj: Mapping[str, Any]) -> Parsed[PodPreset]:
        if isinstance(obj, Mapping) and (not obj.get("kind") or not obj.get("apiVersion")):
            obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, **obj}
        return parse_api_object(obj, max_bytes=max_bytes)

    return parse


parse_object = parse_api_object
"""One PodPreset or ClusterPodPreset object from the API: the preset, or None and its problems."""


def namespace_labels(obj: Mapping[str, Any]) -> Parsed[Labels]:
    """A Namespace object's labels as the API server serves them (already validated there, so
    only their shape is checked). Namespace documents in files are validated in full by
    ``presets.namespaces.parse_namespace`` instead."""
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    labels = (metadata.get("labels") if isinstance(metadata, Mapping) else None) or {}
    if not isinstance(labels, Mapping):
        return None, (f"namespace {object_key(obj)[1]}: metadata.labels: expected an object",)
    return MappingProxyType({str(k): str(v) for k, v in labels.items()}), ()


def _custom_objects(plural: str) -> Callable[..., Any]:
    def call(api_client: Any, **options: Any) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(api_client).list_cluster_custom_object(
            GROUP, VERSION, plural, **options
        )

    return call


def _namespaces(api_client: Any, **options: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api_client).list_namespace(**options)


@dataclass(frozen=True, slots=True)
class Resource(Generic[T]):
    """One kind of object to list and watch: how to ask for it and how its objects are read."""

    name: str
    """Plural resource name, for logs and problems."""
    call: Callable[..., Any]
    """``call(api_client, **options)``: the list (or, with ``watch=True``, watch) request of the
    generated client, across all namespaces."""
    parse: Callable[[Mapping[str, Any]], Parsed[T]]
    fingerprint: Callable[[Mapping[str, Any]], Hashable] | None = None
    """What of an object the item depends on: a MODIFIED event whose object has the same
    fingerprint as the one held is not parsed again, and the item (with its resourceVersion) is
    kept. None: every event is parsed."""


def preset_fingerprint(obj: Mapping[str, Any]) -> Hashable:
    """A preset object without what writes of its status change: ``status``, and the metadata the
    API server sets on every write (``resourceVersion``, ``managedFields``, ``generation``).

    The controller writes the presets' status subresource, which moves their resourceVersion; the
    webhook keeps serving the preset it parsed, so the applied annotation keeps the resourceVersion
    of the preset's last real change rather than of the last status write (docs/semantics.md)."""
    metadata = obj.get("metadata")
    kept = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    if isinstance(metadata, Mapping):
        kept["metadata"] = {
            k: v for k, v in metadata.items() if k not in ("resourceVersion", "managedFields", "generation")
        }
    try:
        return hash(orjson.dumps(kept, option=orjson.OPT_SORT_KEYS))
    except (orjson.JSONEncodeError, TypeError):
        return None  # never equal to a held fingerprint: parsed as usual


PODPRESETS: Resource[PodPreset] = Resource(
    PLURAL, _custom_objects(PLURAL), _kind_parser(KIND), preset_fingerprint
)
CLUSTERPODPRESETS: Resource[PodPreset] = Resource(
    CLUSTER_PLURAL, _custom_objects(CLUSTER_PLURAL), _kind_parser(CLUSTER_KIND), preset_fingerprint
)
NAMESPACES: Resource[Labels] = Resource("namespaces", _namespaces, namespace_labels)


def preset_resources(max_bytes: int) -> tuple[Resource[PodPreset], Resource[PodPreset]]:
    """PodPresets and ClusterPodPresets, each object over ``max_bytes`` skipped as invalid."""
    return (
        Resource(PLURAL, PODPRESETS.call, _kind_parser(KIND, max_bytes), preset_fingerprint),
        Resource(
            CLUSTER_PLURAL, CLUSTERPODPRESETS.call, _kind_parser(CLUSTER_KIND, max_bytes), preset_fingerprint
        ),
    )


LIST_PAGE = 500
"""Objects per list request (``limit``); the pages of one list are one consistent snapshot, and
an expired continue token is a 410 (list again). Paging bounds the JSON held at once (the perf
branch measured 10,000 presets in one answer at 58 MiB resident after parsing, 36 MiB in pages)."""


def list_objects(api_client: Any, resource: Resource[Any]) -> Iterator[Any]:
    """One list, as raw JSON pages ``{"items": [...], "metadata": {"resourceVersion", "continue"}}``.

    Raw JSON, never the client's models: those drop fields they do not know and rename the rest.
    """
    page: dict[str, Any] = {}
    while True:
        response = resource.call(
            api_client,
            limit=LIST_PAGE,
            **page,
            _preload_content=False,
            _request_timeout=(CONNECT_TIMEOUT, 60),
        )
        try:
            listing = json.loads(response.data)
        finally:
            _close(response)
        yield listing
        token = (listing.get("metadata") or {}).get("continue")
        if not token:
            return
        page = {"_continue": token}


@dataclass(frozen=True, slots=True)
class Listed(Generic[T]):
    """One whole list of a resource, read by ``list_all``."""

    items: dict[Key, T]
    """The valid objects, by (namespace, name)."""
    problems: dict[Key, tuple[str, ...]]
    """Why each invalid object was skipped, by (namespace, name)."""
    last_page: Any
    """The last page as received (its ``metadata.resourceVersion`` is the list's)."""
    prints: dict[Key, Hashable]
    """Each object's ``Resource.fingerprint``, when the resource has one."""


def list_all(api_client: Any, resource: Resource[T]) -> Listed[T]:
    """List every object of ``resource``, page by page, and parse each: the one list loop of the
    watch (``Watch.list``) and of the live preview (``webhook.sources.live``)."""
    items: dict[Key, T] = {}
    problems: dict[Key, tuple[str, ...]] = {}
    prints: dict[Key, Hashable] = {}
    fingerprint = resource.fingerprint
    listing: Any = {}
    for listing in list_objects(api_client, resource):
        for obj in listing.get("items") or ():
            key = object_key(obj)
            if fingerprint is not None:
                prints[key] = fingerprint(obj)
            item, found = resource.parse(obj)
            if item is not None:
                items[key] = item
            else:
                problems[key] = found
    return Listed(items, problems, listing, prints)


Changed = Callable[["Watch[Any]", "tuple[str, ...] | None"], None]
"""Called with what changed: None after a list (everything), the object's namespace after an
event ("" for cluster-scoped objects), () after a failure (only the problems). Called with the
watches' shared lock held, so it may read every watch's items."""


class Watch(Generic[T]):
    """One resource kept current by list+watch in one daemon thread; items by (namespace, name)."""

    def __init__(
        self,
        resource: Resource[T],
        on_change: Changed,
        client: Callable[[], Any],
        *,
        backoff: Backoff = Backoff(),
        watch_seconds: tuple[int, int] = WATCH_SECONDS,
        stop: threading.Event | None = None,
        lock: threading.Lock | None = None,
        health: SourceHealth | None = None,
    ) -> None:
        self.resource = resource
        self._health = health or SourceHealth()
        """Told of every list, connection, event and failure (``/readyz``, ``/metrics``, the log)."""
        self._lock = lock or threading.Lock()
        """Held while the items change and ``on_change`` runs; shared by the watches of one source."""
        self._on_change = on_change
        self._client = client
        self._backoff = backoff
        self._watch_seconds = watch_seconds
        self._stop = stop or threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None
        self.items: dict[Key, T] = {}
        self.problems: dict[Key, tuple[str, ...]] = {}
        self._prints: dict[Key, Hashable] = {}
        """Each held object's ``Resource.fingerprint`` (when the resource has one)."""
        self.resource_version: str | None = None
        self.synced = False
        """True once the first list has landed."""
        self.connection_problem: str | None = None
        self._events_seen = 0
        """Events received by the current watch; a watch that failed before any grows the backoff."""
        self._prelisted_at: float | None = None
        """When ``prelist`` listed (monotonic seconds), until ``start``."""

    def start(self) -> None:
        """Start the thread: it watches from a fresh ``prelist``, else lists first."""
        if self._thread is None:
            self._forget_stale_prelist()
            self._thread = threading.Thread(
                target=self._run, name=f"podpreset-watch-{self.resource.name}", daemon=True
            )
            self._thread.start()

    def prelist(self) -> None:
        """List now, in the calling thread (the arbiter, before the fork): ``start`` then watches
        from this list's resourceVersion instead of listing, if it is still fresh."""
        self.list()
        self._prelisted_at = time.monotonic()

    def prelist_is_stale(self) -> bool:
        listed = self._prelisted_at
        return listed is not None and time.monotonic() - listed > PRELIST_MAX_AGE

    def forget_prelist(self) -> None:
        """Back to never listed: no items, not synced, no resourceVersion (the thread will list)."""
        with self._lock:
            self.items, self.problems, self._prints = {}, {}, {}
            self.resource_version = None
            self.synced = False
            self.connection_problem = None
        self._prelisted_at = None
        self._health.forget_watch(self.resource.name)

    def _forget_stale_prelist(self) -> None:
        if self.prelist_is_stale():
            self.forget_prelist()
        self._prelisted_at = None

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            _interrupt(response)

    def join(self, timeout: float) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    def _log(self, level: int, message: str, *args: object) -> None:
        logger.log(level, "%s watch: " + message, self.resource.name, *args)

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self.list()
                    attempt = 0
                self._events_seen = 0
                self._watch()
                attempt = 0
            except WatchExpired as exc:
                self._health.watch_failed("expired", str(exc), self.resource.name)
                self._log(logging.INFO, "resourceVersion %s expired; listing again", self.resource_version)
                self.resource_version = None
            except Exception as exc:  # any failure of the API or the network: back off, retry
                if self._stop.is_set():
                    break
                if getattr(exc, "status", None) == 410:
                    self._health.watch_failed("expired", describe_error(exc), self.resource.name)
                    self._log(
                        logging.INFO, "resourceVersion %s gone (410); listing again", self.resource_version
                    )
                    self.resource_version = None
                    continue
                self.connection_problem = describe_error(exc)
                self._health.watch_failed(_error_kind(exc), self.connection_problem, self.resource.name)
                if self._events_seen:
                    attempt = 0  # the watch worked for a while: this is a fresh failure
                delay = self._backoff.delay(attempt)
                attempt += 1
                # The problem itself is logged by the health, when it begins and when it ends.
                self._log(logging.DEBUG, "retrying in %.1fs", delay)
                with self._lock:
                    self._on_change(self, ())
                self._stop.wait(delay)

    def list(self) -> None:
        """List every object, replace the items, publish."""
        listed = list_all(self._client(), self.resource)
        items, problems = listed.items, listed.problems
        with self._lock:
            self.items, self.problems, self._prints = items, problems, listed.prints
            self.resource_version = str(listed.last_page["metadata"]["resourceVersion"])
            self.connection_problem = None
            self.synced = True
            self._on_change(self, None)
        self._health.watch_listed(self.resource.name)
        self._log(
            logging.INFO,
            "listed %d (%d invalid) at resourceVersion %s",
            len(items),
            len(problems),
            self.resource_version,
        )

    def _watch(self) -> None:
        seconds = random.randint(*self._watch_seconds)
        response = self.resource.call(
            self._client(),
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=self.resource_version,
            timeout_seconds=seconds,
            _preload_content=False,
            _request_timeout=(CONNECT_TIMEOUT, seconds + READ_SLACK),
        )
        self._response = response
        self._health.watch_connected(self.resource.name)
        try:
            if self._stop.is_set():
                return
            for line in _lines(response):
                if self._stop.is_set():
                    return
                self.handle(json.loads(line))
        finally:
            self._response = None
            _close(response)

    def handle(self, event: Mapping[str, Any]) -> None:
        """Apply one watch event to the items and publish. Raises ``WatchExpired`` on 410."""
        kind = event.get("type")
        obj = event.get("object") or {}
        self._events_seen += 1
        self._health.watch_event(self.resource.name)
        if not isinstance(obj, Mapping):
            self._log(logging.WARNING, "ignoring a %r event whose object is not a mapping", kind)
            return
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise WatchExpired(obj.get("message", "resourceVersion expired"))
            raise WatchFailed(f"watch error {code}: {obj.get('message', obj)}")
        metadata = obj.get("metadata")
        version = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
        if version:
            self.resource_version = str(version)
        if kind == "BOOKMARK":
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            self._log(logging.WARNING, "ignoring event of type %r", kind)
            return
        key = object_key(obj)
        fingerprint = self.resource.fingerprint
        if fingerprint is not None:
            if kind == "DELETED":
                self._prints.pop(key, None)
            else:
                before, self._prints[key] = self._prints.get(key), fingerprint(obj)
                if kind == "MODIFIED" and before is not None and before == self._prints[key]:
                    return  # only its status (or resourceVersion) changed: keep what is served
        item, found = self.resource.parse(obj) if kind != "DELETED" else (None, ())
        with self._lock:
            if item is not None:
                self.items[key] = item
                self.problems.pop(key, None)
            else:
                self.items.pop(key, None)
                if found:
                    self.problems[key] = found
                else:
                    self.problems.pop(key, None)
            self.connection_problem = None
            self._on_change(self, (key[0],))
        self._log(
            logging.INFO,
            "%s %s (resourceVersion %s); %d in all",
            kind.lower(),
            "/".join(part for part in key if part),
            self.resource_version,
            len(self.items),
        )

    def problem_lines(self) -> tuple[str, ...]:
        lines = tuple(line for key in sorted(self.problems) for line in self.problems[key])
        if self.connection_problem:
            lines = (f"kubernetes: {self.resource.name}: {self.connection_problem}", *lines)
        return lines


class KubeSource:
    """PodPresets, ClusterPodPresets and Namespace labels of the cluster, each kept current by a ``Watch``."""

    def __init__(
        self,
        settings: _SourceSettings | None,
        *,
        api_client: Any = None,
        backoff: Backoff = Backoff(),
        watch_seconds: tuple[int, int] = WATCH_SECONDS,
        health: SourceHealth | None = None,
    ) -> None:
        self._settings = settings
        self.health = health or SourceHealth()
        """Where the watches report their state and problems (``/readyz``, ``/metrics``, the log)."""
        self._api_client = api_client
        self._client_lock = threading.Lock()
        self._snapshot = Snapshot()
        self._stop = threading.Event()
        options: dict[str, Any] = {
            "backoff": backoff,
            "watch_seconds": watch_seconds,
            "stop": self._stop,
            "lock": threading.Lock(),
            "health": self.health,
        }
        max_bytes = settings.max_preset_bytes if settings is not None else DEFAULT_MAX_PRESET_BYTES
        presets, cluster_presets = preset_resources(max_bytes)
        self.presets = Watch(presets, self._changed, self._client, **options)
        self.cluster_presets = Watch(cluster_presets, self._changed, self._client, **options)
        self.namespaces = Watch(NAMESPACES, self._changed, self._client, **options)
        self.watches: tuple[Watch[Any], ...] = (self.presets, self.cluster_presets, self.namespaces)

    # PresetSource
    def start(self) -> None:
        if any(watch.prelist_is_stale() for watch in self.watches):
            self._forget_prelist()
        for watch in self.watches:
            watch.start()

    def stop(self) -> None:
        for watch in self.watches:
            watch.stop()
        deadline = time.monotonic() + STOP_JOIN_SECONDS
        for watch in self.watches:
            watch.join(timeout=max(0.0, deadline - time.monotonic()))

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # Listing before the fork
    def list_now(self) -> bool:
        """List all three resources once, in the calling thread, publish the (synced) snapshot,
        then drop the connection. ``serve`` calls it in the arbiter before the fork: every worker
        starts from these lists (the presets and their index are shared pages, not one copy per
        worker) and watches from their resourceVersions. One attempt each; when any fails, all
        three are forgotten, one warning is logged and False returned: each worker then lists for
        itself, as it would have.
        """
        try:
            for watch in self.watches:
                watch.prelist()
        except Exception as exc:
            logger.warning(
                "kubernetes watch: listing before the fork failed (%s); each worker lists for itself",
                describe_error(exc),
            )
            self._forget_prelist()
            return False
        finally:
            with self._client_lock:
                api_client, self._api_client = self._api_client, None
            if api_client is not None:
                with contextlib.suppress(Exception):
                    api_client.close()
        return True

    def _forget_prelist(self) -> None:
        for watch in self.watches:
            watch.forget_prelist()
        self._snapshot = Snapshot()
        self.health.forget("invalid")

    def _client(self) -> Any:
        with self._client_lock:
            if self._api_client is None:
                self._api_client = make_api_client(self._settings)
            return self._api_client

    def _changed(self, watch: Watch[Any], changed: tuple[str, ...] | None) -> None:
        """Replace the snapshot with one assignment; readers never see a partial update.

        A preset event rebuilds only its namespace's part of the index (or the cluster presets'
        part); a (re)list of presets rebuilds the index and then keeps the presets out of the
        cyclic collector's walks, as the file source does. A namespace event
        or list copies the labels; a failure (``changed == ()``) only updates the problems.
        Runs with the watches' shared lock held: no watch changes its items meanwhile.
        """
        previous = self._snapshot
        synced = all(w.synced for w in self.watches)
        index, labels = previous.index, previous.namespaces
        if changed == ():
            pass  # a failure: only the problems change
        elif watch is self.namespaces:
            labels = MappingProxyType({name: value for (_, name), value in watch.items.items()})
        elif not previous.synced or (changed is None and watch is self.presets):
            index = PresetIndex.build([*self.presets.items.values(), *self.cluster_presets.items.values()])
        elif watch is self.cluster_presets:
            index = index.with_cluster(watch.items.values())
        else:
            for namespace in changed or ():
                group = (p for (ns, _), p in watch.items.items() if ns == namespace)
                index = index.with_namespace(namespace, group)
        if synced and (changed is None or not previous.synced):
            gc.freeze()
        if changed != ():
            # The one report of an object skipped as invalid: /readyz, the metric and one log
            # line when it starts (and one when it ends), not one per list or event.
            self.health.set_problems(
                "invalid",
                invalid_problems(
                    (
                        *self.presets.problems.values(),
                        *self.cluster_presets.problems.values(),
                        *self.namespaces.problems.values(),
                    )
                ),
            )
        self._snapshot = Snapshot(
            index=index,
            namespaces=labels,
            synced=synced,
            last_sync=time.time() if synced and changed != () else previous.last_sync,
            problems=tuple(line for w in self.watches for line in w.problem_lines()),
        )


def _lines(response: Any) -> Iterator[str]:
    """Newline-delimited JSON watch events from a streamed urllib3 response."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=True):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line.decode("utf-8", errors="replace")
    if buffer.strip():
        yield buffer.decode("utf-8", errors="replace")


def _interrupt(response: Any) -> None:
    """Wake the thread blocked reading a watch: shut its socket down, and let that thread close it.

    Closing the response from here instead waits for the lock of the buffered reader, which the
    blocked read holds until the API server sends something (minutes on a quiet cluster): that
    kept every worker alive after SIGTERM until gunicorn's graceful timeout killed it.
    """
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def invalid_problems(problems: Iterable[tuple[str, ...]]) -> dict[str, str]:
    """Skipped presets as ``SourceHealth`` problems: ``podpreset ns/name`` (the start of each
    problem line, up to its first ``: ``) → what is wrong with it."""
    found: dict[str, list[str]] = {}
    for lines in problems:
        for line in lines:
            source, _, error = line.partition(": ")
            found.setdefault(source, []).append(error)
    return {source: "; ".join(errors) for source, errors in found.items()}


def _error_kind(exc: BaseException) -> str:
    """The ``SourceHealth`` kind of a watch failure."""
    if isinstance(exc, WatchFailed):
        return "watch"
    if getattr(exc, "status", None) is not None and not isinstance(exc, OSError):
        return "api"
    module = type(exc).__module__
    if isinstance(exc, OSError) or module.startswith(("urllib3", "ssl", "http.client")):
        return "network"
    return "other"


def _close(response: Any) -> None:
    # Closing a connection that may already be gone.
    for method in ("close", "release_conn"):
        with contextlib.suppress(Exception):
            getattr(response, method)()


def describe_error(exc: BaseException) -> str:
    """One line for a failed request: the API's status, reason and message, or the exception."""
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status is not None and not isinstance(exc, OSError):
        text = f"API error {status} {reason or ''}".strip()
        try:
            message = json.loads(getattr(exc, "body", None) or "{}").get("message")
        except (ValueError, AttributeError):
            message = None
        return f"{text}: {message}" if message else text
    return f"{type(exc).__name__}: {exc}"
