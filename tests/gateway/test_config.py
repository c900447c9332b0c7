"""The generated Envoy config: its shape, and Envoy's own verdict on it (`--mode validate`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import descriptor_pb2

from conduit_gateway.config import EdgeLimits, GatewaySpec, build_config, write_config
from conduit_gateway.descriptors import Access, HttpBinding, MethodInfo
from conduit_gateway.tracing import COLLECTOR_CLUSTER, TracingSpec
from tests.gateway.support import SigningKey, validate_config

Config = dict[str, Any]


def _listener(config: Config, name: str) -> Config:
    return next(item for item in config["static_resources"]["listeners"] if item["name"] == name)


def _manager(config: Config, name: str = "conduit_tls") -> Config:
    manager: Config = _listener(config, name)["filter_chains"][0]["filters"][0]["typed_config"]
    return manager


def _filter(config: Config, filter_name: str) -> Config:
    found: Config = next(f for f in _manager(config)["http_filters"] if f["name"] == filter_name)
    return found["typed_config"]  # type: ignore[no-any-return]


def _route(config: Config, path: str) -> Config:
    routes = _manager(config)["route_config"]["virtual_hosts"][0]["routes"]
    return next(r for r in routes if r["match"].get("path") == path)


@pytest.fixture(scope="module")
def config(spec: GatewaySpec) -> Config:
    return build_config(spec)


def test_filters_run_in_the_verified_order(config: Config) -> None:
    names = [f["name"].rsplit(".", 1)[-1] for f in _manager(config)["http_filters"]]

    assert names == ["header_mutation", "cors", "grpc_web", "http_cache", "lua", "jwt_authn", "buffer",
                     "grpc_json_transcoder", "router"]


def test_transcoder_serves_every_public_service_but_not_the_internal_one(config: Config) -> None:
    transcoder = _filter(config, "envoy.filters.http.grpc_json_transcoder")

    assert "conduit.users.v1.UserDirectoryService" not in transcoder["services"]
    assert "conduit.articles.v1.ArticlesService" in transcoder["services"]
    # Unknown paths are refused; unknown query parameters are ignored (RealWorld clients send them).
    assert transcoder["request_validation_options"] == {"reject_unknown_method": True}
    assert transcoder["ignore_unknown_query_parameters"] is True
    assert transcoder["query_param_unescape_plus"] is True  # a form's `q=a+b` is `a b`
    assert transcoder["print_options"]["always_print_primitive_fields"] is True


def test_internal_rpcs_have_no_route(config: Config) -> None:
    routes = _manager(config)["route_config"]["virtual_hosts"][0]["routes"]

    assert not [r for r in routes if "UserDirectoryService" in r["match"].get("path", "")]


def test_services_sharing_an_address_share_a_cluster(config: Config) -> None:
    users = {_route(config, p)["route"]["cluster"] for p in (
        "/conduit.users.v1.UsersService/Login", "/conduit.users.v1.AuthService/GetJwks")}
    articles = _route(config, "/conduit.articles.v1.TagsService/ListTags")["route"]["cluster"]

    assert users == {"users"}
    assert articles == "articles"


def test_idempotent_rpcs_retry_on_any_unanswered_call_and_writes_only_when_never_sent(config: Config) -> None:
    get = _route(config, "/conduit.articles.v1.ArticlesService/GetArticle")["route"]["retry_policy"]
    create = _route(config, "/conduit.articles.v1.ArticlesService/CreateArticle")["route"]["retry_policy"]

    assert set(get["retry_on"].split(",")) >= {"unavailable", "reset", "connect-failure", "refused-stream"}
    # A write that may have reached a service is never sent twice.
    assert set(create["retry_on"].split(",")) == {"connect-failure", "refused-stream"}
    assert "per_try_timeout" not in create  # a running write keeps the whole route timeout
    for policy in (get, create):
        assert policy["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"


def test_a_declared_idempotency_level_makes_a_post_idempotent() -> None:
    post = MethodInfo(service="s", name="m", access=Access.AUTHENTICATED, roles=(), scopes=(),
                      bindings=(HttpBinding("POST", "/x", "*", ""),), success_status=200,
                      client_streaming=False, server_streaming=False)
    assert not post.idempotent
    for level in (descriptor_pb2.MethodOptions.IDEMPOTENT, descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS):
        assert dataclasses.replace(post, idempotency_level=level).idempotent


def test_clusters_check_health_at_the_configured_interval_and_eject_failing_hosts(config: Config) -> None:
    articles = next(c for c in config["static_resources"]["clusters"] if c["name"] == "articles")
    assert articles["health_checks"][0]["interval"] == f"{EdgeLimits().health_check_interval_seconds:g}s"
    assert articles["health_checks"][0]["grpc_health_check"] == {}
    assert articles["outlier_detection"]["enforcing_consecutive_gateway_failure"] == 100
    assert articles["circuit_breakers"]["thresholds"][0]["retry_budget"]["budget_percent"]["value"] > 0


def test_streams_have_no_route_timeout_but_an_idle_timeout(config: Config) -> None:
    watch = _route(config, "/conduit.realtime.v1.RealtimeService/WatchArticles")["route"]
    unary = _route(config, "/conduit.articles.v1.TagsService/ListTags")["route"]

    assert watch["timeout"] == "0s"
    assert watch["idle_timeout"]
    assert unary["timeout"] != "0s"


def test_streams_have_a_budget_of_their_own_apart_from_unary_calls(config: Config) -> None:
    """Watches route at HIGH priority: the cluster's HIGH thresholds (10,240 concurrent streams) count
    them, the DEFAULT ones (1,024) unary calls; one never exhausts the other."""
    watch = _route(config, "/conduit.realtime.v1.RealtimeService/WatchArticles")["route"]
    unary = _route(config, "/conduit.articles.v1.TagsService/ListTags")["route"]
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == watch["cluster"])
    thresholds = {t["priority"]: t for t in cluster["circuit_breakers"]["thresholds"]}

    assert watch["priority"] == "HIGH"
    assert "priority" not in unary  # DEFAULT
    assert thresholds["HIGH"]["max_requests"] >= 10_000
    assert thresholds["DEFAULT"]["max_requests"] == 1024


def test_success_status_is_route_metadata_for_lua(config: Config) -> None:
    delete = _route(config, "/conduit.articles.v1.ArticlesService/DeleteArticle")
    create = _route(config, "/conduit.users.v1.UsersService/CreateUser")
    get = _route(config, "/conduit.articles.v1.ArticlesService/GetArticle")

    assert delete["metadata"]["filter_metadata"]["envoy.filters.http.lua"] == {"success_status": 204}
    assert create["metadata"]["filter_metadata"]["envoy.filters.http.lua"] == {"success_status": 201}
    assert "envoy.filters.http.lua" not in get["metadata"]["filter_metadata"]


def test_jwt_rules_require_tokens_on_authenticated_bindings_only(config: Config) -> None:
    rules = _filter(config, "envoy.filters.http.jwt_authn")["rules"]

    def rule_for(method: str, regex: str) -> Config:
        return next(r for r in rules if r["match"].get("safe_regex", {}).get("regex") == regex
                    and r["match"]["headers"][0]["string_match"]["exact"] == method)

    feed = rule_for("GET", "/api/articles/feed/?")
    by_slug = rule_for("GET", "/api/articles/[^/]+/?")
    token = rule_for("POST", "/api/oauth/token/?")
    assert feed["requires"] == {"provider_name": "conduit"}
    assert "requires_any" in by_slug["requires"]
    assert "requires_any" in token["requires"]  # HTTP Basic counts as no token
    assert rules.index(feed) < rules.index(by_slug)
    assert rules[-1]["match"] == {"prefix": "/"}
    assert "requires_any" in rules[-1]["requires"]


def test_remote_jwks_are_fetched_through_a_loopback_listener_transcoding_only_them(config: Config) -> None:
    provider = _filter(config, "envoy.filters.http.jwt_authn")["providers"]["conduit"]
    jwks_listener = _listener(config, "conduit_jwks")
    manager = jwks_listener["filter_chains"][0]["filters"][0]["typed_config"]

    assert provider["remote_jwks"]["http_uri"]["cluster"] == "conduit_jwks"
    assert jwks_listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 19902}
    assert [r["match"]["path"] for r in manager["route_config"]["virtual_hosts"][0]["routes"]] == [
        "/conduit.users.v1.AuthService/GetJwks"]


def test_local_jwks_need_no_jwks_listener(spec: GatewaySpec) -> None:
    config = build_config(dataclasses.replace(spec, local_jwks=SigningKey().jwks_json()))
    provider = _filter(config, "envoy.filters.http.jwt_authn")["providers"]["conduit"]

    assert "local_jwks" in provider
    assert "conduit_jwks" not in {item["name"] for item in config["static_resources"]["listeners"]}


def test_admin_listens_on_loopback_only(spec: GatewaySpec) -> None:
    config = build_config(dataclasses.replace(spec, listen_host="0.0.0.0"))

    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_hsts_is_sent_on_the_tls_listener_only(config: Config) -> None:
    def response_headers(listener: str) -> set[str]:
        mutation = next(f for f in _manager(config, listener)["http_filters"]
                        if f["name"] == "envoy.filters.http.header_mutation")
        mutations = mutation["typed_config"]["mutations"]["response_mutations"]
        return {m["append"]["header"]["key"] for m in mutations}

    assert "strict-transport-security" in response_headers("conduit_tls")
    assert "strict-transport-security" not in response_headers("conduit_http")


def test_a_public_service_without_upstream_is_refused(spec: GatewaySpec) -> None:
    upstreams = {k: v for k, v in spec.upstreams.items() if k != "conduit.articles.v1.TagsService"}

    with pytest.raises(ValueError, match="TagsService"):
        build_config(dataclasses.replace(spec, upstreams=upstreams))


def test_written_yaml_and_json_hold_the_same_config(spec: GatewaySpec, tmp_path: Path) -> None:
    as_yaml = yaml.safe_load(write_config(spec, tmp_path / "envoy.yaml").read_text())
    as_json = json.loads(write_config(spec, tmp_path / "envoy.json").read_text())

    assert as_yaml == as_json == build_config(spec)


@pytest.mark.parametrize("variant", ["tls-and-plain", "tls-only", "local-jwks", "traced"])
def test_envoy_accepts_the_generated_config(spec: GatewaySpec, tmp_path: Path, variant: str) -> None:
    if variant == "traced":
        spec = dataclasses.replace(spec, tracing=TracingSpec.from_endpoint("http://127.0.0.1:4317", 10))
    elif variant == "tls-only":
        spec = dataclasses.replace(spec, http_port=0)
    elif variant == "local-jwks":
        spec = dataclasses.replace(spec, local_jwks=SigningKey().jwks_json())
    config_path = write_config(spec, tmp_path / "envoy.yaml")
    listeners = yaml.safe_load(config_path.read_text())["static_resources"]["listeners"]

    result = validate_config(config_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert ("conduit_http" in {item["name"] for item in listeners}) is (variant != "tls-only")


def test_tracing_is_off_unless_asked_and_then_on_every_public_listener(spec: GatewaySpec) -> None:
    assert "tracing" not in _manager(build_config(spec))
    traced = build_config(dataclasses.replace(spec, tracing=TracingSpec.from_endpoint("collector:4317", 10)))
    for listener in ("conduit_tls", "conduit_http"):
        tracing = _manager(traced, listener)["tracing"]
        assert tracing["random_sampling"] == {"value": 10}
        assert tracing["provider"]["name"] == "envoy.tracers.opentelemetry"
    collector = next(c for c in traced["static_resources"]["clusters"] if c["name"] == COLLECTOR_CLUSTER)
    endpoint = collector["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert endpoint["socket_address"] == {"address": "collector", "port_value": 4317}
    with pytest.raises(ValueError, match="no host"):
        TracingSpec.from_endpoint("http://:4317")


def test_lua_gets_the_rest_bindings_and_the_body_buffer_limit(config: Config, spec: GatewaySpec) -> None:
    lua = _filter(config, "envoy.filters.http.lua")["default_source_code"]["inline_string"]
    virtual_host = _manager(config)["route_config"]["virtual_hosts"][0]
    first_mapper = _manager(config)["local_reply_config"]["mappers"][0]

    assert ('["conduit.users.v1.NewUser"] = {["email"] = "string", ["password"] = "string", '
            '["username"] = "string"}') in lua
    # Lua reads whole REST bodies before the buffer filter raises the stream's limit.
    assert virtual_host["request_body_buffer_limit"] == spec.limits.max_request_body_bytes
    # Lua's own 400s are RealWorld JSON already: passed through, not wrapped again.
    assert first_mapper["filter"]["metadata_filter"]["matcher"]["path"] == [{"key": "own_reply"}]
    assert first_mapper["body_format_override"]["text_format_source"] == {"inline_string": "%LOCAL_REPLY_BODY%"}


def test_envoy_warns_of_no_deprecated_field(spec: GatewaySpec, tmp_path: Path) -> None:
    # `make run` shows Envoy's warnings: a newcomer must not see deprecation notices (text_format
    # became text_format_source).
    result = validate_config(write_config(spec, tmp_path / "envoy.yaml"), log_level="warning")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "deprecated" not in (result.stdout + result.stderr).lower()
