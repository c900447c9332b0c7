"""Channels for calls between services of the mesh."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from conduit_server.runtime import telemetry
from conduit_server.runtime.interceptors import INTERNAL_TOKEN_KEY
from conduit_server.runtime.propagation import outgoing_metadata

CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    # Retries on UNAVAILABLE are declared per call site by idempotency, not globally.
    ("grpc.enable_retries", 1),
    # A target naming several replicas (a headless Service, an address list): spread calls over all.
    ("grpc.lb_policy_name", "round_robin"),
)


class _InternalMetadata(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Adds the mesh's internal token and the served call's context (request id) to every call."""

    def __init__(self, token: str) -> None:
        self._metadata = ((INTERNAL_TOKEN_KEY, token),)

    async def intercept_unary_unary(self, continuation: Callable[..., Awaitable[Any]],
                                    client_call_details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()), *self._metadata,
                                     *outgoing_metadata())
        details = grpc.aio.ClientCallDetails(client_call_details.method, client_call_details.timeout,
                                             metadata, client_call_details.credentials,
                                             client_call_details.wait_for_ready)
        return await continuation(details, request)


def internal_channel(target: str, internal_token: str) -> grpc.aio.Channel:
    """A plaintext channel to another service on the internal network, carrying the internal token, the
    request id (runtime.propagation) and, with tracing on, the caller's trace context."""
    interceptors: list[Any] = [*telemetry.client_interceptors(), _InternalMetadata(internal_token)]
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS, interceptors=interceptors)
