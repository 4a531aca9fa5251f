"""Authentication and authorization of every RPC: a grpc.aio server interceptor.

The caller is identified from its bearer token before anything else (UNAUTHENTICATED if it
cannot be); then the RPC's needs are checked against its grants (PERMISSION_DENIED), for
the namespaces the request names, before the servicer sees the request. What each RPC needs
is listed here, in one table: reads need read, submits and control need write, a namespace's
executor policy needs admin, the workers' stream needs cluster:worker, server reflection any
valid token, the health service none. Reads of the cluster itself (its workers, shard map and
replicas: hosts and executors every tenant shares) need read in every namespace ("*:read"): a
tenant of one namespace does not see the cluster. An RPC missing from the table is refused to
everyone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import grpc

from hourglass_coordinator.calls import HandlerInterceptor
from hourglass_coordinator.guard import Undecodable, checked
from hourglass_core import rich_status
from hourglass_core.auth import ALL_NAMESPACES, Caller, Role, Unauthenticated, Verifier
from hourglass_core.firing import run_key_of
from hourglass_core.models import DEFAULT_NAMESPACE

JOB_SERVICE = "hourglass.v1.JobService"
WORKER_SERVICE = "hourglass.v1.WorkerService"
# Served to callers without a token (probes carry none): the health service. Mutual TLS, where
# the coordinator asks for it, still applies: it is the transport's, before any call.
OPEN_SERVICES = frozenset({"grpc.health.v1.Health"})
# Served to any caller with a valid token, whatever it may do: server reflection. It tells only
# the schema (public in the .proto files), but who asks should be known.
AUTHENTICATED_SERVICES = frozenset({"grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"})

Namespaces = Callable[[Any], list[str]]


def _named(request: Any) -> list[str]:
    return [request.namespace or DEFAULT_NAMESPACE]


def _of_run(request: Any) -> list[str]:
    """A run id spells out its namespace; an id of the older random form needs every one."""
    key = run_key_of(request.run_id)
    return [key.namespace if key is not None else ALL_NAMESPACES]


def _cluster_wide(_request: Any) -> list[str]:
    return [ALL_NAMESPACES]


def _of_preview(request: Any) -> list[str]:
    """A stored job's namespace; a bare trigger touches no namespace's data."""
    return _named(request.job) if request.HasField("job") else []


NEEDS: dict[str, tuple[Role, Namespaces]] = {
    "SubmitJob": (Role.WRITE, lambda r: _named(r.job)),
    "SubmitJobs": (Role.WRITE, lambda r: sorted({j.namespace or DEFAULT_NAMESPACE for j in r.jobs})),
    "GetJob": (Role.READ, _named),
    "ListJobs": (Role.READ, _named),
    "CancelJob": (Role.WRITE, _named),
    "PauseJob": (Role.WRITE, _named),
    "ResumeJob": (Role.WRITE, _named),
    "GetRun": (Role.READ, _of_run),
    "ListRuns": (Role.READ, _named),
    "PreviewSchedule": (Role.READ, _of_preview),
    "DeleteJob": (Role.WRITE, _named),
    "TriggerJob": (Role.WRITE, _named),
    "UpdateJob": (Role.WRITE, _named),
    "BackfillJob": (Role.WRITE, _named),
    "ExplainJob": (Role.READ, _named),
    "WatchRuns": (Role.READ, _named),
    "SetNamespacePolicy": (Role.ADMIN, _named),
    "GetNamespacePolicy": (Role.READ, _named),
    "ListWorkers": (Role.READ, _cluster_wide),
    "GetWorker": (Role.READ, _cluster_wide),
    "GetShardMap": (Role.READ, _cluster_wide),
    "ListCoordinators": (Role.READ, _cluster_wide),
}


def unsecured_exposure(listen: str, tls: bool, tokens: bool) -> str | None:
    """Why a coordinator may not listen on `listen` so: beyond loopback without TLS and
    bearer tokens (anyone on the network could submit jobs, read them and pose as a worker).
    None when it may."""
    host = listen.rpartition(":")[0].strip("[]") if not listen.startswith("unix:") else "localhost"
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False  # a name, or "" (every interface)
    missing = [what for what, on in (("TLS", tls), ("bearer tokens", tokens)) if not on]
    if local or not missing:
        return None
    return (f"refusing to listen on {listen} without {' and '.join(missing)}: give the coordinator a certificate "
            "and a token key (see README, Security), listen on 127.0.0.1, or pass --insecure (HOURGLASS_INSECURE=1)")


def denial(caller: Caller, role: Role, namespaces: list[str]) -> str | None:
    """Why `caller` may not do what needs `role` in `namespaces`; None if it may."""
    for namespace in namespaces:
        if not caller.may(namespace, role):
            where = "every namespace" if namespace == ALL_NAMESPACES else f"namespace {namespace!r}"
            return f"{caller.subject} has no {role.name.lower()} permission in {where}"
    return None


def _refused(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """The handler, refusing every call (at its first request message)."""
    refusal = rich_status.status(code, message)
    return checked(handler, lambda _request: refusal)


def _checked(handler: grpc.RpcMethodHandler, caller: Caller, role: Role, namespaces: Namespaces) -> grpc.RpcMethodHandler:
    """The handler, behind the check of the request's namespaces (a request that did not
    decode is let through, to be refused as such by the RequestGuard inside)."""

    def refusal(request: Any) -> grpc.Status | None:
        if isinstance(request, Undecodable):
            return None
        why = denial(caller, role, namespaces(request))
        return None if why is None else rich_status.status(grpc.StatusCode.PERMISSION_DENIED, why)

    return checked(handler, refusal)


class AccessInterceptor(HandlerInterceptor):
    def __init__(self, verifier: Verifier) -> None:
        self._verifier = verifier

    def wrap(self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        service, _, method = details.method.lstrip("/").rpartition("/")
        if service in OPEN_SERVICES:
            return handler
        metadata = dict(details.invocation_metadata or ())
        try:
            caller = self._verifier.caller(metadata.get("authorization"))
        except Unauthenticated as error:
            return _refused(handler, grpc.StatusCode.UNAUTHENTICATED, str(error))
        if service in AUTHENTICATED_SERVICES:
            return handler
        if service == WORKER_SERVICE:
            if caller.is_worker:
                return handler
            return _refused(handler, grpc.StatusCode.PERMISSION_DENIED, f"{caller.subject} is not a worker (cluster:worker)")
        need = NEEDS.get(method) if service == JOB_SERVICE else None
        if need is None:
            return _refused(handler, grpc.StatusCode.PERMISSION_DENIED, f"{details.method} is not open to callers")
        role, namespaces = need
        return _checked(handler, caller, role, namespaces)
