"""The serving certificate: an ``ssl.SSLContext`` rebuilt when the certificate or key files change.

gunicorn asks its ``ssl_context`` hook for a context on every new connection; ``CertificateReloader``
answers with the current one and, at most once per ``interval``, checks the files. Both ways a
certificate gets replaced are seen: a rewrite in place changes the file's mtime and size, and the
atomic ``..data`` symlink swap Kubernetes does for mounted Secrets changes the inode the path
resolves to (``os.stat`` follows symlinks). A changed pair is loaded into a new context and
swapped in with one assignment; until it loads cleanly (a half-written file, a key that does
not match the certificate yet) the previous context keeps serving and the check is retried.
Connections already open keep their session; every new handshake gets the new certificate.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

FileState = tuple[int, int, int, int]


class CertificateError(Exception):
    """The certificate and key cannot be loaded (missing, unreadable, malformed or mismatched)."""


def make_server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS 1.2+ server context for the pair. Raises ``CertificateError``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certfile=cert_file, keyfile=key_file)
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(
            f"{cert_file}, {key_file}: cannot load the certificate and key: {exc}"
        ) from exc
    return context


class CertificateReloader:
    """The current server context for a certificate and key, re-read when the files change."""

    def __init__(
        self,
        cert_file: str,
        key_file: str,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._state = self._file_state()
        self._context = make_server_context(cert_file, key_file)
        self._next_check = clock() + interval

    def context(self) -> ssl.SSLContext:
        """The context for a new connection; checks the files when ``interval`` has passed."""
        if self._clock() >= self._next_check:
            self.check()
        return self._context

    def check(self) -> bool:
        """Reload the pair if the files changed; True when a new context was swapped in."""
        with self._lock:
            self._next_check = self._clock() + self.interval
            state = self._file_state()
            if state == self._state:
                return False
            try:
                context = make_server_context(self.cert_file, self.key_file)
            except CertificateError as exc:
                logger.warning("new TLS certificate not loaded yet, still serving the previous one: %s", exc)
                return False
            self._context = context
            self._state = state
            logger.info(
                "reloaded the TLS certificate from %s",
                self.cert_file,
                extra={"fields": {"cert": self.cert_file}},
            )
            return True

    def _file_state(self) -> tuple[FileState | None, FileState | None]:
        return _stat(self.cert_file), _stat(self.key_file)

    def gunicorn_hook(
        self, _config: object, _default_factory: Callable[[], ssl.SSLContext]
    ) -> ssl.SSLContext:
        """gunicorn's ``ssl_context`` server hook: called for every connection it wraps."""
        return self.context()


def _stat(path: str) -> FileState | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
