"""Envoy's part of a trace (decision 0018): the OpenTelemetry tracer starts the trace of every
request it samples, sends its spans to an OTLP/gRPC collector, and passes W3C `traceparent`
to the service it routes to, which continues the trace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from conduit_gateway.clusters import socket_address
from conduit_gateway.http_filters import typed

Config = dict[str, Any]
COLLECTOR_CLUSTER = "opentelemetry_collector"


@dataclass(frozen=True)
class TracingSpec:
    """Where spans go (`host`, `port` of an OTLP/gRPC receiver) and the share of requests traced."""

    collector_host: str
    collector_port: int
    sample_percent: float = 100.0
    service_name: str = "conduit-gateway"

    @classmethod
    def from_endpoint(cls, endpoint: str, sample_percent: float = 100.0) -> TracingSpec:
        """From an `OTEL_EXPORTER_OTLP_ENDPOINT`-style URL (`http://host:4317`) or `host:port`."""
        parts = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}")
        if not parts.hostname:
            raise ValueError(f"no host in OTLP endpoint {endpoint!r}")
        return cls(parts.hostname, parts.port or 4317, sample_percent)


def http_tracing(spec: TracingSpec) -> Config:
    """The `tracing` block of an HTTP connection manager."""
    return {
        "random_sampling": {"value": spec.sample_percent},
        # One span for the downstream request and one per upstream attempt (retries show up).
        "spawn_upstream_span": True,
        "provider": {"name": "envoy.tracers.opentelemetry", "typed_config": typed(
            "envoy.config.trace.v3.OpenTelemetryConfig",
            grpc_service={"envoy_grpc": {"cluster_name": COLLECTOR_CLUSTER}, "timeout": "1s"},
            service_name=spec.service_name,
        )},
    }


def collector_cluster(spec: TracingSpec) -> Config:
    """The cluster Envoy exports spans to (HTTP/2, gRPC)."""
    return {
        "name": COLLECTOR_CLUSTER,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": typed(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            explicit_http_config={"http2_protocol_options": {}})},
        "load_assignment": {"cluster_name": COLLECTOR_CLUSTER, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": socket_address(spec.collector_host, spec.collector_port)}}]}]},
    }
