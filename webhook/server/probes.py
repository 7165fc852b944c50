"""The plain-HTTP listener of probes and scraping: ``/healthz``, ``/readyz`` and ``/metrics``.

The arbiter opens the listening socket before the fork (``open_health_socket``: a port in use
stops ``serve`` at once with a clear message); each worker then serves it from a thread
(``HealthServer``), so that ``/readyz`` answers from a worker that is actually serving, and the
kernel hands each new connection to whichever worker accepts it first. ``/metrics`` aggregates
every worker's values whichever answers (``webhook.observe.metrics``). Each connection gets a thread of
its own and ``timeout`` seconds for each read and write: the port is meant for the kubelet and a
scraper (the NetworkPolicy lets nothing else in), and one that stalls costs a thread for that
long, never the admission threads.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import TYPE_CHECKING

from werkzeug.serving import WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

logger = logging.getLogger(__name__)


class HealthListenerError(Exception):
    """The health listener's address cannot be bound; the message says which and why."""


def open_health_socket(address: str) -> socket.socket:
    """A listening, non-blocking TCP socket on ``HOST:PORT``. Raises ``HealthListenerError``."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise HealthListenerError(f"--health-bind {address}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(128)
        sock.setblocking(False)  # workers share it: one that loses the race to accept moves on
    except OSError as exc:
        sock.close()
        raise HealthListenerError(f"--health-bind {address}: {exc.strerror or exc}") from None
    return sock


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's handler without a log line per probe."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class HealthServer:
    """One worker's server of ``app`` on the shared health socket, in a daemon thread."""

    def __init__(self, sock: socket.socket, app: WSGIApplication, *, timeout: float) -> None:
        handler = type("HealthHandler", (_QuietHandler,), {"timeout": timeout})
        host, port = sock.getsockname()[:2]
        self._server = make_server(host, port, app, threaded=True, request_handler=handler, fd=sock.fileno())
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="podpreset-health",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting (connections being answered finish on their own threads)."""
        self._server.shutdown()
        self._server.server_close()
