"""The /graphql route of the generated config: WebSocket upgrades, the REST filters off, Envoy accepts it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from conduit_gateway.config import GatewaySpec, build_config, write_config
from conduit_gateway.graphql import DISABLED_FILTERS, GRAPHQL_CLUSTER
from tests.gateway.support import validate_config


def _tls_listener(config: dict[str, Any]) -> dict[str, Any]:
    listener = next(item for item in config["static_resources"]["listeners"] if item["name"] == "conduit_tls")
    manager: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return manager


def test_without_a_graphql_upstream_there_is_no_route_and_no_upgrade(spec: GatewaySpec) -> None:
    manager = _tls_listener(build_config(spec))
    assert "upgrade_configs" not in manager
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert all(route["match"].get("path") != "/graphql" for route in routes)


def test_graphql_routes_upgrade_websockets_and_skip_the_rest_filters(spec: GatewaySpec, tmp_path: Path) -> None:
    with_graphql = dataclasses.replace(spec, graphql_upstream=("127.0.0.1", 18090))
    config = build_config(with_graphql)
    manager = _tls_listener(config)
    assert manager["upgrade_configs"] == [{"upgrade_type": "websocket", "enabled": False}]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    exact, below = routes[0], routes[1]
    assert exact["match"] == {"path": "/graphql"}
    assert below["match"] == {"prefix": "/graphql/"}
    for route in (exact, below):
        assert route["route"]["cluster"] == GRAPHQL_CLUSTER
        assert route["route"]["upgrade_configs"] == [{"upgrade_type": "websocket", "enabled": True}]
        assert route["route"]["timeout"] == "0s"
        assert set(route["typed_per_filter_config"]) == set(DISABLED_FILTERS)
        assert "envoy.filters.http.jwt_authn" not in route["typed_per_filter_config"]
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == GRAPHQL_CLUSTER)
    assert cluster["health_checks"][0]["http_health_check"] == {"path": "/healthz"}
    assert "typed_extension_protocol_options" not in cluster  # HTTP/1.1: WebSocket upgrades need it
    limit = cluster["circuit_breakers"]["thresholds"][0]["max_connections"]
    assert limit == with_graphql.limits.max_graphql_connections  # one per open WebSocket
    assert exact["route"]["idle_timeout"] == f"{with_graphql.limits.graphql_idle_timeout_seconds:g}s"
    result = validate_config(write_config(with_graphql, tmp_path / "envoy.yaml"))
    assert result.returncode == 0, result.stderr
