"""The id a worker registers as when none is configured: one its credentials name.

Coordinators let a worker register only as a worker its token's subject (or, without tokens,
its client certificate's name) names: one id, or a prefix ending in "*" for a fleet that
shares one credential. Without HOURGLASS_WORKER_ID a worker reads that name (unverified: the
coordinator verifies) and registers as it, or under its prefix with a suffix of its own.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.x509.oid import NameOID

from hourglass_core.auth import FLEET


def unique_suffix() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def worker_id_for(name: str | None, suffix: str) -> str:
    """The id to register as under credential name `name` (None: a credential naming none)."""
    if not name or name == FLEET:
        return f"worker-{suffix}"
    if name.endswith(FLEET):
        return name[: -len(FLEET)] + suffix
    return name


def credential_name(token: str, certificate_file: str) -> str | None:
    """What names this worker: its token's subject, else its client certificate's common name."""
    if token:
        try:
            subject = jwt.decode(token, options={"verify_signature": False}).get("sub")
        except jwt.PyJWTError:
            return None  # the coordinator will say what is wrong with it
        return subject if isinstance(subject, str) else None
    if certificate_file:
        certificate = x509.load_pem_x509_certificate(Path(certificate_file).read_bytes())
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else None
    return None
