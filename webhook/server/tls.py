"""The serving certificate: an ``ssl.SSLContext`` rebuilt when the certificate or key files change.

gunicorn asks its ``ssl_context`` hook for a context on every new connection; ``CertificateReloader``
answers with the current one and, at most once per ``interval``, checks the files. Both ways a
certificate gets replaced are seen: a rewrite in place changes the file's mtime and size, and the
atomic ``..data`` symlink swap Kubernetes does for mounted Secrets changes the inode the path
resolves to (``os.stat`` follows symlinks). A changed pair is loaded into a new context and
swapped in with one assignment; until it loads cleanly (a half-written file, a key that does
not match the certificate yet) the previous context keeps serving and the check is retried.
Connections already open keep their session; every new handshake gets the new certificate.

With ``client_ca`` the context requires a client certificate signed by that CA (the API server
presents one through its admission configuration's kubeconfig); the CA file is watched and
reloaded with the pair. The context is built from an empty ``SSLContext``, never from
``ssl.create_default_context``: that one trusts the system's public CAs for client certificates,
so any certificate a public CA ever issued would pass. ``not_after`` is the serving certificate's
expiry, read from the PEM each time it loads (``podpreset_certificate_expiry_timestamp_seconds``).
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

TLSVersion = Literal["1.2", "1.3"]
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

logger = logging.getLogger(__name__)

FileState = tuple[int, int, int, int]


class CertificateError(Exception):
    """The certificate and key cannot be loaded (missing, unreadable, malformed or mismatched)."""


def make_server_context(
    cert_file: str, key_file: str, *, client_ca: str | None = None, min_version: TLSVersion = "1.3"
) -> ssl.SSLContext:
    """A server context for the pair, TLS ``min_version`` or later; with ``client_ca``, clients
    must present a certificate that CA signed. Raises ``CertificateError``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[min_version]
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certfile=cert_file, keyfile=key_file)
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(
            f"{cert_file}, {key_file}: cannot load the certificate and key: {exc}"
        ) from exc
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise CertificateError(f"{client_ca}: cannot load the client CA: {exc}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def certificate_not_after(cert_file: str) -> float:
    """The Unix time at which the first certificate of a PEM file expires. Raises
    ``CertificateError``."""
    try:
        with open(cert_file, encoding="ascii", errors="replace") as stream:
            pem = stream.read()
        end = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
        der = ssl.PEM_cert_to_DER_cert(pem[pem.index("-----BEGIN CERTIFICATE-----") : end])
        return _der_not_after(der)
    except (OSError, ValueError, IndexError) as exc:
        raise CertificateError(f"{cert_file}: cannot read the certificate's expiry: {exc}") from exc


def _der_not_after(der: bytes) -> float:
    """``notAfter`` of a DER certificate: Certificate → tbsCertificate → validity (RFC 5280)."""

    def header(at: int) -> tuple[int, int, int]:
        """(tag, start of content, length) of the DER element at ``at``."""
        tag, first = der[at], der[at + 1]
        if first < 0x80:
            return tag, at + 2, first
        count = first & 0x7F
        return tag, at + 2 + count, int.from_bytes(der[at + 2 : at + 2 + count], "big")

    _, tbs, _ = header(0)  # Certificate SEQUENCE: its first element is tbsCertificate
    _, at, _ = header(tbs)
    tag, start, length = header(at)
    if tag == 0xA0:  # [0] version, present in v2 and v3 certificates
        at = start + length
        tag, start, length = header(at)
    for _ in range(3):  # serialNumber, signature, issuer
        tag, start, length = header(at)
        at = start + length
    tag, validity, _ = header(at)
    tag, start, length = header(validity)  # notBefore
    tag, start, length = header(start + length)  # notAfter
    text = der[start : start + length].decode("ascii")
    if tag == 0x17:  # UTCTime, YYMMDDHHMMSSZ: 50-99 are 1950-1999 (RFC 5280)
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime, YYYYMMDDHHMMSSZ
        raise ValueError(f"notAfter: unexpected DER tag {tag:#x}")
    moment = datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
    return moment.timestamp()


class CertificateReloader:
    """The current server context for a certificate and key, re-read when the files change."""

    def __init__(
        self,
        cert_file: str,
        key_file: str,
        *,
        interval: float = 1.0,
        client_ca: str | None = None,
        min_version: TLSVersion = "1.3",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.client_ca = client_ca
        self.min_version: TLSVersion = min_version
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._state = self._file_state()
        self._context = self._load()
        self.not_after = certificate_not_after(cert_file)
        """Unix time at which the certificate being served expires."""
        self._next_check = clock() + interval

    def _load(self) -> ssl.SSLContext:
        return make_server_context(
            self.cert_file, self.key_file, client_ca=self.client_ca, min_version=self.min_version
        )

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
                context = self._load()
                not_after = certificate_not_after(self.cert_file)
            except CertificateError as exc:
                logger.warning("new TLS certificate not loaded yet, still serving the previous one: %s", exc)
                return False
            self._context = context
            self.not_after = not_after
            self._state = state
            logger.info(
                "reloaded the TLS certificate from %s (expires %s)",
                self.cert_file,
                datetime.fromtimestamp(not_after, UTC).isoformat(),
                extra={"fields": {"cert": self.cert_file, "not_after": not_after}},
            )
            return True

    def _file_state(self) -> tuple[FileState | None, ...]:
        files = (self.cert_file, self.key_file, *((self.client_ca,) if self.client_ca else ()))
        return tuple(_stat(path) for path in files)

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
