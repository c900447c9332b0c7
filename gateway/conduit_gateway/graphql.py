"""The graphql service behind the gateway: its routes on the public listeners and its cluster.

`/graphql` (and `/graphql/…`, GraphiQL's files) go to the graphql service over HTTP/1.1, WebSocket
upgrades included (subscriptions). None of the REST machinery applies there: Lua (REST bodies and
errors), the buffer (it would hold a WebSocket's frames), the transcoder (it would refuse an unknown
path) and gRPC-Web are disabled on these routes. jwt_authn stays: no token passes, a bad one is a 401
before the service sees it. The security-header filter is disabled too, as its CSP (`default-src
'none'`) would stop GraphiQL's scripts: the service sets its own CSP, the route adds the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conduit_gateway.clusters import Address, seconds, socket_address
from conduit_gateway.http_filters import BUFFER_FILTER, HSTS, LUA_FILTER, SECURITY_HEADERS
from conduit_gateway.limits import EdgeLimits

Config = dict[str, Any]
GRAPHQL_CLUSTER = "graphql"
GRAPHQL_PATH = "/graphql"
DISABLED_FILTERS = (LUA_FILTER, BUFFER_FILTER, "envoy.filters.http.grpc_json_transcoder",
                    "envoy.filters.http.grpc_web", "envoy.filters.http.header_mutation")
WEBSOCKET = "websocket"


def upgrade_configs() -> list[Config]:
    """For the connection manager: WebSocket upgrades off, except where a route turns them on."""
    return [{"upgrade_type": WEBSOCKET, "enabled": False}]


def graphql_routes(limits: EdgeLimits, *, tls: bool) -> list[Config]:
    """`/graphql` exactly (queries, WebSocket) and `/graphql/` below it (GraphiQL's files)."""
    headers = [*SECURITY_HEADERS[:1], *SECURITY_HEADERS[2:], *([HSTS] if tls else [])]
    action: Config = {
        "cluster": GRAPHQL_CLUSTER,
        # No total timeout (a subscription lives as long as its client); idle streams are closed, and
        # the service pings every WebSocket every 15 s, so only dead ones go idle.
        "timeout": "0s",
        "idle_timeout": seconds(limits.graphql_idle_timeout_seconds),
        "upgrade_configs": [{"upgrade_type": WEBSOCKET, "enabled": True}],
    }
    shared: Config = {
        "route": action,
        "response_headers_to_add": [{"header": {"key": key, "value": value},
                                     "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"} for key, value in headers],
        "typed_per_filter_config": {name: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                                           "disabled": True} for name in DISABLED_FILTERS},
    }
    return [{"match": {"path": GRAPHQL_PATH}, **shared}, {"match": {"prefix": f"{GRAPHQL_PATH}/"}, **shared}]


def graphql_cluster(address: Address, limits: EdgeLimits, endpoints: Sequence[Address] = ()) -> Config:
    """HTTP/1.1 to the service at `address`, or at each of `endpoints` when given (replicas; a DNS name is
    resolved to every address it has), health-checked on /healthz, connections capped."""
    interval = seconds(limits.health_check_interval_seconds)
    return {
        "name": GRAPHQL_CLUSTER,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": seconds(limits.upstream_connect_timeout_seconds),
        "per_connection_buffer_limit_bytes": limits.connection_buffer_bytes,
        "load_assignment": {"cluster_name": GRAPHQL_CLUSTER, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": socket_address(host, port)}} for host, port in (endpoints or [address])]}]},
        # A Python HTTP server on a busy machine may take seconds to answer; a few slow answers must not
        # take the only host out (503 UH was seen with a 1 s timeout while 1,000 WebSockets connected).
        "health_checks": [{"timeout": "5s", "interval": interval, "no_traffic_interval": interval,
                           "unhealthy_threshold": 3, "healthy_threshold": 1,
                           "http_health_check": {"path": "/healthz"}}],
        "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
        # Each WebSocket holds one upstream connection: this caps open subscriptions' connections
        # (and HTTP/1.1 requests in flight); beyond it Envoy answers 503 at once.
        "circuit_breakers": {"thresholds": [{
            "priority": "DEFAULT",
            "max_connections": limits.max_graphql_connections,
            "max_pending_requests": 1024,
            "max_requests": limits.max_graphql_connections,
        }]},
    }


__all__ = ["GRAPHQL_CLUSTER", "GRAPHQL_PATH", "graphql_cluster", "graphql_routes", "upgrade_configs"]
