"""A development CA and serving certificate for 127.0.0.1 and localhost (``make run``).

``python -m webhook.server.devcert DIR`` writes ``ca.crt``, ``tls.crt`` and ``tls.key`` into DIR, reusing
them when they are already there. For local use only: the CA's key is thrown away, and trustme
(a test dependency) makes the certificates.
"""

from __future__ import annotations

import sys
from pathlib import Path

NAMES = ("127.0.0.1", "localhost", "::1")


def write_dev_certs(directory: str) -> Path:
    """Write (or keep) ``ca.crt``, ``tls.crt`` and ``tls.key`` in ``directory``."""
    target = Path(directory)
    files = [target / name for name in ("ca.crt", "tls.crt", "tls.key")]
    if all(f.is_file() and f.stat().st_size > 0 for f in files):
        return target
    import trustme

    target.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="podpreset development CA")
    cert = ca.issue_cert(*NAMES)
    ca.cert_pem.write_to_path(str(target / "ca.crt"))
    cert.private_key_pem.write_to_path(str(target / "tls.key"))
    (target / "tls.key").chmod(0o600)
    with open(target / "tls.crt", "wb") as out:
        for blob in cert.cert_chain_pems:
            out.write(blob.bytes())
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m webhook.server.devcert DIR", file=sys.stderr)
        return 2
    print(write_dev_certs(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
