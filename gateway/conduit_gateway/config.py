"""Generate the Envoy bootstrap of the edge gateway from the contract.

One HTTP filter chain serves REST (transcoded to gRPC), native gRPC and gRPC-Web, on a TLS
listener (ALPN h2, http/1.1) and optionally a plain one:

    header_mutation -> cors -> grpc_web -> lua -> jwt_authn -> grpc_json_transcoder -> router

Everything per RPC comes from the descriptor set (see `conduit_gateway.descriptors`): the
transcoded services, one route per public RPC (timeout, retries, success status), the JWT
rule of each REST binding. Services whose RPCs are all ACCESS_INTERNAL get no route.

JWKS: production uses `remote_jwks` fetched from the users service through the gateway
itself: a cluster pointing at an Envoy *internal listener* (no TCP port, unreachable from
outside) whose only route transcodes `GET /api/.well-known/jwks.json` to the JWKS RPC on the
upstream serving it. This reuses the transcoder instead of a hand-written HTTP endpoint, and
it never depends on the public listeners or on plain HTTP being enabled. Tests may inline a
JWKS instead (`GatewaySpec.local_jwks`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from conduit_gateway.descriptors import Access, MethodInfo, ServiceInfo, services_from_descriptors
from conduit_gateway.tls import TlsMaterial

Config = dict[str, Any]

JWT_PROVIDER = "conduit"
UNROUTED_CLUSTER = "conduit_unrouted"
JWKS_PATH = "/api/.well-known/jwks.json"
JWKS_LISTENER = "conduit_jwks_internal"
JWKS_CLUSTER = "conduit_jwks"
LUA_FILTER = "envoy.filters.http.lua"
# Lua writes here: `rest` on REST requests, `grpc_status` of REST errors (for the access log).
METADATA_NAMESPACE = "conduit.gateway"
SECURITY_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("referrer-policy", "no-referrer"),
)
HSTS = ("strict-transport-security", "max-age=31536000; includeSubDomains")
CORS_ALLOW_HEADERS = ("authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout",
                      "traceparent", "tracestate", "x-request-id")
CORS_EXPOSE_HEADERS = ("grpc-status", "grpc-message", "retry-after", "x-request-id")


@dataclass(frozen=True)
class EdgeLimits:
    """Limits and timeouts of the edge (Envoy's edge-proxy best practices, tuned for the API)."""

    max_request_body_bytes: int = 1024 * 1024
    max_response_body_bytes: int = 4 * 1024 * 1024
    max_request_headers_kb: int = 60
    max_headers_count: int = 100
    max_concurrent_streams: int = 100
    max_downstream_connections: int = 10_000
    connection_buffer_bytes: int = 32 * 1024
    request_headers_timeout_seconds: float = 10
    stream_idle_timeout_seconds: float = 300
    connection_idle_timeout_seconds: float = 300
    # Unary RPCs; streaming RPCs have no total timeout, only `stream_idle_timeout_seconds`.
    route_timeout_seconds: float = 15
    upstream_connect_timeout_seconds: float = 1
    health_check_interval_seconds: float = 5
    retries: int = 2


@dataclass(frozen=True)
class GatewaySpec:
    """Everything the generated config depends on.

    `upstreams` maps each public gRPC service (`conduit.articles.v1.ArticlesService`) to the
    `(host, port)` of the process serving it; services sharing an address share a cluster.
    `jwks_upstream` is where the JWKS RPC is served (default: the upstream of its service);
    `local_jwks` (a JWKS JSON document) replaces the remote fetch, for tests.
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
    cors_origins: Sequence[str] = ()
    jwks_upstream: tuple[str, int] | None = None
    local_jwks: str | None = None
    limits: EdgeLimits = field(default_factory=EdgeLimits)


def build_config(spec: GatewaySpec) -> Config:
    """The Envoy bootstrap (as plain JSON-able data) for `spec`."""
    services = services_from_descriptors(spec.descriptor_path)
    public = [s for s in services if not s.internal]
    missing = sorted(s.name for s in public if s.name not in spec.upstreams)
    if missing:
        raise ValueError(f"no upstream for public services: {', '.join(missing)}")
    clusters = _cluster_names(spec.upstreams, public)
    limits = spec.limits

    listeners = [_listener("conduit_tls", spec, spec.tls_port, public, clusters, tls=True)]
    if spec.http_port:
        listeners.append(_listener("conduit_http", spec, spec.http_port, public, clusters, tls=False))
    cluster_configs = [_upstream_cluster(name, address, limits) for address, name in clusters.items()]
    cluster_configs.append({
        "name": UNROUTED_CLUSTER, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": UNROUTED_CLUSTER, "endpoints": []},
    })
    config: Config = {
        "node": {"id": "conduit-gateway", "cluster": "conduit-gateway"},
        "admin": {"address": _address("127.0.0.1", spec.admin_port)},
        "overload_manager": {"resource_monitors": [{
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": _typed(
                "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                max_active_downstream_connections=limits.max_downstream_connections,
            ),
        }]},
        "static_resources": {"listeners": listeners, "clusters": cluster_configs},
    }
    if spec.local_jwks is None:
        jwks_method = _jwks_method(public)
        target = spec.jwks_upstream or spec.upstreams[jwks_method.service]
        jwks_upstream = clusters.get((target[0], target[1]))
        if jwks_upstream is None:
            jwks_upstream = "jwks_upstream"
            cluster_configs.append(_upstream_cluster(jwks_upstream, target, limits))
        config["bootstrap_extensions"] = [{
            "name": "envoy.bootstrap.internal_listener",
            "typed_config": _typed("envoy.extensions.bootstrap.internal_listener.v3.InternalListener"),
        }]
        listeners.append(_jwks_listener(spec, jwks_method, jwks_upstream))
        cluster_configs.append(_jwks_cluster())
    return config


def write_config(spec: GatewaySpec, path: Path) -> Path:
    """Write the config for `spec` to `path`: JSON for a `.json` suffix, YAML otherwise."""
    config = build_config(spec)
    if path.suffix == ".json":
        text = json.dumps(config, indent=2)
    else:
        text = yaml.safe_dump(config, sort_keys=False, width=120)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def lua_source() -> str:
    """The Lua script shaping REST responses (see `rest_responses.lua`)."""
    return resources.files("conduit_gateway").joinpath("rest_responses.lua").read_text(encoding="utf-8")


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _address(host: str, port: int) -> Config:
    return {"socket_address": {"address": host, "port_value": port}}


def _typed(type_name: str, **fields: Any) -> Config:
    return {"@type": f"type.googleapis.com/{type_name}", **fields}


def _cluster_names(upstreams: Mapping[str, tuple[str, int]],
                   public: Sequence[ServiceInfo]) -> dict[tuple[str, int], str]:
    """One cluster per address, named after the packages it serves (`users`, `articles`)."""
    wanted = {s.name for s in public}
    packages: dict[tuple[str, int], set[str]] = {}
    for service, address in upstreams.items():
        if service in wanted:
            parts = service.split(".")
            packages.setdefault(tuple(address), set()).add(parts[-3] if len(parts) >= 3 else parts[0])
    names: dict[tuple[str, int], str] = {}
    for address, pkgs in sorted(packages.items()):
        name = "_".join(sorted(pkgs))
        if name in names.values():
            name = f"{name}_{address[1]}"
        names[(str(address[0]), int(address[1]))] = name
    return names


def _jwks_method(public: Sequence[ServiceInfo]) -> MethodInfo:
    for service in public:
        for method in service.public_methods:
            if any(b.method == "GET" and b.path_template == JWKS_PATH for b in method.bindings):
                return method
    raise ValueError(f"no RPC is bound to GET {JWKS_PATH}; set GatewaySpec.local_jwks")


# --- listeners -----------------------------------------------------------------------------


def _listener(name: str, spec: GatewaySpec, port: int, public: Sequence[ServiceInfo],
              clusters: Mapping[tuple[str, int], str], *, tls: bool) -> Config:
    chain: Config = {"filters": [{
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": _connection_manager(name, spec, public, clusters, tls=tls),
    }]}
    if tls:
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": _typed(
                "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                common_tls_context={
                    "alpn_protocols": ["h2", "http/1.1"],
                    "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                    "tls_certificates": [{
                        "certificate_chain": {"filename": str(spec.tls.server_cert)},
                        "private_key": {"filename": str(spec.tls.server_key)},
                    }],
                },
            ),
        }
    return {
        "name": name,
        "address": _address(spec.listen_host, port),
        "per_connection_buffer_limit_bytes": spec.limits.connection_buffer_bytes,
        "filter_chains": [chain],
    }


def _connection_manager(name: str, spec: GatewaySpec, public: Sequence[ServiceInfo],
                        clusters: Mapping[tuple[str, int], str], *, tls: bool) -> Config:
    limits = spec.limits
    security_headers = [*SECURITY_HEADERS, HSTS] if tls else list(SECURITY_HEADERS)
    return _typed(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix=name,
        codec_type="AUTO",
        use_remote_address=True,
        normalize_path=True,
        merge_slashes=True,
        path_with_escaped_slashes_action="REJECT_REQUEST",
        server_name="conduit",
        generate_request_id=True,
        request_headers_timeout=_seconds(limits.request_headers_timeout_seconds),
        stream_idle_timeout=_seconds(limits.stream_idle_timeout_seconds),
        max_request_headers_kb=limits.max_request_headers_kb,
        common_http_protocol_options={
            "idle_timeout": _seconds(limits.connection_idle_timeout_seconds),
            "max_headers_count": limits.max_headers_count,
            "headers_with_underscores_action": "REJECT_REQUEST",
        },
        http2_protocol_options={
            "max_concurrent_streams": limits.max_concurrent_streams,
            "initial_stream_window_size": 65536,
            "initial_connection_window_size": 1048576,
        },
        access_log=[_access_log()],
        local_reply_config=_local_reply_config(),
        route_config=_route_config(spec, public, clusters),
        http_filters=[
            _header_mutation(security_headers),
            {"name": "envoy.filters.http.cors",
             "typed_config": _typed("envoy.extensions.filters.http.cors.v3.Cors")},
            {"name": "envoy.filters.http.grpc_web",
             "typed_config": _typed("envoy.extensions.filters.http.grpc_web.v3.GrpcWeb")},
            {"name": LUA_FILTER, "typed_config": _typed(
                "envoy.extensions.filters.http.lua.v3.Lua",
                default_source_code={"inline_string": lua_source()})},
            _jwt_authn(spec, public),
            # The transcoder's max_request_body_size is not enforced on streamed JSON (observed:
            # 2 MiB passed); the buffer filter is, and is disabled on client-streaming routes.
            {"name": "envoy.filters.http.buffer", "typed_config": _typed(
                "envoy.extensions.filters.http.buffer.v3.Buffer",
                max_request_bytes=limits.max_request_body_bytes)},
            _transcoder(spec, [s.name for s in public if any(m.bindings for m in s.methods)]),
            _router(),
        ],
    )


def _header_mutation(headers: Sequence[tuple[str, str]]) -> Config:
    # First in the chain, so local replies of every later filter (CORS preflights, 404s) get them.
    return {"name": "envoy.filters.http.header_mutation", "typed_config": _typed(
        "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
        mutations={"response_mutations": [
            {"append": {"header": {"key": key, "value": value},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}
            for key, value in headers
        ]},
    )}


def _router() -> Config:
    return {"name": "envoy.filters.http.router",
            "typed_config": _typed("envoy.extensions.filters.http.router.v3.Router")}


def _transcoder(spec: GatewaySpec, services: Sequence[str]) -> Config:
    return {"name": "envoy.filters.http.grpc_json_transcoder", "typed_config": _typed(
        "envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
        proto_descriptor=str(spec.descriptor_path),
        services=list(services),
        print_options={
            "always_print_primitive_fields": True,
            "preserve_proto_field_names": False,
            "stream_sse_style_delimited": True,
        },
        # Without these, unknown paths and parameters reach the service untranscoded (503).
        request_validation_options={"reject_unknown_method": True,
                                    "reject_unknown_query_parameters": True},
        convert_grpc_status=False,
        max_request_body_size=spec.limits.max_request_body_bytes,
        max_response_body_size=spec.limits.max_response_body_bytes,
    )}


def _jwt_authn(spec: GatewaySpec, public: Sequence[ServiceInfo]) -> Config:
    provider: Config = {
        "issuer": spec.jwt_issuer,
        "audiences": [spec.jwt_audience],
        "from_headers": [{"name": "Authorization", "value_prefix": "Token "},
                         {"name": "Authorization", "value_prefix": "Bearer "}],
        # The services verify the token again and need it.
        "forward": True,
    }
    if spec.local_jwks is not None:
        provider["local_jwks"] = {"inline_string": spec.local_jwks}
    else:
        provider["remote_jwks"] = {
            "http_uri": {"uri": f"http://jwks.internal{JWKS_PATH}", "cluster": JWKS_CLUSTER,
                         "timeout": "2s"},
            "cache_duration": "300s",
            # Fetched in the background at start and on expiry; a failed fetch is retried soon.
            "async_fetch": {"failed_refetch_duration": "2s"},
            "retry_policy": {"num_retries": 3},
        }
    return {"name": "envoy.filters.http.jwt_authn", "typed_config": _typed(
        "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        providers={JWT_PROVIDER: provider},
        rules=_jwt_rules(public),
        bypass_cors_preflight=True,
    )}


def _jwt_rules(public: Sequence[ServiceInfo]) -> list[Config]:
    """One rule per REST binding, most specific template first, then a catch-all.

    jwt_authn runs before the transcoder, so the rules match REST paths. A missing token is
    fine for ACCESS_ANONYMOUS bindings and native gRPC (services enforce their rules); a
    present but invalid one is always a 401.
    """
    required = {"provider_name": JWT_PROVIDER}
    optional = {"requires_any": {"requirements": [required, {"allow_missing": {}}]}}
    bindings = [(b, m) for s in public for m in s.public_methods for b in m.bindings]
    bindings.sort(key=lambda pair: pair[0].specificity)
    rules: list[Config] = [{
        "match": {"safe_regex": {"regex": binding.path_regex},
                  "headers": [{"name": ":method", "string_match": {"exact": binding.method}}]},
        "requires": required if method.access is Access.AUTHENTICATED else optional,
    } for binding, method in bindings]
    rules.append({"match": {"prefix": "/"}, "requires": optional})
    return rules


def _local_reply_config() -> Config:
    """Envoy's own replies to REST calls as RealWorld JSON; gRPC callers keep grpc-status."""
    rest = {"or_filter": {"filters": [
        # Set by the transcoder once it has rewritten a REST request to gRPC.
        {"header_filter": {"header": {"name": "x-envoy-original-path", "present_match": True}}},
        {"header_filter": {"header": {"name": "content-type", "invert_match": True,
                                      "treat_missing_header_as_empty": True,
                                      "string_match": {"prefix": "application/grpc"}}}},
    ]}}
    json_body = {"json_format": {"errors": {"body": ["%LOCAL_REPLY_BODY%"]}},
                 "content_type": "application/json"}
    early_bad_request = {"and_filter": {"filters": [
        rest,
        {"status_code_filter": {"comparison": {"op": "EQ", "value": {"default_value": 400,
                                                                      "runtime_key": "conduit.none"}}}},
        # Rejected by the connection manager before a request id is even generated.
        {"header_filter": {"header": {"name": "x-request-id", "present_match": False}}},
    ]}}
    return {"mappers": [
        # path_with_escaped_slashes_action (`%2F`) rejects with an empty body.
        {"filter": early_bad_request, "body": {"inline_string": "Bad Request"},
         "body_format_override": json_body},
        {"filter": rest, "body_format_override": json_body},
    ]}


def _access_log() -> Config:
    return {"name": "envoy.access_loggers.stdout", "typed_config": _typed(
        "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
        log_format={"json_format": {
            "time": "%START_TIME%",
            "method": "%REQ(X-ENVOY-ORIGINAL-METHOD?:METHOD)%",
            "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
            "rpc": "%REQ(:PATH)%",
            "protocol": "%PROTOCOL%",
            "status": "%RESPONSE_CODE%",
            # What the client saw (derived from the HTTP status for REST) ...
            "grpc_status": "%GRPC_STATUS_NUMBER%",
            # ... and, for REST errors, what the service answered (recorded by Lua).
            "upstream_grpc_status": f"%DYNAMIC_METADATA({METADATA_NAMESPACE}:grpc_status)%",
            "response_flags": "%RESPONSE_FLAGS%",
            "details": "%RESPONSE_CODE_DETAILS%",
            "duration_ms": "%DURATION%",
            "upstream_host": "%UPSTREAM_HOST%",
            "upstream_cluster": "%UPSTREAM_CLUSTER%",
            "request_id": "%REQ(X-REQUEST-ID)%",
            "traceparent": "%REQ(TRACEPARENT)%",
            "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
            "user_agent": "%REQ(USER-AGENT)%",
            "bytes_received": "%BYTES_RECEIVED%",
            "bytes_sent": "%BYTES_SENT%",
        }},
    )}


# --- routes --------------------------------------------------------------------------------


def _route_config(spec: GatewaySpec, public: Sequence[ServiceInfo],
                  clusters: Mapping[tuple[str, int], str]) -> Config:
    routes = [_method_route(m, clusters[tuple(spec.upstreams[s.name])], spec.limits)  # type: ignore[index]
              for s in public for m in s.public_methods]
    routes += [
        # Any other gRPC path, internal RPCs included: 404 (UNIMPLEMENTED to a gRPC client).
        {"match": {"prefix": "/", "headers": [
            {"name": "content-type", "string_match": {"prefix": "application/grpc"}}]},
         "direct_response": {"status": 404, "body": {"inline_string": "Not Found"}}},
        # REST paths match this before transcoding. It must be a route to a cluster: CORS finds
        # no policy on a direct response. The transcoder rejects every REST call it cannot map,
        # so nothing reaches the router through it; if anything did, the empty cluster is a 503.
        {"match": {"prefix": "/"}, "route": {"cluster": UNROUTED_CLUSTER}},
    ]
    virtual_host: Config = {"name": "conduit", "domains": ["*"], "routes": routes}
    if spec.cors_origins:
        virtual_host["typed_per_filter_config"] = {"envoy.filters.http.cors": _typed(
            "envoy.extensions.filters.http.cors.v3.CorsPolicy",
            allow_origin_string_match=[{"exact": origin} for origin in spec.cors_origins],
            allow_methods="GET, POST, PUT, DELETE, OPTIONS",
            allow_headers=", ".join(CORS_ALLOW_HEADERS),
            expose_headers=", ".join(CORS_EXPOSE_HEADERS),
            max_age="600",
        )}
    return {"name": "conduit", "virtual_hosts": [virtual_host]}


def _method_route(method: MethodInfo, cluster: str, limits: EdgeLimits) -> Config:
    action: Config = {"cluster": cluster}
    if method.streaming:
        action["timeout"] = "0s"
        action["idle_timeout"] = _seconds(limits.stream_idle_timeout_seconds)
    else:
        action["timeout"] = _seconds(limits.route_timeout_seconds)
        # A gRPC client's shorter grpc-timeout is honoured; never a longer one.
        action["max_stream_duration"] = {
            "grpc_timeout_header_max": _seconds(limits.route_timeout_seconds)}
    if method.idempotent and not method.streaming:
        action["retry_policy"] = {
            "retry_on": "unavailable,connect-failure,refused-stream",
            "num_retries": limits.retries,
            "per_try_timeout": _seconds(limits.route_timeout_seconds / (limits.retries + 1)),
            "retry_back_off": {"base_interval": "0.05s", "max_interval": "0.5s"},
        }
    route: Config = {"match": {"path": method.grpc_path}, "route": action}
    if method.client_streaming:
        # Buffering a client stream whole would break it; gRPC's own message limit applies.
        route["typed_per_filter_config"] = {"envoy.filters.http.buffer": _typed(
            "envoy.extensions.filters.http.buffer.v3.BufferPerRoute", disabled=True)}
    if method.success_status != 200:
        route["metadata"] = {"filter_metadata": {LUA_FILTER: {"success_status": method.success_status}}}
    return route


# --- clusters ------------------------------------------------------------------------------


def _upstream_cluster(name: str, address: tuple[str, int], limits: EdgeLimits) -> Config:
    host, port = address
    return {
        "name": name,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": _seconds(limits.upstream_connect_timeout_seconds),
        "per_connection_buffer_limit_bytes": limits.connection_buffer_bytes,
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _typed(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            explicit_http_config={"http2_protocol_options": {
                "connection_keepalive": {"interval": "30s", "timeout": "5s"},
            }},
        )},
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": _address(host, port)}}]}]},
        "health_checks": [{
            "timeout": "1s",
            "interval": _seconds(limits.health_check_interval_seconds),
            # Without it the first check of an idle cluster waits up to 60 s.
            "no_traffic_interval": _seconds(limits.health_check_interval_seconds),
            "unhealthy_threshold": 2,
            "healthy_threshold": 1,
            "grpc_health_check": {},
        }],
        # One host per cluster: panic routing would keep sending to it; answer 503 at once.
        "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
        "circuit_breakers": {"thresholds": [{
            "priority": "DEFAULT",
            "max_connections": 1024,
            "max_pending_requests": 1024,
            "max_requests": 1024,
            "retry_budget": {"budget_percent": {"value": 20.0}, "min_retry_concurrency": 3},
        }]},
        "outlier_detection": {
            # Only transport-level failures eject: a service's own 5xx answers do not.
            "consecutive_5xx": 5,
            "enforcing_consecutive_5xx": 0,
            "consecutive_gateway_failure": 5,
            "enforcing_consecutive_gateway_failure": 100,
            "interval": "5s",
            "base_ejection_time": "5s",
            "max_ejection_percent": 100,
        },
    }


def _jwks_listener(spec: GatewaySpec, method: MethodInfo, cluster: str) -> Config:
    """An internal listener transcoding only the JWKS RPC, for jwt_authn's remote fetch."""
    manager = _typed(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix="jwks",
        route_config={"name": "jwks", "virtual_hosts": [{"name": "jwks", "domains": ["*"], "routes": [
            {"match": {"path": method.grpc_path}, "route": {"cluster": cluster, "timeout": "2s"}},
        ]}]},
        http_filters=[_transcoder(spec, [method.service]), _router()],
    )
    return {
        "name": JWKS_LISTENER,
        "internal_listener": {},
        "filter_chains": [{"filters": [
            {"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}],
    }


def _jwks_cluster() -> Config:
    return {
        "name": JWKS_CLUSTER,
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": JWKS_CLUSTER, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"envoy_internal_address": {"server_listener_name": JWKS_LISTENER}}}}]}]},
    }


__all__ = ["EdgeLimits", "GatewaySpec", "build_config", "lua_source", "services_from_descriptors",
           "write_config"]
