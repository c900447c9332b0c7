"""Addresses for many hosts: where a service binds is not where it is reached; a target may name
every replica (a DNS name or an address list) and Envoy and the gRPC clients balance over all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conduit_gateway.tls import ensure_local_tls
from conduit_server.deploy import (
    deployed_gateway_spec,
    image_gateway_config,
    settings_from_env_file,
    settings_from_variables,
)
from conduit_server.edge import gateway_spec
from conduit_server.runtime.settings import Settings, split_address
from tests.gateway.support import validate_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG_ENV = ROOT / "deploy" / "kubernetes" / "base" / "config.env"


def endpoints(config: dict[str, Any]) -> dict[str, tuple[str, list[tuple[str, int]]]]:
    found = {}
    for cluster in config["static_resources"]["clusters"]:
        addresses = [(e["endpoint"]["address"]["socket_address"]["address"],
                      e["endpoint"]["address"]["socket_address"]["port_value"])
                     for group in cluster["load_assignment"]["endpoints"] for e in group["lb_endpoints"]]
        found[cluster["name"]] = (cluster["type"], addresses)
    return found


def test_defaults_reach_each_service_where_it_binds() -> None:
    settings = Settings.model_validate({})
    assert settings.target_of("articles") == "127.0.0.1:50052"
    assert settings.users_address() == "127.0.0.1:50051"


def test_a_target_lists_every_replica() -> None:
    settings = settings_from_variables({"CONDUIT_HOST": "0.0.0.0",
                                        "CONDUIT_USERS_TARGET": "10.0.0.5:50051, 10.0.0.6:50051",
                                        "CONDUIT_ARTICLES_TARGET": "articles:50052"})
    assert settings.address_of("users") == "0.0.0.0:50051"
    assert settings.endpoints_of("users") == [("10.0.0.5", 50051), ("10.0.0.6", 50051)]
    # gRPC's ipv4: scheme with several addresses, balanced by round_robin.
    assert settings.users_address() == "ipv4:10.0.0.5:50051,10.0.0.6:50051"
    assert settings.endpoints_of("articles") == [("articles", 50052)]


@pytest.mark.parametrize("text", ["users", "users:", ":50051", "users:http", ""])
def test_a_malformed_address_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        split_address(text)


def test_envoy_balances_over_listed_replicas_and_resolves_names(tmp_path: Path) -> None:
    from conduit_gateway.config import build_config

    settings = settings_from_variables({"CONDUIT_STATE_DIR": str(tmp_path),
                                        "CONDUIT_USERS_TARGET": "127.0.0.11:50051,127.0.0.12:50051",
                                        "CONDUIT_ARTICLES_TARGET": "articles.conduit.svc:50052"})
    config = build_config(gateway_spec(settings, tmp_path))
    clusters = endpoints(config)
    assert clusters["users"] == ("STRICT_DNS", [("127.0.0.11", 50051), ("127.0.0.12", 50051)])
    assert clusters["articles"] == ("STRICT_DNS", [("articles.conduit.svc", 50052)])
    # The JWKS fetch reaches users the same way.
    assert clusters["conduit_jwks_upstream"][1] == [("127.0.0.11", 50051), ("127.0.0.12", 50051)]


def graphql_routes(config: dict[str, Any]) -> list[str]:
    listener = next(item for item in config["static_resources"]["listeners"] if item["name"] == "conduit_tls")
    routes = listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    return [route["route"]["cluster"] for route in routes if route["match"].get("path") == "/graphql"]


def test_a_graphql_target_routes_graphql_over_every_address_it_lists(tmp_path: Path) -> None:
    """The deployed gateway routes /graphql to CONDUIT_GRAPHQL_TARGET: each listed replica, or a name."""
    from conduit_gateway.config import build_config

    listed = settings_from_variables({"CONDUIT_STATE_DIR": str(tmp_path),
                                      "CONDUIT_GRAPHQL_TARGET": "127.0.0.10:18090, 127.0.0.11:18090"})
    config = build_config(deployed_gateway_spec(listed, tmp_path))
    assert graphql_routes(config) == ["graphql"]
    assert endpoints(config)["graphql"] == ("STRICT_DNS", [("127.0.0.10", 18090), ("127.0.0.11", 18090)])
    named = settings_from_variables({"CONDUIT_STATE_DIR": str(tmp_path), "CONDUIT_GRAPHQL_TARGET": "graphql:8090"})
    assert endpoints(build_config(deployed_gateway_spec(named, tmp_path)))["graphql"] == (
        "STRICT_DNS", [("graphql", 8090)])


def test_without_a_graphql_target_the_deployed_gateway_has_no_graphql_route(tmp_path: Path) -> None:
    from conduit_gateway.config import build_config

    config = build_config(deployed_gateway_spec(settings_from_variables({"CONDUIT_STATE_DIR": str(tmp_path)}),
                                                tmp_path))
    assert graphql_routes(config) == []
    assert "graphql" not in endpoints(config)


@pytest.mark.parametrize("target", ["graphql", ",", "graphql:http"])
def test_a_malformed_graphql_target_is_refused(tmp_path: Path, target: str) -> None:
    settings = settings_from_variables({"CONDUIT_STATE_DIR": str(tmp_path), "CONDUIT_GRAPHQL_TARGET": target})
    with pytest.raises(ValueError, match=r"host:port|no address"):
        deployed_gateway_spec(settings, tmp_path)


def test_envoy_accepts_the_kubernetes_gateway_config(tmp_path: Path) -> None:
    """The ConfigMap's settings (names of headless Services, a mounted TLS pair) validated by Envoy
    itself; only the descriptor's path differs from the ConfigMap (it lives in the image there)."""
    material = ensure_local_tls(tmp_path / "tls")
    base = settings_from_env_file(CONFIG_ENV)
    local = base.model_copy(update={"gateway_tls_cert": str(material.server_cert),
                                    "gateway_tls_key": str(material.server_key), "state_dir": tmp_path})
    from conduit_gateway.config import write_config

    path = write_config(deployed_gateway_spec(local, tmp_path), tmp_path / "envoy.yaml")
    assert graphql_routes(yaml.safe_load(path.read_text(encoding="utf-8"))) == ["graphql"]
    result = validate_config(path)
    assert result.returncode == 0, result.stdout + result.stderr
    image_config = image_gateway_config(base)
    transcoders = [f["typed_config"]["proto_descriptor"] for listener in image_config["static_resources"]["listeners"]
                   for chain in listener["filter_chains"] for f in chain["filters"][0]["typed_config"]["http_filters"]
                   if f["name"] == "envoy.filters.http.grpc_json_transcoder"]
    assert transcoders == ["/opt/conduit/share/conduit.binpb"] * 2
    assert yaml.safe_load(yaml.safe_dump(image_config)) == image_config
