"""Authentication and authorization of every RPC: a grpc.aio server interceptor.

The caller is identified from its bearer token before anything else (UNAUTHENTICATED if it
cannot be); then the RPC's needs are checked against its grants (PERMISSION_DENIED), for
the namespaces the request names, before the servicer sees the request. What each RPC needs
is listed here, in one table: reads need read, submits and control need write, the workers'
stream needs cluster:worker. An RPC missing from the table is refused to everyone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from hourglass_coordinator.guard import Undecodable
from hourglass_core.auth import ALL_NAMESPACES, Caller, Role, Unauthenticated, Verifier
from hourglass_core.firing import run_key_of
from hourglass_core.models import DEFAULT_NAMESPACE

JOB_SERVICE = "hourglass.v1.JobService"
WORKER_SERVICE = "hourglass.v1.WorkerService"
# Served to anyone (probes speak plaintext without tokens): the health service.
OPEN_SERVICES = frozenset({"grpc.health.v1.Health"})

Namespaces = Callable[[Any], list[str]]


def _named(request: Any) -> list[str]:
    return [request.namespace or DEFAULT_NAMESPACE]


def _of_run(request: Any) -> list[str]:
    """A run id spells out its namespace; an id of the older random form needs every one."""
    key = run_key_of(request.run_id)
    return [key.namespace if key is not None else ALL_NAMESPACES]


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
    """A handler of the same shape that only refuses the call."""

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # pragma: no cover - abort raises

    return _like(handler, unary, streaming)


def _checked(handler: grpc.RpcMethodHandler, caller: Caller, role: Role, namespaces: Namespaces) -> grpc.RpcMethodHandler:
    """The handler, behind the check of the request's namespaces."""
    unary_call: Callable[[Any, Any], Awaitable[Any]] | None = handler.unary_unary
    stream_call: Callable[[Any, Any], AsyncIterator[Any]] | None = handler.unary_stream

    def refusal(request: Any) -> str | None:  # what did not decode is refused as such inside
        return None if isinstance(request, Undecodable) else denial(caller, role, namespaces(request))

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if (why := refusal(request)) is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, why)
        assert unary_call is not None
        return await unary_call(request, context)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if (why := refusal(request)) is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, why)
        assert stream_call is not None
        async for response in stream_call(request, context):
            yield response

    return _like(handler, unary, streaming)


def _like(handler: grpc.RpcMethodHandler, unary: Any, streaming: Any) -> grpc.RpcMethodHandler:
    codecs = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary, **codecs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming, **codecs)

    async def stream_in(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for response in streaming(None, context):
            yield response

    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(stream_in, **codecs)
    return grpc.stream_unary_rpc_method_handler(lambda requests, context: unary(None, context), **codecs)


class AccessInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # untyped base
    def __init__(self, verifier: Verifier) -> None:
        self._verifier = verifier

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None  # an unknown method: UNIMPLEMENTED, as without authentication
        service, _, method = details.method.lstrip("/").rpartition("/")
        if service in OPEN_SERVICES:
            return handler
        metadata = dict(details.invocation_metadata or ())
        try:
            caller = self._verifier.caller(metadata.get("authorization"))
        except Unauthenticated as error:
            return _refused(handler, grpc.StatusCode.UNAUTHENTICATED, str(error))
        if service == WORKER_SERVICE:
            if caller.is_worker:
                return handler
            return _refused(handler, grpc.StatusCode.PERMISSION_DENIED, f"{caller.subject} is not a worker (cluster:worker)")
        need = NEEDS.get(method) if service == JOB_SERVICE else None
        if need is None:
            return _refused(handler, grpc.StatusCode.PERMISSION_DENIED, f"{details.method} is not open to callers")
        role, namespaces = need
        return _checked(handler, caller, role, namespaces)
