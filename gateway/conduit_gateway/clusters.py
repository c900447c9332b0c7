"""Upstream clusters of the gateway, and the loopback JWKS listener.

One cluster per service process (services sharing an address share it): HTTP/2, gRPC health
checks, no panic routing, circuit breakers with a retry budget, outlier detection. Endpoints
resolve by DNS (STRICT_DNS: every address of a name, e.g. the pods of a headless Service, is a
host) and a cluster may list several endpoints (replicas); requests balance over the healthy ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from conduit_gateway.descriptors import MethodInfo, ServiceInfo
from conduit_gateway.http_filters import JWKS_CLUSTER, router, transcoder, typed
from conduit_gateway.limits import EdgeLimits

Config = dict[str, Any]
Address = tuple[str, int]

UNROUTED_CLUSTER = "conduit_unrouted"
JWKS_LISTENER = "conduit_jwks"
JWKS_UPSTREAM_CLUSTER = "conduit_jwks_upstream"


def address_key(address: Sequence[str | int]) -> Address:
    """`(host, port)` as a dict key, whatever sequence the caller passed."""
    host, port = address
    return str(host), int(port)


def cluster_names(upstreams: Mapping[str, Sequence[str | int]],
                  public: Sequence[ServiceInfo]) -> dict[Address, str]:
    """One cluster per address, named after the packages it serves (`users`, `articles`)."""
    wanted = {s.name for s in public}
    packages: dict[Address, set[str]] = {}
    for service, address in upstreams.items():
        if service in wanted:
            parts = service.split(".")
            packages.setdefault(address_key(address), set()).add(parts[-3] if len(parts) >= 3 else parts[0])
    names: dict[Address, str] = {}
    for address, package_names in sorted(packages.items()):
        name = "_".join(sorted(package_names))
        if name in names.values():
            name = f"{name}_{address[1]}"
        names[address] = name
    return names


def socket_address(host: str, port: int) -> Config:
    return {"socket_address": {"address": host, "port_value": port}}


def seconds(value: float) -> str:
    return f"{value:g}s"


def upstream_cluster(name: str, address: Address, limits: EdgeLimits,
                     endpoints: Sequence[Address] = ()) -> Config:
    """The cluster of the process(es) at `address`, or at each of `endpoints` when given."""
    interval = seconds(limits.health_check_interval_seconds)
    return {
        "name": name,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": seconds(limits.upstream_connect_timeout_seconds),
        "per_connection_buffer_limit_bytes": limits.connection_buffer_bytes,
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": typed(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            explicit_http_config={"http2_protocol_options": {
                "connection_keepalive": {"interval": "30s", "timeout": "5s"}}},
        )},
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": socket_address(host, port)}} for host, port in (endpoints or [address])]}]},
        "health_checks": [{
            "timeout": "1s",
            "interval": interval,
            # Without it the first check of an idle cluster waits up to 60 s.
            "no_traffic_interval": interval,
            "unhealthy_threshold": 2,
            "healthy_threshold": 1,
            # The server's overall health (service name "").
            "grpc_health_check": {},
        }],
        # Never route to a host known unhealthy (panic routing would): with one host, answer 503 at
        # once; with replicas, a draining one gets no new request.
        "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
        "circuit_breakers": {"thresholds": [{
            "priority": "DEFAULT",
            "max_connections": 1024,
            "max_pending_requests": 1024,
            "max_requests": limits.max_requests,
            "retry_budget": {"budget_percent": {"value": 20.0}, "min_retry_concurrency": 3},
        }, {
            # Server streams (routes at HIGH priority, see config._method_route): long-lived, so a
            # budget of their own; never retried.
            "priority": "HIGH",
            "max_connections": 1024,
            "max_pending_requests": 1024,
            "max_requests": limits.max_streams,
            "max_retries": 0,
        }]},
        "outlier_detection": {
            # Only gateway failures (UNAVAILABLE, DEADLINE_EXCEEDED, resets) eject; a service's
            # own INTERNAL answers do not take the only host out.
            "consecutive_5xx": 5,
            "enforcing_consecutive_5xx": 0,
            "consecutive_gateway_failure": 5,
            "enforcing_consecutive_gateway_failure": 100,
            "interval": "5s",
            "base_ejection_time": "5s",
            "max_ejection_percent": 100,
        },
    }


def unrouted_cluster() -> Config:
    """No endpoints: what the REST catch-all route points at (see `config._route_config`)."""
    return {"name": UNROUTED_CLUSTER, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": UNROUTED_CLUSTER, "endpoints": []}}


def jwks_listener(descriptor_path: Path, method: MethodInfo, port: int, limits: EdgeLimits) -> Config:
    """A loopback listener transcoding only the JWKS RPC, for jwt_authn's remote fetch.

    Not an Envoy internal listener: those exist on worker threads only, and jwt_authn also
    fetches from the main thread, which then fails (and logs a warning) every second forever.
    """
    manager = typed(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix="jwks",
        route_config={"name": "jwks", "virtual_hosts": [{"name": "jwks", "domains": ["*"], "routes": [
            {"match": {"path": method.grpc_path},
             "route": {"cluster": JWKS_UPSTREAM_CLUSTER, "timeout": "2s"}},
        ]}]},
        http_filters=[transcoder(descriptor_path, [method.service], limits), router()],
    )
    return {
        "name": JWKS_LISTENER,
        "address": socket_address("127.0.0.1", port),
        "filter_chains": [{"filters": [
            {"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}],
    }


def jwks_clusters(listener_port: int, upstream: Address, limits: EdgeLimits,
                  endpoints: Sequence[Address] = ()) -> list[Config]:
    """The cluster jwt_authn fetches from (the JWKS listener) and the one behind it.

    The latter has no health checks: the fetch at start-up must not wait for the first round
    (with a panic threshold of 0 it would find no healthy host).
    """
    to_listener = {
        "name": JWKS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": JWKS_CLUSTER, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": socket_address("127.0.0.1", listener_port)}}]}]},
    }
    behind = upstream_cluster(JWKS_UPSTREAM_CLUSTER, upstream, limits, endpoints)
    for key in ("health_checks", "outlier_detection", "common_lb_config"):
        del behind[key]
    return [to_listener, behind]


__all__ = [
    "JWKS_LISTENER", "JWKS_UPSTREAM_CLUSTER", "UNROUTED_CLUSTER", "Address", "address_key", "cluster_names",
    "jwks_clusters", "jwks_listener", "seconds", "socket_address", "unrouted_cluster", "upstream_cluster",
]
