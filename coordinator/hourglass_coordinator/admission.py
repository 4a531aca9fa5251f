"""At most `limit` calls served at once (worker streams included); a call beyond is refused at
once with RESOURCE_EXHAUSTED and a RetryInfo (the SDK retries it after that long). In place of
grpc's `maximum_concurrent_rpcs`, whose refusal carries no details, and like it the outermost
gate: a refused call is answered before the other interceptors run (no token is checked) and
its request is never decoded, so the SDK may retry any call refused so."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from hourglass_coordinator.calls import around
from hourglass_core import rich_status

# Calls at the limit mostly finish within tens of milliseconds; a caller told to come back a
# little later finds room without hammering a saturated replica.
RETRY_AFTER_S = 0.25

Kind = tuple[bool, bool]  # (client streams, server streams)


def method_kinds(services: Iterable[ServiceDescriptor]) -> dict[str, Kind]:
    """Each method's kind by its full name ("/hourglass.v1.JobService/GetJob")."""
    return {f"/{service.full_name}/{method.name}": (method.client_streaming, method.server_streaming)
            for service in services for method in service.methods}  # fmt: skip


def _refusals(status: grpc.Status) -> dict[Kind, grpc.RpcMethodHandler]:
    """A handler of each kind that refuses with `status` and reads nothing (no deserializer:
    the request stays bytes)."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort_with_status(status)

    async def refuse_stream(_request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        await context.abort_with_status(status)
        yield  # an async generator, as grpc.aio wants of a streaming handler

    return {
        (False, False): grpc.unary_unary_rpc_method_handler(refuse),
        (False, True): grpc.unary_stream_rpc_method_handler(refuse_stream),
        (True, False): grpc.stream_unary_rpc_method_handler(refuse),
        (True, True): grpc.stream_stream_rpc_method_handler(refuse_stream),
    }


class Admission(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # untyped base
    def __init__(self, limit: int, kinds: dict[str, Kind], retry_after: float = RETRY_AFTER_S) -> None:
        if limit < 1:
            raise ValueError(f"max_concurrent_rpcs must be at least 1, not {limit}")
        self.limit = limit
        self.in_flight = 0
        self._kinds = kinds
        busy = f"coordinator busy: {limit} calls at once; retry after {retry_after:g} s"
        self._refuse = _refusals(rich_status.status(grpc.StatusCode.RESOURCE_EXHAUSTED, busy, retry_after=retry_after))

    def _enter(self) -> None:
        self.in_flight += 1

    def _leave(self, _token: None, _code: grpc.StatusCode) -> None:
        self.in_flight -= 1

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if self.in_flight >= self.limit and (kind := self._kinds.get(details.method)) is not None:
            return self._refuse[kind]
        handler = await continuation(details)
        # Counted from the handler's first step to its end (the interceptors inside wait on
        # nothing, so no other call is admitted in between), never for a call that was
        # cancelled before its handler began.
        return None if handler is None else around(handler, self._enter, self._leave)
