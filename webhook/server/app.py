"""The Flask application: ``create_app(settings, source)`` and its four endpoints.

``serve`` exposes them on two listeners: the TLS port serves ``POST /mutate`` only
(``mutate_only``), the plain-HTTP health port everything else (``health_only``): probes and
scraping never need the serving certificate or a client certificate, and a client of the TLS
port cannot read ``/metrics`` or ``/readyz`` (which name presets).

``POST /mutate`` is a thin shell around ``presets.admission.admit``, the function ``podpreset
review`` calls too: decode the body, admit, encode with ``encode_review``. HTTP statuses map
named errors only: a body that is not JSON or not an AdmissionReview is a 400, a body over
``max_body_bytes`` a 413 (rejected from its Content-Length, or when a streamed body passes the
limit, never read whole), a body that would take the bytes this worker is decoding at once past
``max_decoding_bytes`` a 429 (``DecodeBudget``; a review costs about 20 times its size in memory
while it is decoded and admitted, so the bound is what keeps a worker's memory bounded), another
content type than ``application/json`` a 415, another method a 405. Anything else raised is a
bug: Flask logs it and answers 500, and the webhook's ``failurePolicy`` decides what the API
server does; a pod is never admitted by accident.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from presets.admission import BadReview, Decision, admit, decode_review, encode_review
from presets.limits import MAX_DEPTH
from presets.model import Protected, VolumeTypes
from webhook.observe.logqueue import log_values
from webhook.observe.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from webhook.observe.metrics import Metrics
from webhook.settings import Settings
from webhook.sources.snapshot import PresetSource, Snapshot

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)
JSON = "application/json"
MUTATE_PATH = "/mutate"

DecisionListener = Callable[[Decision], None]


class BadBody(ValueError):
    """The request body is not JSON (or nests too deeply to decode)."""


class Busy(Exception):
    """This worker is already decoding as many body bytes as it may; the request can be retried."""


class DecodeBudget:
    """The request-body bytes one worker is reading, decoding and admitting at once, bounded.

    Each request reserves its Content-Length (the body limit when it is chunked) before the body
    is read and gives it back once its answer is encoded; a reservation that would pass ``limit``
    raises ``Busy`` instead of waiting, so that memory, not latency, is what the bound trades.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def reserve(self, size: int) -> _Reservation:
        """``with budget.reserve(size):`` holds ``size`` bytes of the budget for the block."""
        with self._lock:
            if self._used + size > self.limit:
                raise Busy(
                    f"body: {size} bytes would take the bodies this worker decodes at once past "
                    f"{self.limit} bytes (--max-decoding-bytes); retry"
                )
            self._used += size
        return _Reservation(self, size)

    def release(self, size: int) -> None:
        with self._lock:
            self._used -= size


class _Reservation:
    """Bytes reserved from a ``DecodeBudget``, given back when the ``with`` block ends (a plain
    context manager: on every request, a generator-based one costs about three times as much)."""

    __slots__ = ("_budget", "_size")

    def __init__(self, budget: DecodeBudget, size: int) -> None:
        self._budget = budget
        self._size = size

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        self._budget.release(self._size)


@dataclass(frozen=True, slots=True)
class AppState:
    """What the views share, kept on ``app.extensions["podpreset"]`` for the server and tests."""

    settings: Settings
    source: PresetSource
    metrics: Metrics
    stopping: threading.Event
    """Set when shutdown began: ``/readyz`` answers 503 from then on."""
    budget: DecodeBudget


