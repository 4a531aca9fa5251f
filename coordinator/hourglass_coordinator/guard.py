"""Requests that are not the message they claim to be get INVALID_ARGUMENT, not the UNKNOWN a
grpc.aio server answers when a request does not decode (its error would name no field and
look like a server fault). A server interceptor: every method's deserializer is wrapped, and
the handler refuses what did not decode before the servicer sees it."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from hourglass_coordinator.calls import HandlerInterceptor
from hourglass_core import rich_status


class Undecodable:
    """Stands for a request (or stream message) whose bytes did not decode."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _message(error: Exception) -> str:
    return f"request: not a valid message of this method ({error})"


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except (DecodeError, ValueError, TypeError) as error:  # protobuf's errors are DecodeError or ValueError
            return Undecodable(error)

    return decode


Refusal = Any  # a grpc.Status (untyped): see hourglass_core.rich_status.status


def checked(
    handler: grpc.RpcMethodHandler,
    check: Callable[[Any], Refusal | None],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """`handler` behind `check` of its request (of each message of a request stream): a
    refusal aborts the call before the servicer sees what was refused. The other interceptors
    build on it too."""
    codecs = {"request_deserializer": request_deserializer or handler.request_deserializer,
              "response_serializer": handler.response_serializer}  # fmt: skip

    async def vet(request: Any, context: grpc.aio.ServicerContext) -> None:
        if (refusal := check(request)) is not None:
            await context.abort_with_status(refusal)

    async def vetted(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for request in requests:
            await vet(request, context)
            yield request

    # A streaming handler is an async generator, or a coroutine that writes with context.write
    # (the health service's Watch): each is wrapped as what it is.
    def one(call: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def answer(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await vet(request, context)
            return await call(request, context)

        return answer

    def many(call: Callable[[Any, grpc.aio.ServicerContext], Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(call):
            async def gathered(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
                return await call(vetted(requests, context), context)

            return gathered

        async def streamed(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for response in call(vetted(requests, context), context):
                yield response

        return streamed

    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(one(handler.unary_unary), **codecs)
    if handler.unary_stream is not None:
        streaming = handler.unary_stream
        if inspect.iscoroutinefunction(streaming):
            return grpc.unary_stream_rpc_method_handler(one(streaming), **codecs)

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await vet(request, context)
            async for response in streaming(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(unary_stream, **codecs)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(many(handler.stream_stream), **codecs)
    return grpc.stream_unary_rpc_method_handler(many(handler.stream_unary), **codecs)


def _undecoded(request: Any) -> Refusal | None:
    if isinstance(request, Undecodable):
        return rich_status.status(grpc.StatusCode.INVALID_ARGUMENT, _message(request.error), field="request")
    return None


class RequestGuard(HandlerInterceptor):
    def wrap(self, handler: grpc.RpcMethodHandler, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return checked(handler, _undecoded, _tolerant(handler.request_deserializer))
