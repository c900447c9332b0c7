"""Generate the Envoy bootstrap of the edge gateway from the contract.

One HTTP filter chain serves REST (transcoded to gRPC), native gRPC and gRPC-Web, on a TLS
listener (ALPN h2, http/1.1) and optionally a plain one:

    header_mutation -> cors -> grpc_web -> lua (http cache) -> lua (REST) -> jwt_authn -> buffer
    -> grpc_json_transcoder -> router

Everything per RPC comes from the descriptor set (see `conduit_gateway.descriptors`): the
transcoded services, one route per public RPC (timeout, retries, success status), the JWT
rule of each REST binding, the methods of each REST path and the JSON shape of each body
(generated into the Lua filter: `conduit_gateway.body_fields`). Services whose RPCs are
all ACCESS_INTERNAL get no route.

JWKS: production uses `remote_jwks`, fetched from the users service through the gateway
itself: a dedicated listener on 127.0.0.1:`jwks_port` whose only route transcodes
`GET /api/.well-known/jwks.json` to the JWKS RPC. This reuses the transcoder instead of a
hand-written HTTP endpoint, and depends neither on the public listeners nor on plain HTTP
being enabled. (An Envoy internal listener would need no port, but jwt_authn also fetches
from the main thread, where internal listeners do not exist: that fetch fails every second,
forever.) Tests may inline a JWKS instead (`GatewaySpec.local_jwks`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conduit_gateway.body_fields import RestBindings, rest_bindings
from conduit_gateway.clusters import (
    UNROUTED_CLUSTER,
    Address,
    address_key,
    cluster_names,
    jwks_clusters,
    jwks_listener,
    retry_policy,
    seconds,
    socket_address,
    unrouted_cluster,
    upstream_cluster,
)
from conduit_gateway.descriptors import Contract, MethodInfo, ServiceInfo, services_from_descriptors
from conduit_gateway.graphql import graphql_cluster, graphql_routes, upgrade_configs
from conduit_gateway.http_cache import HttpCachePolicy, route_metadata, route_policies
from conduit_gateway.http_filters import (
    BUFFER_FILTER,
    CORS_FILTER,
    JWKS_PATH,
    LUA_FILTER,
    access_log,
    edge_filters,
    local_reply_config,
    typed,
)
from conduit_gateway.limits import EdgeLimits
from conduit_gateway.tls import TlsMaterial
from conduit_gateway.tracing import TracingSpec, collector_cluster, http_tracing

Config = dict[str, Any]

CORS_ALLOW_HEADERS = ("authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout",
                      "traceparent", "tracestate", "x-request-id")
# grpc-status-details-bin: the google.rpc details (ErrorInfo, BadRequest, RetryInfo) of a gRPC-Web
# error answered trailers-only, where they travel as a response header a page must be let read.
CORS_EXPOSE_HEADERS = ("grpc-status", "grpc-message", "grpc-status-details-bin", "retry-after", "x-request-id")


@dataclass(frozen=True)
class GatewaySpec:
    """Everything the generated config depends on.

    `upstreams` maps each public gRPC service (`conduit.articles.v1.ArticlesService`) to the
    `(host, port)` of the process serving it; services sharing an address share a cluster.
    Internal services may be listed; they are never routed. `http_port` 0 means no plain
    listener; the admin interface and the JWKS listener (`jwks_port`) always listen on
    127.0.0.1 only. `jwks_upstream` is where the JWKS RPC is served (default: the upstream of
    its service); `local_jwks`, a JWKS JSON document, replaces the remote fetch and the JWKS
    listener (tests). `replicas` lists every endpoint behind an upstream address when there are
    several (the cluster of that address balances over them; `graphql_upstream`'s too); a DNS name
    needs no entry: each of its addresses is a host.
    """

    descriptor_path: Path
    upstreams: Mapping[str, tuple[str, int]]
    tls: TlsMaterial
    jwt_issuer: str
    jwt_audience: str
    listen_host: str = "127.0.0.1"
    tls_port: int = 8443
    http_port: int = 0
    admin_port: int = 9901
    jwks_port: int = 9902
    cors_origins: Sequence[str] = ()
    jwks_upstream: tuple[str, int] | None = None
    local_jwks: str | None = None
    replicas: Mapping[tuple[str, int], Sequence[tuple[str, int]]] = field(default_factory=dict)
    limits: EdgeLimits = field(default_factory=EdgeLimits)
    # None: no tracing. Else Envoy starts traces and exports its spans (conduit_gateway.tracing).
    tracing: TracingSpec | None = None
    # The graphql service, routed at /graphql (conduit_gateway.graphql); None: no such route.
    graphql_upstream: tuple[str, int] | None = None
    http_cache: HttpCachePolicy = field(default_factory=HttpCachePolicy)


def build_config(spec: GatewaySpec) -> Config:
    """The Envoy bootstrap for `spec`, as JSON-compatible data.

    Raises ValueError when a public service has no upstream, or when no RPC serves the JWKS
    and `local_jwks` is not given.
    """
    public = [s for s in services_from_descriptors(spec.descriptor_path) if not s.internal]
    missing = sorted(s.name for s in public if s.name not in spec.upstreams)
    if missing:
        raise ValueError(f"no upstream for public services: {', '.join(missing)}")
    clusters = cluster_names(spec.upstreams, public)
    contract = Contract.load(spec.descriptor_path)
    caching = route_policies(contract, [m for s in public for m in s.public_methods])
    bindings = rest_bindings(contract, {s.name for s in public})

    tls_routes = _route_config(spec, public, clusters, caching, tls=True)
    listeners = [_listener("conduit_tls", spec, spec.tls_port, public, tls_routes, bindings=bindings, tls=True)]
    if spec.http_port:
        http_routes = _route_config(spec, public, clusters, caching, tls=False)
        listeners.append(_listener("conduit_http", spec, spec.http_port, public, http_routes,
                                   bindings=bindings, tls=False))
    cluster_configs = [upstream_cluster(name, address, spec.limits, spec.replicas.get(address, ()))
                       for address, name in clusters.items()]
    cluster_configs.append(unrouted_cluster())
    if spec.graphql_upstream is not None:
        graphql_address = address_key(spec.graphql_upstream)
        cluster_configs.append(graphql_cluster(graphql_address, spec.limits, spec.replicas.get(graphql_address, ())))
    if spec.tracing is not None:
        cluster_configs.append(collector_cluster(spec.tracing))
    config: Config = {
        "node": {"id": "conduit-gateway", "cluster": "conduit-gateway"},
        "admin": {"address": socket_address("127.0.0.1", spec.admin_port)},
        "overload_manager": {"resource_monitors": [{
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": typed(
                "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                max_active_downstream_connections=spec.limits.max_downstream_connections),
        }]},
        "static_resources": {"listeners": listeners, "clusters": cluster_configs},
    }
    if spec.local_jwks is None:
        method = _jwks_method(public)
        target = address_key(spec.jwks_upstream or spec.upstreams[method.service])
        listeners.append(jwks_listener(spec.descriptor_path, method, spec.jwks_port, spec.limits))
        cluster_configs += jwks_clusters(spec.jwks_port, target, spec.limits, spec.replicas.get(target, ()))
    return config


def write_config(spec: GatewaySpec, path: Path) -> Path:
    """Write the config for `spec` to `path` (JSON for a `.json` suffix, YAML otherwise); return it."""
    config = build_config(spec)
    text = json.dumps(config, indent=2) if path.suffix == ".json" else yaml.safe_dump(config, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _jwks_method(public: Sequence[ServiceInfo]) -> MethodInfo:
    for service in public:
        for method in service.public_methods:
            if any(b.method == "GET" and b.path_template == JWKS_PATH for b in method.bindings):
                return method
    raise ValueError(f"no RPC is bound to GET {JWKS_PATH}; give GatewaySpec.local_jwks")


def _listener(name: str, spec: GatewaySpec, port: int, public: Sequence[ServiceInfo], routes: Config,
              *, bindings: RestBindings, tls: bool) -> Config:
    limits = spec.limits
    manager = typed(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix=name,
        codec_type="AUTO",
        use_remote_address=True,
        normalize_path=True,
        merge_slashes=True,
        path_with_escaped_slashes_action="REJECT_REQUEST",
        server_name="conduit",
        generate_request_id=True,
        # A client's own x-request-id is kept as sent (no trace flag packed into a UUID-shaped id), so its
        # id reaches every service's log line for the call.
        preserve_external_request_id=True,
        request_id_extension={"typed_config": typed("envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig",
                                                    pack_trace_reason=False)},
        request_headers_timeout=seconds(limits.request_headers_timeout_seconds),
        stream_idle_timeout=seconds(limits.stream_idle_timeout_seconds),
        max_request_headers_kb=limits.max_request_headers_kb,
        common_http_protocol_options={
            "idle_timeout": seconds(limits.connection_idle_timeout_seconds),
            "max_headers_count": limits.max_headers_count,
            "headers_with_underscores_action": "REJECT_REQUEST",
        },
        http2_protocol_options={
            "max_concurrent_streams": limits.max_concurrent_streams,
            "initial_stream_window_size": 65536,
            "initial_connection_window_size": 1048576,
        },
        access_log=[access_log()],
        local_reply_config=local_reply_config(),
        route_config=routes,
        http_filters=edge_filters(descriptor_path=spec.descriptor_path, public=public, bindings=bindings,
                                  issuer=spec.jwt_issuer,
                                  audience=spec.jwt_audience, local_jwks=spec.local_jwks, limits=limits,
                                  tls=tls, http_cache=spec.http_cache),
    )
    if spec.tracing is not None:
        manager["tracing"] = http_tracing(spec.tracing)
    if spec.graphql_upstream is not None:
        manager["upgrade_configs"] = upgrade_configs()
    chain: Config = {"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                  "typed_config": manager}]}
    if tls:
        chain["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": typed(
            "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            common_tls_context={
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                "tls_certificates": [{"certificate_chain": {"filename": str(spec.tls.server_cert)},
                                      "private_key": {"filename": str(spec.tls.server_key)}}],
            },
        )}
    return {
        "name": name,
        "address": socket_address(spec.listen_host, port),
        "per_connection_buffer_limit_bytes": limits.connection_buffer_bytes,
        "filter_chains": [chain],
    }


def _route_config(spec: GatewaySpec, public: Sequence[ServiceInfo],
                  clusters: Mapping[Address, str], caching: Mapping[str, str], *, tls: bool) -> Config:
    routes = graphql_routes(spec.limits, tls=tls) if spec.graphql_upstream is not None else []
    routes += [_method_route(m, clusters[address_key(spec.upstreams[s.name])], spec.limits, caching)
               for s in public for m in s.public_methods]
    routes += [
        # Any other gRPC path, internal RPCs included: 404 (UNIMPLEMENTED to a gRPC client).
        {"match": {"prefix": "/", "headers": [
            {"name": "content-type", "string_match": {"prefix": "application/grpc"}}]},
         "direct_response": {"status": 404, "body": {"inline_string": "Not Found"}}},
        # REST paths match this before transcoding. It must route to a cluster: CORS finds no
        # policy on a direct response. The transcoder rejects every REST call it cannot map, so
        # nothing reaches the router through it; if anything did, the empty cluster is a 503.
        {"match": {"prefix": "/"}, "route": {"cluster": UNROUTED_CLUSTER}},
    ]
    virtual_host: Config = {
        "name": "conduit", "domains": ["*"], "routes": routes,
        # The stream's buffer limit is the listener's 32 KiB until the buffer filter raises it,
        # after Lua: Lua, which reads whole REST bodies to refuse unknown fields, needs the
        # body limit here (else 413 above 32 KiB).
        "request_body_buffer_limit": spec.limits.max_request_body_bytes,
    }
    if spec.cors_origins:
        virtual_host["typed_per_filter_config"] = {CORS_FILTER: typed(
            "envoy.extensions.filters.http.cors.v3.CorsPolicy",
            allow_origin_string_match=[{"exact": origin} for origin in spec.cors_origins],
            allow_methods="GET, POST, PUT, DELETE, OPTIONS",
            allow_headers=", ".join(CORS_ALLOW_HEADERS),
            expose_headers=", ".join(CORS_EXPOSE_HEADERS),
            max_age="600",
        )}
    return {"name": "conduit", "virtual_hosts": [virtual_host]}


def _method_route(method: MethodInfo, cluster: str, limits: EdgeLimits, caching: Mapping[str, str]) -> Config:
    """The route of one RPC's gRPC path: REST calls match it too, once transcoded."""
    action: Config = {"cluster": cluster}
    if method.streaming:
        action["priority"] = "HIGH"  # the cluster's stream budget (clusters.upstream_cluster)
        action["timeout"] = "0s"
        action["idle_timeout"] = seconds(limits.stream_idle_timeout_seconds)
    else:
        action["timeout"] = seconds(limits.route_timeout_seconds)
        # A gRPC client's shorter grpc-timeout is honoured; never a longer one.
        action["max_stream_duration"] = {"grpc_timeout_header_max": seconds(limits.route_timeout_seconds)}
    if not method.streaming:
        action["retry_policy"] = retry_policy(limits, idempotent=method.idempotent)
    route: Config = {"match": {"path": method.grpc_path}, "route": action}
    if method.client_streaming:
        # Buffering a client stream whole would break it; gRPC's own message limit applies.
        route["typed_per_filter_config"] = {BUFFER_FILTER: typed(
            "envoy.extensions.filters.http.buffer.v3.BufferPerRoute", disabled=True)}
    # Read by the Lua filters on the response: the route matched after transcoding is the RPC's.
    filter_metadata = route_metadata(caching, method.grpc_path)
    if method.success_status != 200:
        filter_metadata[LUA_FILTER] = {"success_status": method.success_status}
    if filter_metadata:
        route["metadata"] = {"filter_metadata": filter_metadata}
    return route


__all__ = ["EdgeLimits", "GatewaySpec", "HttpCachePolicy", "TracingSpec", "build_config", "write_config"]
