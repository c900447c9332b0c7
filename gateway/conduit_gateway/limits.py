"""Limits and timeouts of the edge gateway."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EdgeLimits:
    """Envoy's edge-proxy best practices, tuned for the API. Every size and time has its unit."""

    # Request bodies (JSON of REST calls, messages of unary gRPC calls) above this get a 413.
    max_request_body_bytes: int = 1024 * 1024
    # Transcoded responses above this fail (the services' gRPC limit is 4 MiB too).
    max_response_body_bytes: int = 4 * 1024 * 1024
    max_request_headers_kb: int = 60
    max_headers_count: int = 100
    max_concurrent_streams: int = 100
    max_downstream_connections: int = 10_000
    # Concurrent requests to one cluster: unary calls (DEFAULT priority), and server streams (watches,
    # routed at HIGH priority: their own budget and upstream connections, so thousands of idle
    # watchers never take the unary calls' slots, nor the reverse). Per client, the realtime
    # service caps streams itself (`max_watchers_per_client`).
    max_requests: int = 1024
    max_streams: int = 10_240
    connection_buffer_bytes: int = 32 * 1024
    request_headers_timeout_seconds: float = 10
    # Also the idle timeout of streaming routes: the realtime service sends heartbeats.
    stream_idle_timeout_seconds: float = 300
    connection_idle_timeout_seconds: float = 300
    # Unary RPCs; streaming RPCs have no total timeout, only `stream_idle_timeout_seconds`.
    route_timeout_seconds: float = 15
    upstream_connect_timeout_seconds: float = 1
    health_check_interval_seconds: float = 2
    # The graphql route (decision 0031): open connections to the service (one per WebSocket), and how long
    # a request or WebSocket may stay silent.
    max_graphql_connections: int = 5_000
    graphql_idle_timeout_seconds: float = 300
    # Retries of GET-mapped RPCs on UNAVAILABLE, connect failures and refused streams.
    idempotent_retries: int = 2


__all__ = ["EdgeLimits"]
