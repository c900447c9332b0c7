"""`conduit run --replicas N`: which ports the replicas get, and the targets every process is given."""

from __future__ import annotations

from conduit_server.replicas import plan_replicas, replica_name
from conduit_server.runtime.settings import SERVICES, Settings


def test_one_replica_changes_nothing() -> None:
    plan, settings = plan_replicas(Settings(), SERVICES)
    assert [replica.port for replica in plan["articles"]] == [Settings().articles_port]
    assert settings.articles_target == ""


def test_more_replicas_get_distinct_free_ports_and_every_service_a_target_listing_them() -> None:
    plan, settings = plan_replicas(Settings(replicas=3), SERVICES)
    ports = [port for replicas in plan.values() for replica in replicas
             for port in (replica.port, replica.metrics_port)]
    assert len(ports) == len(set(ports)) == 2 * 3 * len(SERVICES)
    articles = plan["articles"]
    assert [replica.name for replica in articles] == ["articles", "articles-2", "articles-3"]
    assert articles[0].port == Settings().articles_port
    assert settings.endpoints_of("articles") == [("127.0.0.1", replica.port) for replica in articles]
    assert settings.grpc_target("users").startswith("ipv4:127.0.0.1:")
    assert articles[1].environment() == {"CONDUIT_ARTICLES_PORT": str(articles[1].port),
                                         "CONDUIT_ARTICLES_METRICS_PORT": str(articles[1].metrics_port)}


def test_a_configured_target_is_kept() -> None:
    _, settings = plan_replicas(Settings(replicas=2, search_target="search:50053"), SERVICES)
    assert settings.search_target == "search:50053"
    assert replica_name("search", 0) == "search"
