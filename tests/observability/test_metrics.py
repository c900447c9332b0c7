"""The metrics endpoint of one process: RED per method and code from a real gRPC server, pool and
cache numbers read at scrape time."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from conduit.search.v1 import search_pb2, search_pb2_grpc
from conduit_server.composition import SkeletonApp, unimplemented
from conduit_server.runtime import metrics
from conduit_server.runtime.db import Database
from conduit_server.runtime.expiring import ExpiringCache
from conduit_server.runtime.server import GrpcServer
from tests.support import eventually


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        body = answer.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(body) for sample in family.samples}


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return metrics.serve_metrics("search", "127.0.0.1", 0)


@pytest.fixture
async def server() -> AsyncIterator[GrpcServer]:
    app = SkeletonApp("search", [unimplemented(search_pb2, search_pb2_grpc, "SearchService")])
    grpc_server = GrpcServer(app, host="127.0.0.1", port=0, verifier=None, internal_token="",
                             observers=metrics.server_interceptors("search", enabled=True))
    await grpc_server.start()
    yield grpc_server
    await grpc_server.stop()


async def test_calls_are_counted_by_method_and_final_code(server: GrpcServer, metrics_port: int) -> None:
    method = "/conduit.search.v1.SearchService/SearchArticles"
    before = scrape(metrics_port)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await search_pb2_grpc.SearchServiceStub(channel).SearchArticles(
                search_pb2.SearchArticlesRequest(query="metrics"))
    code = failure.value.code().name
    after = scrape(metrics_port)

    def delta(name: str, **labels: str) -> float:
        key = (name, frozenset({"service": "search", **labels}.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("conduit_rpc_duration_seconds_count", method=method, code=code) == 1
    assert delta("conduit_rpc_duration_seconds_count", method=method, code="OK") == 0
    assert delta("conduit_rpc_duration_seconds_count", method="/grpc.health.v1.Health/Check", code="OK") == 1
    # Buckets from 1 ms to 5 s; a failed call lands in them like any other.
    assert delta("conduit_rpc_duration_seconds_bucket", method=method, code=code, le="5.0") == 1
    assert delta("conduit_rpc_duration_seconds_bucket", method=method, code=code, le="+Inf") == 1
    assert after[("conduit_rpc_in_flight", frozenset({"service": "search", "method": method}.items()))] == 0


async def test_pools_and_caches_are_read_when_scraped(postgres_url: str, metrics_port: int) -> None:
    cache: ExpiringCache[str] = ExpiringCache(ttl_seconds=60, max_entries=10, name="test.metrics")
    cache.store({1: "one"}, cache.generation())
    cache.get_many([1, 2, 3])
    database = Database(postgres_url, "metrics_probe", pool_size=3)
    try:
        async with database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            during = scrape(metrics_port)
        after = scrape(metrics_port)
    finally:
        await database.close()
    pool = frozenset({"service": "search", "schema": "metrics_probe"}.items())
    assert during[("conduit_db_pool_in_use", pool)] == 1
    assert after[("conduit_db_pool_in_use", pool)] == 0
    assert after[("conduit_db_pool_idle", pool)] == 1
    assert after[("conduit_db_pool_waiting", pool)] == 0
    assert after[("conduit_db_pool_size", pool)] == 3
    hits = frozenset({"service": "search", "cache": "test.metrics", "result": "hit"}.items())
    misses = frozenset({"service": "search", "cache": "test.metrics", "result": "miss"}.items())
    assert after[("conduit_cache_requests_total", hits)] == 1
    assert after[("conduit_cache_requests_total", misses)] == 2


async def test_callers_waiting_for_a_connection_are_counted(postgres_url: str, metrics_port: int) -> None:
    import asyncio

    database = Database(postgres_url, "metrics_waiting", pool_size=1, max_overflow=0)
    pool = frozenset({"service": "search", "schema": "metrics_waiting"}.items())
    try:
        async with database.engine.connect() as held:
            await held.execute(text("SELECT 1"))
            waiter = asyncio.create_task(database.engine.connect().start())
            await eventually(lambda: scrape(metrics_port)[("conduit_db_pool_waiting", pool)] == 1, seconds=10)
            assert not waiter.done()
        connection = await asyncio.wait_for(waiter, 10)
        await connection.close()
        assert scrape(metrics_port)[("conduit_db_pool_waiting", pool)] == 0
    finally:
        await database.close()
