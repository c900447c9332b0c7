"""The HTTP filters of the gateway and the connection manager's local replies and access log.

Each function returns one piece of Envoy config as plain data; `conduit_gateway.config`
assembles them. Why each setting is what it is: the team's verified Envoy facts
(GATEWAY-FACTS.md) and docs/decisions/0002-rest-errors.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from conduit_gateway.body_fields import RestBindings
from conduit_gateway.descriptors import Access, ServiceInfo
from conduit_gateway.http_cache import HttpCachePolicy, http_cache_filter
from conduit_gateway.limits import EdgeLimits

Config = dict[str, Any]

JWT_PROVIDER = "conduit"
JWKS_PATH = "/api/.well-known/jwks.json"
JWKS_CLUSTER = "conduit_jwks"
LUA_FILTER = "envoy.filters.http.lua"
BUFFER_FILTER = "envoy.filters.http.buffer"
CORS_FILTER = "envoy.filters.http.cors"
# Lua writes here: `rest` on REST requests, `grpc_status` of REST answers (for the access log).
METADATA_NAMESPACE = "conduit.gateway"
SECURITY_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("referrer-policy", "no-referrer"),
)
HSTS = ("strict-transport-security", "max-age=31536000; includeSubDomains")


def typed(type_name: str, **fields: Any) -> Config:
    """A `typed_config`: `@type` plus fields."""
    return {"@type": f"type.googleapis.com/{type_name}", **fields}


def lua_source(bindings: RestBindings | None = None) -> str:
    """The Lua script checking REST requests and shaping REST responses (`rest_responses.lua`),
    with the REST bindings and their body shapes generated into it (none without `bindings`)."""
    source = resources.files("conduit_gateway").joinpath("rest_responses.lua").read_text(encoding="utf-8")
    return bindings.render_into(source) if bindings is not None else source


def edge_filters(*, descriptor_path: Path, public: Sequence[ServiceInfo], bindings: RestBindings,
                 issuer: str, audience: str, local_jwks: str | None, limits: EdgeLimits,
                 tls: bool, http_cache: HttpCachePolicy | None = None) -> list[Config]:
    """The filter chain of the public listeners, in the order GATEWAY-FACTS verified."""
    return [
        security_headers(tls=tls),
        {"name": CORS_FILTER, "typed_config": typed("envoy.extensions.filters.http.cors.v3.Cors")},
        {"name": "envoy.filters.http.grpc_web",
         "typed_config": typed("envoy.extensions.filters.http.grpc_web.v3.GrpcWeb")},
        # Before the REST filter: on the way back it sees the final status and body.
        http_cache_filter(http_cache or HttpCachePolicy()),
        {"name": LUA_FILTER, "typed_config": typed(
            "envoy.extensions.filters.http.lua.v3.Lua",
            default_source_code={"inline_string": lua_source(bindings)})},
        jwt_authn(public, issuer=issuer, audience=audience, local_jwks=local_jwks),
        # The transcoder's max_request_body_size is not enforced on streamed JSON (observed:
        # 2 MiB passed); the buffer filter is, and is disabled on client-streaming routes.
        {"name": BUFFER_FILTER, "typed_config": typed("envoy.extensions.filters.http.buffer.v3.Buffer",
                                                      max_request_bytes=limits.max_request_body_bytes)},
        transcoder(descriptor_path, [s.name for s in public], limits),
        router(),
    ]


def security_headers(*, tls: bool) -> Config:
    """Security headers on every response; first in the chain, so that the local replies of
    every later filter (CORS preflights, 404s, 413s) get them too. HSTS on TLS only."""
    headers = [*SECURITY_HEADERS, HSTS] if tls else list(SECURITY_HEADERS)
    return {"name": "envoy.filters.http.header_mutation", "typed_config": typed(
        "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
        mutations={"response_mutations": [
            {"append": {"header": {"key": key, "value": value},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}
            for key, value in headers
        ]},
    )}


def router() -> Config:
    # No x-envoy-* response headers (upstream timings) leak to clients.
    return {"name": "envoy.filters.http.router", "typed_config": typed(
        "envoy.extensions.filters.http.router.v3.Router", suppress_envoy_headers=True)}


def transcoder(descriptor_path: Path, services: Sequence[str], limits: EdgeLimits) -> Config:
    return {"name": "envoy.filters.http.grpc_json_transcoder", "typed_config": typed(
        "envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
        proto_descriptor=str(descriptor_path),
        services=list(services),
        print_options={
            "always_print_primitive_fields": True,
            "preserve_proto_field_names": False,
            "stream_sse_style_delimited": True,
        },
        # Unknown paths are refused (else they reach the service untranscoded: 503); unknown query
        # parameters are ignored, as RealWorld clients send extra ones (`?_=123`).
        request_validation_options={"reject_unknown_method": True},
        ignore_unknown_query_parameters=True,
        # `+` in a query string is a space, as HTML forms send it (`?q=dragon+keeper`); a literal plus
        # arrives as %2B. Off, Envoy passed `dragon+keeper` on as one word and the search found nothing.
        query_param_unescape_plus=True,
        # Off: a unary error stays a trailers-only response whose grpc-status Lua reads from the
        # headers (with it on, the status is moved into a JSON body Lua cannot act on in time).
        convert_grpc_status=False,
        max_request_body_size=limits.max_request_body_bytes,
        max_response_body_size=limits.max_response_body_bytes,
    )}


def jwt_authn(public: Sequence[ServiceInfo], *, issuer: str, audience: str, local_jwks: str | None) -> Config:
    provider: Config = {
        "issuer": issuer,
        "audiences": [audience],
        "from_headers": [{"name": "Authorization", "value_prefix": "Token "},
                         {"name": "Authorization", "value_prefix": "Bearer "}],
        # The services verify the token again and need it.
        "forward": True,
    }
    if local_jwks is not None:
        provider["local_jwks"] = {"inline_string": local_jwks}
    else:
        provider["remote_jwks"] = {
            "http_uri": {"uri": f"http://jwks.internal{JWKS_PATH}", "cluster": JWKS_CLUSTER, "timeout": "2s"},
            "cache_duration": "300s",
            # Fetched in the background at start and on expiry; a failed fetch is retried after 1 s.
            # fast_listener: listeners must not wait for a fetch that they themselves serve.
            "async_fetch": {"fast_listener": True, "failed_refetch_duration": "1s"},
            "retry_policy": {"num_retries": 3,
                             "retry_back_off": {"base_interval": "0.2s", "max_interval": "1s"}},
        }
    return {"name": "envoy.filters.http.jwt_authn", "typed_config": typed(
        "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        providers={JWT_PROVIDER: provider},
        rules=jwt_rules(public),
        bypass_cors_preflight=True,
    )}


def jwt_rules(public: Sequence[ServiceInfo]) -> list[Config]:
    """One rule per REST binding, most specific template first, then a catch-all.

    jwt_authn runs before the transcoder, so the rules match REST paths and methods. A missing
    token is fine for ACCESS_ANONYMOUS bindings and for native gRPC (the services enforce their
    rules); a token that is present but invalid is always refused. `Authorization: Basic`
    (the OAuth2 token endpoint) has neither prefix, so it counts as no token.
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


