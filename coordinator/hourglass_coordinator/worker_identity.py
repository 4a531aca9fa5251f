"""Which worker a connecting worker may register as: the one its credentials name.

With bearer tokens on, a worker token's subject (`sub`) names it; with mutual TLS and no
tokens, its client certificate's common name or subject alternative names do. A name is one
worker id, or a prefix ending in "*" for a fleet that shares one credential (autoscaled
workers pick unique ids under it; see hourglass_core.auth.names_worker). With neither
(plaintext on loopback) nothing identifies the caller, and any id goes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc

from hourglass_core.auth import Unauthenticated, Verifier, names_worker


@dataclass(frozen=True, slots=True)
class Credential:
    kind: str  # what names the worker: "token subject" or "client certificate"
    names: tuple[str, ...]


Identify = Callable[[grpc.aio.ServicerContext], Credential | None]


def refusal(worker_id: str, credential: Credential | None) -> str | None:
    """Why a caller with `credential` may not register as `worker_id`; None if it may."""
    if credential is None or any(names_worker(name, worker_id) for name in credential.names):
        return None
    named = ", ".join(repr(name) for name in credential.names) or "no worker"
    return f"register.worker_id {worker_id!r} is not the worker its {credential.kind} names ({named})"


def identify_by(verifier: Verifier | None, mutual_tls: bool) -> Identify:
    """How the worker service reads a caller's credential: its token when tokens are on, else
    its client certificate when the coordinator requires one, else nothing."""
    if verifier is not None:
        return lambda context: _token_subject(verifier, context)
    if mutual_tls:
        return _certificate_names
    return lambda _context: None


def _token_subject(verifier: Verifier, context: grpc.aio.ServicerContext) -> Credential:
    metadata = dict(context.invocation_metadata() or ())
    try:  # verified already (AccessInterceptor): a lookup in the verifier's cache
        return Credential("token subject", (verifier.caller(metadata.get("authorization")).subject,))
    except Unauthenticated:
        return Credential("token subject", ())


# gRPC's names for a TLS peer's certificate in the call's auth context.
_CERTIFICATE_NAMES = ("x509_common_name", "x509_subject_alternative_name")


def _certificate_names(context: grpc.aio.ServicerContext) -> Credential:
    auth = context.auth_context() or {}
    names = [value.decode(errors="replace") for key in _CERTIFICATE_NAMES for value in auth.get(key, ())]
    return Credential("client certificate", tuple(dict.fromkeys(names)))
