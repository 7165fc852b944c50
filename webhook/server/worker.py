"""The gunicorn worker of ``serve``: gthread, with every request head read before a thread is used.

gunicorn's gthread worker hands a new connection to a request thread as soon as its first byte
arrives, and that thread then does the TLS handshake and reads the request head with no timeout:
a client that sends one byte and then nothing holds the thread for good, and a few dozen such
sockets (workers times threads) stop a replica's admissions.

``WebhookWorker`` moves both into the worker's event loop instead. A new connection, and a
kept-alive one that becomes readable again, stays on the poller, non-blocking, until its TLS
handshake is done and a whole request head (up to the blank line) has arrived; only then does it
go to a thread, with the head already buffered in gunicorn's parser. A connection that has not
got that far ``handshake_timeout`` seconds after it was accepted (or became readable) is closed.
Slow or silent sockets then cost a file descriptor and a few bytes each, never a thread, and
an honest request waits for nothing but a free thread. In the thread, every read of the body and
every write of the response is bounded by the same timeout (a socket timeout per operation).

It builds on the internals of gunicorn 27's gthread worker (``TConn``, ``enqueue_req``,
``murder_pending``, ``_keepalive_after``), hence the pin of gunicorn to 27.x in pyproject.toml;
tests/server/test_hardening.py fails when a gunicorn upgrade changes them under it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn.sock import ssl_context
from gunicorn.workers.gthread import TConn, ThreadWorker

logger = logging.getLogger(__name__)

DEFAULT_HANDSHAKE_TIMEOUT = 5.0
MAX_HEAD_BYTES = 64 * 1024
"""Past this many bytes without the end of a head, the thread's parser takes over and refuses it
(gunicorn's own limits on the request line and header fields are far below it)."""
_HEAD_END = b"\r\n\r\n"


@dataclass(eq=False, slots=True)
class _Reading:
    """A connection on the poller until its handshake is done and its request head is in."""

    conn: Any  # gunicorn's TConn
    deadline: float
    handshaking: bool
    buffer: bytearray = field(default_factory=bytearray)
    registered: bool = False
    done: bool = False


class WebhookWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker, with the TLS handshake and the head read on the event loop."""

    def init_process(self) -> None:
        self.head_timeout = float(getattr(self.app, "handshake_timeout", DEFAULT_HANDSHAKE_TIMEOUT))
        self.reading: deque[_Reading] = deque()
        super().init_process()

    def accept(self, listener: socket.socket) -> None:
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client, address, listener.getsockname())  # sets it non-blocking
        if self.cfg.is_ssl:
            try:
                conn.sock = ssl_context(self.cfg).wrap_socket(
                    client,
                    server_side=True,
                    do_handshake_on_connect=False,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                )
            except (OSError, ssl.SSLError) as exc:
                logger.debug("could not set up TLS for a connection from %s: %s", address, exc)
                self.nr_conns -= 1
                conn.close()
                return
        self._read_head(conn, handshaking=self.cfg.is_ssl)

    def on_client_socket_readable(self, conn: Any, client: object) -> None:
        """A kept-alive connection has data (or was closed): read its next head here too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._read_head(conn, handshaking=False)

    def _read_head(self, conn: Any, *, handshaking: bool) -> None:
        reading = _Reading(conn, time.monotonic() + self.head_timeout, handshaking)
        self.reading.append(reading)
        self._advance(reading)

    def _advance(self, reading: _Reading, _fileobj: object = None) -> None:
        """Take the connection as far as it goes without blocking; called again by the poller."""
        if reading.done:
            return
        sock = reading.conn.sock
        if reading.registered:
            self.poller.unregister(sock)
            reading.registered = False
        try:
            if reading.handshaking:
                sock.do_handshake()
                reading.handshaking = False
            while _HEAD_END not in reading.buffer and len(reading.buffer) <= MAX_HEAD_BYTES:
                chunk = sock.recv(16384)
                if not chunk:
                    self._close(reading)  # closed before a whole head: nothing to answer
                    return
                reading.buffer += chunk
        except ssl.SSLWantWriteError:
            self._wait(reading, selectors.EVENT_WRITE)
            return
        except (ssl.SSLWantReadError, BlockingIOError):
            self._wait(reading, selectors.EVENT_READ)
            return
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            self._close(reading)  # the client closed the connection
            return
        except ssl.SSLError as exc:
            # A client that does not speak our TLS: an old version, no or an untrusted client
            # certificate (--client-ca), or not TLS at all.
            logger.info("TLS handshake with %s failed: %s", _peer(reading.conn), exc.reason or exc)
            self._close(reading)
            return
        except OSError as exc:
            logger.debug("connection from %s lost before its request head: %s", _peer(reading.conn), exc)
            self._close(reading)
            return
        self._dispatch(reading)

    def _wait(self, reading: _Reading, events: int) -> None:
        self.poller.register(reading.conn.sock, events, partial(self._advance, reading))
        reading.registered = True

    def _dispatch(self, reading: _Reading) -> None:
        """The head is in: hand the connection, its bytes buffered in the parser, to a thread."""
        reading.done = True
        conn = reading.conn
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(reading.buffer))
        conn.initialized = True
        conn.data_ready = True
        self.enqueue_req(conn)

    def _close(self, reading: _Reading) -> None:
        reading.done = True
        if reading.registered:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(reading.conn.sock)
            reading.registered = False
        self.nr_conns -= 1
        reading.conn.close()

    def murder_pending(self) -> None:
        """gunicorn's expiry of deferred connections, then of heads not in by their deadline."""
        super().murder_pending()
        now = time.monotonic()
        # One timeout for all: the deque is in deadline order (finished entries leave from the left).
        while self.reading and (self.reading[0].done or self.reading[0].deadline <= now):
            reading = self.reading.popleft()
            if not reading.done:
                logger.debug(
                    "closed a connection from %s: no %s within %s s",
                    _peer(reading.conn),
                    "TLS handshake" if reading.handshaking else "complete request head",
                    self.head_timeout,
                )
                self._close(reading)

    def handle(self, conn: Any) -> bool:
        """Serve one request whose head is buffered. Runs in a request thread."""
        req = None
        try:
            conn.sock.settimeout(self.head_timeout)  # each read of the body, each write
            req = next(conn.parser)
            if not req:
                return False
            return bool(self._keepalive_after(conn, self.handle_request(req, conn)))
        except TimeoutError:
            logger.debug("connection from %s: timed out reading the body or writing", _peer(conn))
        except http.errors.NoMoreData:
            logger.debug("connection from %s closed before its request ended", _peer(conn))
        except StopIteration:
            pass
        except ssl.SSLError as exc:
            if exc.args[0] != ssl.SSL_ERROR_EOF:
                self.handle_error(req, conn.sock, conn.client, exc)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                logger.exception("socket error serving a request")
        except Exception as exc:
            self.handle_error(req, conn.sock, conn.client, exc)
        return False


def _peer(conn: Any) -> str:
    client = getattr(conn, "client", None)
    if isinstance(client, tuple) and len(client) >= 2:
        return f"{client[0]}:{client[1]}"
    return str(client)