def local_reply_config() -> Config:
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

    def status_is(code: int) -> Config:
        # The runtime key is required by the API; nothing sets it.
        return {"status_code_filter": {"comparison": {
            "op": "EQ", "value": {"default_value": code, "runtime_key": "conduit.gateway.unused"}}}}

    early_bad_request = {"and_filter": {"filters": [
        rest, status_is(400),
        # Rejected by the connection manager before a request id was even generated.
        {"header_filter": {"header": {"name": "x-request-id", "present_match": False}}},
    ]}}
    # Lua's own answers (405, 403, bodies it refuses) are RealWorld JSON already.
    lua_reply = {"metadata_filter": {"matcher": {
        "filter": METADATA_NAMESPACE, "path": [{"key": "own_reply"}], "value": {"bool_match": True}},
        "match_if_key_not_found": False}}
    # The transcoder's own 400s and 404s carry parser output and protobuf type names (`Could not
    # find field "x" in the type "conduit.…"`, `Could not resolve /api/x to a method.`): REST
    # clients get a plain text instead. Lua catches the common body errors first, by field.
    own_text = {"text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"},
                "content_type": "application/json"}
    return {"mappers": [
        {"filter": lua_reply, "body_format_override": own_text},
        # path_with_escaped_slashes_action (`%2F`) rejects with an empty body.
        {"filter": early_bad_request, "body": {"inline_string": "Bad Request"},
         "body_format_override": json_body},
        {"filter": {"and_filter": {"filters": [rest, status_is(400)]}},
         "body": {"inline_string": "is invalid"}, "body_format_override": json_body},
        {"filter": {"and_filter": {"filters": [rest, status_is(404)]}},
         "body": {"inline_string": "not found"}, "body_format_override": json_body},
        {"filter": rest, "body_format_override": json_body},
    ]}


def access_log() -> Config:
    """One JSON line per request on stdout."""
    return {"name": "envoy.access_loggers.stdout", "typed_config": typed(
        "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
        log_format={"json_format": {
            "time": "%START_TIME%",
            "method": "%REQ(X-ENVOY-ORIGINAL-METHOD?:METHOD)%",
            "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
            "rpc": "%REQ(:PATH)%",
            "protocol": "%PROTOCOL%",
            "status": "%RESPONSE_CODE%",
            # Of gRPC and gRPC-Web calls (meaningless for REST: Lua strips grpc-status) ...
            "grpc_status": "%GRPC_STATUS_NUMBER%",
            # ... and of REST calls: what the service answered behind the HTTP status (from Lua).
            "rest_grpc_status": f"%DYNAMIC_METADATA({METADATA_NAMESPACE}:grpc_status)%",
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


__all__ = [
    "BUFFER_FILTER", "CORS_FILTER", "HSTS", "JWKS_CLUSTER", "JWKS_PATH", "JWT_PROVIDER", "LUA_FILTER",
    "METADATA_NAMESPACE", "SECURITY_HEADERS", "access_log", "edge_filters", "jwt_authn", "jwt_rules",
    "local_reply_config", "lua_source", "router", "security_headers", "transcoder", "typed",
]
