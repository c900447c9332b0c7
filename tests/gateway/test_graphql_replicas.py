"""The graphql cluster over several replicas: every address `replicas` lists behind the graphql upstream is a
host of it (as for the gRPC clusters), and Envoy accepts the config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from conduit_gateway.config import GatewaySpec, build_config, write_config
from conduit_gateway.graphql import GRAPHQL_CLUSTER
from tests.gateway.support import validate_config


def test_graphql_cluster_balances_over_its_listed_replicas(spec: GatewaySpec, tmp_path: Path) -> None:
    replicas = [("127.0.0.10", 18090), ("127.0.0.11", 18091)]
    with_replicas = dataclasses.replace(spec, graphql_upstream=replicas[0],
                                        replicas={**spec.replicas, replicas[0]: replicas})
    cluster = next(c for c in build_config(with_replicas)["static_resources"]["clusters"]
                   if c["name"] == GRAPHQL_CLUSTER)
    hosts = [(e["endpoint"]["address"]["socket_address"]["address"],
              e["endpoint"]["address"]["socket_address"]["port_value"])
             for group in cluster["load_assignment"]["endpoints"] for e in group["lb_endpoints"]]
    assert hosts == replicas
    result = validate_config(write_config(with_replicas, tmp_path / "envoy.yaml"))
    assert result.returncode == 0, result.stderr


def test_a_single_graphql_upstream_is_its_only_host(spec: GatewaySpec) -> None:
    alone = dataclasses.replace(spec, graphql_upstream=("127.0.0.1", 18090))
    cluster = next(c for c in build_config(alone)["static_resources"]["clusters"] if c["name"] == GRAPHQL_CLUSTER)
    [endpoint] = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 18090}
