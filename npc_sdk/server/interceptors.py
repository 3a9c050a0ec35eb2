"""Server interceptors: API keys on every RPC but health, and INVALID_ARGUMENT for undecodable requests."""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError

from .api_keys import ApiKey, match


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Every RPC but health needs `authorization: Bearer <key>`; compared in constant time."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or details.method.startswith("/grpc.health.v1.Health/"):
            return handler
        if match(self.keys, dict(details.invocation_metadata or ()).get("authorization", "")):
            return handler
        return _denied(handler)


class DecodeGuard(grpc.aio.ServerInterceptor):
    """Requests that are not valid protobuf (bad UTF-8 in a string, truncated bytes) get INVALID_ARGUMENT.

    gRPC's own handling of a failing deserializer answers UNKNOWN; parsing inside the handler lets us say what
    was wrong with the right status.
    """

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        parse, method = handler.request_deserializer, details.method

        async def parsed(raw: bytes, context):
            try:
                return parse(raw)
            except DecodeError as exc:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"request: not a valid {method} message ({exc})"
                )

        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary(raw, context):
                return await inner(await parsed(raw, context), context)

            return grpc.unary_unary_rpc_method_handler(unary, response_serializer=handler.response_serializer)
        inner_stream = handler.unary_stream

        async def streaming(raw, context):
            async for item in inner_stream(await parsed(raw, context), context):
                yield item

        return grpc.unary_stream_rpc_method_handler(
            streaming, response_serializer=handler.response_serializer
        )


def _denied(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    message = "missing or wrong API key: send metadata 'authorization: Bearer <key>'"

    async def unary(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def streaming(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover  (makes this an async generator)

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary, **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
    return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)
