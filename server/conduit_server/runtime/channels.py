"""Channels for calls between services of the mesh."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf import json_format

from conduit.users.v1 import users_pb2, users_pb2_grpc
from conduit_server.runtime import telemetry
from conduit_server.runtime.interceptors import INTERNAL_TOKEN_KEY

CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    # Retries on UNAVAILABLE are declared per call site by idempotency, not globally.
    ("grpc.enable_retries", 1),
    # A target naming several replicas (a headless Service, an address list): spread calls over all.
    ("grpc.lb_policy_name", "round_robin"),
)


class _InternalCredentials(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Adds the mesh's internal token to every call on the channel."""

    def __init__(self, token: str) -> None:
        self._metadata = ((INTERNAL_TOKEN_KEY, token),)

    async def intercept_unary_unary(self, continuation: Callable[..., Awaitable[Any]],
                                    client_call_details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()), *self._metadata)
        details = grpc.aio.ClientCallDetails(client_call_details.method, client_call_details.timeout,
                                             metadata, client_call_details.credentials,
                                             client_call_details.wait_for_ready)
        return await continuation(details, request)


def internal_channel(target: str, internal_token: str) -> grpc.aio.Channel:
    """A plaintext channel to another service on the internal network, carrying the internal token
    (and, with tracing on, the caller's trace context)."""
    interceptors: list[Any] = [*telemetry.client_interceptors(), _InternalCredentials(internal_token)]
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS, interceptors=interceptors)


def jwks_from_users(channel: grpc.aio.Channel, timeout_seconds: float = 5.0
                    ) -> Callable[[], Awaitable[Mapping[str, Any]]]:
    """A JWKS fetcher for JwksCache that asks the users service."""
    stub = users_pb2_grpc.AuthServiceStub(channel)

    async def fetch() -> Mapping[str, Any]:
        response = await stub.GetJwks(users_pb2.GetJwksRequest(), timeout=timeout_seconds)
        return json_format.MessageToDict(response)

    return fetch
