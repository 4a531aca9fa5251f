"""Wrapping grpc.aio method handlers: `HandlerInterceptor`, the shape of the interceptors that
wrap each known method's handler, and `around`, a handler with a hook as each call starts and
one as it ends, with its status code (what the admission limit and the RPC metrics count)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

T = TypeVar("T")
OK = grpc.StatusCode.OK


class HandlerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # untyped base
    """Wraps the handler of each method served here; an unknown method stays unknown
    (UNIMPLEMENTED), whatever its caller."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        return None if handler is None else self.wrap(handler, details)

    def wrap(self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        raise NotImplementedError


def _code(context: grpc.aio.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    """The status the call ends with: the one an abort or set_code set, else OK or UNKNOWN."""
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return OK if error is None else grpc.StatusCode.UNKNOWN


def around(
    handler: grpc.RpcMethodHandler, start: Callable[[], T], end: Callable[[T, grpc.StatusCode], None]
) -> grpc.RpcMethodHandler:
    """`handler`, calling `start()` as a call begins and `end(what start returned, code)` once
    it ended, however it ended. A stream of an async generator costs one more step per
    response message."""
    codecs = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}

    def single(call: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def answer(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token, error = start(), None
            try:
                return await call(request, context)
            except BaseException as caught:
                error = caught
                raise
            finally:
                end(token, _code(context, error))

        return answer

    def streaming(call: Callable[[Any, grpc.aio.ServicerContext], Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(call):  # writes with context.write (the health service's Watch)
            return single(call)

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            token, error = start(), None
            try:
                async for response in call(request, context):
                    yield response
            except BaseException as caught:
                error = caught
                raise
            finally:
                end(token, _code(context, error))

        return stream

    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(single(handler.unary_unary), **codecs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **codecs)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **codecs)
    return grpc.stream_unary_rpc_method_handler(single(handler.stream_unary), **codecs)
