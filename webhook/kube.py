"""The Kubernetes preset source: list, then watch, ``podpreset.dev/v1`` PodPresets in all namespaces.

``KubeSource(settings)`` owns one daemon thread per gunicorn worker, started by ``start()`` after
the fork. The thread lists every PodPreset, publishes a ``Snapshot`` (``synced`` from then on),
then watches from the list's resourceVersion with bookmarks, publishing a new snapshot by one
assignment per change. A watch that ends (the server's timeout, a dropped connection, an API
server restart) resumes from the last resourceVersion seen; an expired one (410 Gone) relists.
Failures back off exponentially with jitter, capped. The last good snapshot keeps serving in the
meantime. An object that fails validation is skipped, logged and listed in
``Snapshot.problems``; it never stops the source.

Lists are read in pages (``LIST_PAGE``). ``serve`` may list once before the fork
(``list_now``): a worker's thread then starts by watching from that list.

Authentication: in-cluster configuration by default, ``settings.kubeconfig`` for development.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from presets.admission import PresetIndex
from presets.model import InvalidPreset, PodPreset, parse_preset
from webhook.sources import Snapshot

logger = logging.getLogger(__name__)

GROUP = "podpreset.dev"
VERSION = "v1"
PLURAL = "podpresets"
CONNECT_TIMEOUT = 10.0
WATCH_SECONDS = (240, 360)
"""The server ends each watch after a random time in this range; we then resume it."""
READ_SLACK = 90.0
"""A watch that sends nothing, not even a bookmark, for this long past its timeout is dead."""
LIST_PAGE = 500
"""Presets per list request. The pages of one list are one consistent snapshot (an expired
continue token is a 410: list again). Paging bounds the JSON held at once: 10,000 presets listed in
one answer left 58 MiB resident after parsing, in pages of 500 36 MiB (the rest of the big answer's
memory stays fragmented between the presets)."""
PRELIST_MAX_AGE = 30.0
"""A worker starts from the list ``serve`` made before the fork only if it is this fresh (seconds);
a worker forked later (gunicorn replacing one that died) lists for itself."""

Key = tuple[str, str]


class _Settings(Protocol):
    @property
    def kubeconfig(self) -> str | None: ...


class WatchExpired(Exception):
    """The resourceVersion to resume from is gone (HTTP 410): list again."""


class WatchFailed(Exception):
    """The API server answered a watch with an error other than 410."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter.

    Attempt n waits a random time in [d/2, d], where d = min(cap, base * 2**n).
    """

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 30)))
        return (rng or random).uniform(ceiling / 2, ceiling)


def make_api_client(settings: _Settings | None) -> Any:
    """A Kubernetes ``ApiClient``: from ``settings.kubeconfig`` when set, else in-cluster config."""
    # Imported here: the CLI's fast paths (apply, review, validate) never load the client.
    from kubernetes import client, config

    kubeconfig = getattr(settings, "kubeconfig", None)
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def preset_key(obj: Mapping[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def parse_object(obj: Mapping[str, Any]) -> tuple[PodPreset | None, tuple[str, ...]]:
    """One PodPreset object from the API: the preset, or None and its problems (one line each)."""
    namespace, name = preset_key(obj)
    where = f"podpreset {namespace}/{name}"
    try:
        return parse_preset(dict(obj), source=where, document=1, default_namespace=namespace), ()
    except InvalidPreset as exc:
        return None, tuple(
            f"{where}: {p.field}: {p.message}" if p.field else f"{where}: {p.message}" for p in exc.problems
        )


class KubeSource:
    """PodPresets of the whole cluster, kept current by list+watch in one daemon thread."""

    def __init__(
        self,
        settings: _Settings | None,
        *,
        api_client: Any = None,
        backoff: Backoff = Backoff(),
        watch_seconds: tuple[int, int] = WATCH_SECONDS,
    ) -> None:
        self._settings = settings
        self._api_client = api_client
        self._backoff = backoff
        self._watch_seconds = watch_seconds
        self._snapshot = Snapshot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None
        self._presets: dict[Key, PodPreset] = {}
        self._problems: dict[Key, tuple[str, ...]] = {}
        self._resource_version: str | None = None
        self._connection_problem: str | None = None
        self._events_seen = 0
        """Events received by the current watch; a watch that failed before any grows the backoff."""
        self._prelisted_at: float | None = None
        """When ``list_now`` listed (monotonic seconds), until ``start``."""

    # PresetSource
    def start(self) -> None:
        if self._thread is not None:
            return
        self._forget_stale_prelist()
        self._thread = threading.Thread(target=self._run, name="podpreset-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            _close(response)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # Listing before the fork
    def list_now(self) -> bool:
        """List once, in the calling thread, then drop the connection. ``serve`` calls it in the
        arbiter before the fork: every worker then starts from this list (its presets and index
        are shared pages, not one copy per worker) and watches from its resourceVersion. Returns
        False, logged, when the list fails: each worker then lists for itself, as it would have.
        """
        try:
            self._api_client = make_api_client(self._settings)
            self._list()
        except Exception as exc:
            logger.warning("podpreset watch: listing before the workers start failed (%s)", _describe(exc))
            self._forget_prelist()
            return False
        finally:
            client, self._api_client = self._api_client, None
            with contextlib.suppress(Exception):
                client.close()
        self._prelisted_at = time.monotonic()
        return True

    def _forget_stale_prelist(self) -> None:
        listed = self._prelisted_at
        if listed is not None and time.monotonic() - listed > PRELIST_MAX_AGE:
            self._forget_prelist()
        self._prelisted_at = None

    def _forget_prelist(self) -> None:
        self._presets, self._problems, self._resource_version = {}, {}, None
        self._connection_problem = None
        self._snapshot = Snapshot()

    # The thread
    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                if self._api_client is None:
                    self._api_client = make_api_client(self._settings)
                if self._resource_version is None:
                    self._list()
                    attempt = 0
                self._events_seen = 0
                self._watch()
                attempt = 0
            except WatchExpired:
                logger.info(
                    "podpreset watch: resourceVersion %s expired; listing again", self._resource_version
                )
                self._resource_version = None
                continue
            except Exception as exc:  # any failure of the API or the network: back off, retry
                if self._stop.is_set():
                    break
                if getattr(exc, "status", None) == 410:
                    logger.info(
                        "podpreset watch: resourceVersion %s gone (410); listing again",
                        self._resource_version,
                    )
                    self._resource_version = None
                    continue
                self._connection_problem = _describe(exc)
                if self._events_seen:
                    attempt = 0  # the watch worked for a while: this is a fresh failure
                delay = self._backoff.delay(attempt)
                attempt += 1
                logger.warning("podpreset watch: %s; retrying in %.1fs", self._connection_problem, delay)
                self._publish()
                self._stop.wait(delay)

    def _api(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self._api_client)

    def _list(self) -> None:
        presets: dict[Key, PodPreset] = {}
        problems: dict[Key, tuple[str, ...]] = {}
        page: dict[str, Any] = {}
        while True:  # in pages: see LIST_PAGE
            listing = self._api().list_cluster_custom_object(
                GROUP, VERSION, PLURAL, limit=LIST_PAGE, **page, _request_timeout=(CONNECT_TIMEOUT, 60)
            )
            for obj in listing.get("items") or ():
                key = preset_key(obj)
                preset, found = parse_object(obj)
                if preset is not None:
                    presets[key] = preset
                else:
                    problems[key] = found
                    _log_problems(found)
            token = (listing.get("metadata") or {}).get("continue")
            if not token:
                break
            page = {"_continue": token}
        self._presets, self._problems = presets, problems
        self._resource_version = str(listing["metadata"]["resourceVersion"])
        self._connection_problem = None
        self._publish(synced=True)
        logger.info(
            "podpreset watch: listed %d presets (%d invalid) at resourceVersion %s",
            len(presets),
            len(problems),
            self._resource_version,
        )

    def _watch(self) -> None:
        seconds = random.randint(*self._watch_seconds)
        response = self._api().list_cluster_custom_object(
            GROUP,
            VERSION,
            PLURAL,
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=self._resource_version,
            timeout_seconds=seconds,
            _preload_content=False,
            _request_timeout=(CONNECT_TIMEOUT, seconds + READ_SLACK),
        )
        self._response = response
        try:
            if self._stop.is_set():
                return
            for line in _lines(response):
                if self._stop.is_set():
                    return
                self._handle(json.loads(line))
        finally:
            self._response = None
            _close(response)

    def _handle(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        self._events_seen += 1
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise WatchExpired(obj.get("message", "resourceVersion expired"))
            raise WatchFailed(f"watch error {code}: {obj.get('message', obj)}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self._resource_version = str(version)
        if kind == "BOOKMARK":
            return
        key = preset_key(obj)
        if kind == "DELETED":
            self._presets.pop(key, None)
            self._problems.pop(key, None)
        elif kind in ("ADDED", "MODIFIED"):
            preset, found = parse_object(obj)
            if preset is not None:
                self._presets[key] = preset
                self._problems.pop(key, None)
            else:
                self._presets.pop(key, None)
                self._problems[key] = found
                _log_problems(found)
        else:
            logger.warning("podpreset watch: ignoring event of type %r", kind)
            return
        self._connection_problem = None
        self._publish(synced=True, namespace=key[0])
        logger.info(
            "podpreset watch: %s %s/%s (resourceVersion %s); %d presets",
            kind.lower(),
            key[0],
            key[1],
            self._resource_version,
            len(self._presets),
        )

    def _publish(self, *, synced: bool | None = None, namespace: str | None = None) -> None:
        """Replace the snapshot with one assignment; readers never see a partial update.

        A watch event rebuilds only its ``namespace``; a (re)list rebuilds everything and then
        keeps the presets out of the cyclic collector's walks, as the file source does.
        """
        previous = self._snapshot
        problems = tuple(line for key in sorted(self._problems) for line in self._problems[key])
        if self._connection_problem:
            problems = (f"kubernetes: {self._connection_problem}", *problems)
        now_synced = previous.synced if synced is None else (previous.synced or synced)
        index = previous.index
        if synced and namespace is not None and previous.synced:
            group = (p for (ns, _), p in self._presets.items() if ns == namespace)
            index = previous.index.with_namespace(namespace, group)
        elif synced:
            index = PresetIndex.build(self._presets.values())
            gc.freeze()
        self._snapshot = Snapshot(
            index=index,
            synced=now_synced,
            last_sync=time.time() if synced else previous.last_sync,
            problems=problems,
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


def _close(response: Any) -> None:
    # Closing a connection that may already be gone.
    for method in ("close", "release_conn"):
        with contextlib.suppress(Exception):
            getattr(response, method)()


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status is not None and not isinstance(exc, OSError):
        return f"API error {status} {reason or ''}".strip()
    return f"{type(exc).__name__}: {exc}"


def _log_problems(problems: tuple[str, ...]) -> None:
    for line in problems:
        logger.warning("podpreset watch: skipping invalid preset: %s", line)