def create_app(
    settings: Settings,
    source: PresetSource,
    *,
    stopping: threading.Event | None = None,
    on_decision: DecisionListener | None = None,
) -> Flask:
    """The webhook app. ``on_decision`` (e.g. recording Events) is called unless the review is a dry run."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    state = AppState(
        settings, source, Metrics(), stopping or threading.Event(), DecodeBudget(settings.max_decoding_bytes)
    )
    protected = Protected.parse(settings.protected)
    volume_types = VolumeTypes.parse(settings.namespaced_volume_types)
    app.extensions["podpreset"] = state

    @app.post(MUTATE_PATH)
    def mutate() -> Response:
        started = time.perf_counter()
        if request.mimetype != JSON:
            return _error(415, f"Content-Type: expected {JSON}, got {request.content_type or 'none'!r}")
        size = request.content_length
        if size is not None and size > settings.max_body_bytes:
            raise RequestEntityTooLarge()
        with state.budget.reserve(settings.max_body_bytes if size is None else size):
            review = _decode(_read_body(settings.max_body_bytes))
            try:
                snapshot = source.snapshot()
                decision = admit(
                    review,
                    snapshot.index,
                    namespaces=snapshot.namespaces,
                    protected=protected,
                    namespaced_volume_types=volume_types,
                )
            except RecursionError:
                raise BadBody("the AdmissionReview nests too deeply") from None
            del review
            body = encode_review(decision.response)
        _log_decision(decision)
        if on_decision is not None and not decision.request.dry_run:
            _notify(on_decision, decision)
        state.metrics.record_decision(decision, time.perf_counter() - started)
        return Response(body, status=200, mimetype=JSON)

    @app.get("/healthz")
    def healthz() -> Response:
        return _json(200, {"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        # Ready while the last good presets serve, problems or not; the body names each problem.
        if state.stopping.is_set():
            return _json(503, {"status": "stopping"})
        snapshot = source.snapshot()
        problems = _problems(source, snapshot)
        if not snapshot.synced:
            return _json(503, {"status": "presets not loaded yet", "problems": problems})
        status = "ok" if not problems else "serving the last good presets; see problems"
        return _json(200, {"status": status, "presets": len(snapshot.index), "problems": problems})

    @app.get("/metrics")
    def metrics() -> Response:
        state.metrics.observe_snapshot(source.snapshot(), source.health)
        return Response(state.metrics.exposition(), status=200, content_type=METRICS_CONTENT_TYPE)

    @app.errorhandler(BadReview)
    @app.errorhandler(BadBody)
    def bad_request(error: ValueError) -> Response:
        return _error(400, str(error))

    @app.errorhandler(Busy)
    def busy(error: Busy) -> Response:
        _discard_body(settings.max_body_bytes)
        response = _error(429, str(error))
        response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(InternalServerError)
    def internal_error(error: InternalServerError) -> Response:
        # Flask has already logged the original exception with its traceback.
        return _error(500, "internal error; see the webhook's log")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        message = error.description or error.name
        if error.code == 413:
            message = f"body: larger than the limit of {settings.max_body_bytes} bytes"
        elif error.code == 405:
            message = f"{request.method} {request.path}: method not allowed"
        response = _error(error.code or 500, message)
        valid_methods = getattr(error, "valid_methods", None)
        if valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    def _error(status: int, message: str) -> Response:
        if request.path == MUTATE_PATH:
            state.metrics.record_error()
        logger.info(
            "rejected %s %s: %d %s",
            request.method,
            request.path,
            status,
            message,
            extra={"fields": {"status": status, "path": request.path, "error": message}},
        )
        return _json(status, {"error": message, "code": status})

    return app


class PathFilter:
    """A WSGI app serving only some of an app's paths; any other path is a JSON 404 naming the
    listener that serves it. ``flask`` is the app underneath (``serve``'s hooks read its state)."""

    def __init__(self, flask: Flask, *, serves: Callable[[str], bool], elsewhere: str) -> None:
        self.flask = flask
        self._serves = serves
        self._elsewhere = elsewhere

    @property
    def extensions(self) -> dict[str, object]:
        """The Flask app's extensions (its ``AppState`` among them)."""
        return self.flask.extensions

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if self._serves(path):
            app: WSGIApplication = self.flask
            return app(environ, start_response)
        message = f"{environ.get('REQUEST_METHOD', 'GET')} {path[:200]}: not served here; {self._elsewhere}"
        body = json.dumps({"error": message, "code": 404}, separators=(",", ":")).encode()
        start_response("404 NOT FOUND", [("Content-Type", JSON), ("Content-Length", str(len(body)))])
        return [body]


def mutate_only(app: Flask) -> PathFilter:
    """The TLS listener's view of ``app``: ``/mutate`` and nothing else."""
    return PathFilter(
        app,
        serves=lambda path: path == MUTATE_PATH,
        elsewhere="this port serves only POST /mutate; health and metrics are on the health port",
    )


def health_only(app: Flask) -> PathFilter:
    """The plain-HTTP health listener's view of ``app``: everything but ``/mutate``."""
    return PathFilter(
        app,
        serves=lambda path: path != MUTATE_PATH,
        elsewhere="/mutate is served only on the TLS port",
    )


def _read_body(limit: int) -> bytes:
    """The body, refused with a 413 once it passes ``limit`` bytes, chunked or not."""
    if request.content_length is not None:
        return request.get_data(cache=False)  # Flask refuses a Content-Length over the limit
    # Chunked: werkzeug would silently cut the body at the limit, so read one byte further.
    body: bytes = request.environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


def _discard_body(limit: int) -> None:
    """Read the body in small pieces and drop them, so that the client, still sending, gets the
    answer rather than a connection reset; at most ``limit`` bytes, in constant memory."""
    stream = request.environ["wsgi.input"]
    left = limit if request.content_length is None else min(request.content_length, limit)
    while left > 0:
        piece = stream.read(min(left, 65536))
        if not piece:
            return
        left -= len(piece)


def _decode(body: bytes) -> object:
    try:
        return decode_review(body)
    except RecursionError:
        raise BadBody(f"body: JSON nests deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError as exc:
        raise BadBody(f"body: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise BadBody(
            f"body: invalid JSON at {where}: {exc.msg}" if body.strip() else "body: empty"
        ) from None


def _problems(source: PresetSource, snapshot: Snapshot) -> list[dict[str, str | None]]:
    """Each problem as ``{source, error, since}``: from the source's health when it has one."""
    health = source.health
    if health is not None:
        return [dict(problem.as_json()) for problem in health.problems()]
    return [{"source": "presets", "error": line, "since": None} for line in snapshot.problems]


def _json(status: int, content: object) -> Response:
    return Response(json.dumps(content, separators=(",", ":")), status=status, mimetype=JSON)


def _log_decision(decision: Decision) -> None:
    req, outcome = decision.request, decision.outcome
    action = outcome.action if outcome is not None else "skipped"
    applied = list(outcome.applied) if outcome is not None else []
    conflicts = list(decision.warnings)
    uid, namespace, pod, operation, dry_run = req.uid, req.namespace, req.pod_name, req.operation, req.dry_run
    # The writer makes and formats this record (log_values): nothing in it changes after this.
    log_values(
        logger,
        logging.INFO,
        "admission uid=%s namespace=%s pod=%s operation=%s action=%s applied=%s conflicts=%s dry_run=%s",
        (uid, namespace, pod, operation, action, ",".join(applied) or "-", len(conflicts), dry_run),
        {
            "uid": uid,
            "namespace": namespace,
            "pod": pod,
            "operation": operation,
            "action": action,
            "applied": applied,
            "conflicts": conflicts,
            "dry_run": dry_run,
        },
    )
    for line in conflicts:
        logger.warning(
            "admission uid=%s conflict: %s",
            uid,
            line,
            extra={"fields": {"uid": uid, "namespace": namespace, "conflict": line}},
        )


def _notify(listener: DecisionListener, decision: Decision) -> None:
    # Side effects such as Events are best effort: the decision is already made and correct.
    try:
        listener(decision)
    except Exception:
        logger.exception("recording the decision for uid=%s failed", decision.request.uid)
