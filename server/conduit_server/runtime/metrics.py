"""Prometheus metrics of one process (`prometheus-client`), served on the service's metrics port.

What is measured and where (names are the contract of deploy/observability/: rules, dashboards):

- `conduit_rpc_duration_seconds{service,method,code}`: a histogram per served RPC and final
  gRPC code (its `_count` is the request count); buckets 1 ms … 5 s, the bench's range.
- `conduit_rpc_in_flight{service,method}`: calls being served.
- `conduit_db_pool_*{service,schema}`: connections in use, idle, overflow, and callers waiting.
- `conduit_cache_requests_total{service,cache,result}`: hits and misses of every named cache.
- `conduit_outbox_*{service,stream}`: lag (age of the oldest unpublished event), pending
  rows, published events, publish latency (XADD), the relay's heartbeat.
- `conduit_app_*{service}`: what an app reports through `metrics()` (realtime: watchers,
  deliveries, slow-consumer disconnects...), counters as `_total`.

The hot path pays one histogram observation and two gauge steps per call; everything else is
read when Prometheus scrapes (collectors), so it costs nothing between scrapes.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Protocol

import grpc
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from conduit_server.runtime.interceptors import (
    Context,
    StageInterceptor,
    StreamBehavior,
    UnaryBehavior,
    _Stage,
)

# 1 ms … 5 s: the bench's latencies from cached reads to the slowest writes under load.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

RPC_DURATION = Histogram("conduit_rpc_duration_seconds", "Time to serve an RPC, by final gRPC code.",
                         ("service", "method", "code"), buckets=LATENCY_BUCKETS)
RPC_IN_FLIGHT = Gauge("conduit_rpc_in_flight", "RPCs being served.", ("service", "method"))
OUTBOX_LAG = Gauge("conduit_outbox_lag_seconds",
                   "Age of the oldest unpublished outbox event when the relay last looked (0 when none).",
                   ("service", "stream"))
OUTBOX_PENDING = Gauge("conduit_outbox_pending", "Unpublished outbox events the relay last read (one batch at most).",
                       ("service", "stream"))
OUTBOX_HEARTBEAT = Gauge("conduit_outbox_relay_heartbeat_timestamp_seconds",
                         "When the active relay last finished a cycle (unix time).", ("service", "stream"))
OUTBOX_PUBLISHED = Gauge("conduit_outbox_published_events", "Events this relay has published since start.",
                         ("service", "stream"))
OUTBOX_PUBLISH = Histogram("conduit_outbox_publish_seconds", "Time to publish one batch to the stream (XADD).",
                           ("service", "stream"), buckets=LATENCY_BUCKETS)
SEARCH_INDEX_LAG = Gauge("conduit_search_indexing_lag_seconds",
                         "Age of the newest event the search indexer has applied, when it applied it.",
                         ("service",))
WEBHOOK_DELIVERY_LAG = Gauge("conduit_webhook_delivery_lag_seconds",
                             "Time from queueing to the receiver's 2xx, of the last message delivered.",
                             ("service",))
WEBHOOK_ATTEMPT_DURATION = Histogram("conduit_webhook_attempt_seconds",
                                     "Time of one delivery request, by result (delivered, failed, dead).",
                                     ("service", "result"), buckets=(*LATENCY_BUCKETS, 10.0, 30.0))


class Counted(Protocol):
    """A cache that counts its own hits and misses."""

    hits: int
    misses: int


class _Registry:
    """Things read at scrape time, held weakly (tests create many; none is kept alive by metrics)."""

    def __init__(self) -> None:
        self.service = "conduit"
        self.caches: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
        self.engines: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
        self.apps: list[tuple[Callable[[], Mapping[str, Any]], frozenset[str]]] = []


_state = _Registry()


def track_cache(name: str, cache: Counted) -> None:
    """Expose `cache.hits`/`cache.misses` as `conduit_cache_requests_total{cache=name}`."""
    _state.caches[name] = cache


def track_engine(schema: str, engine: Any) -> None:
    """Expose the connection pool of an async SQLAlchemy engine."""
    _state.engines[schema] = engine


def track_app(source: Callable[[], Mapping[str, Any]], counters: Iterable[str] = ()) -> None:
    """Expose an app's own numbers (`metrics()`): keys in `counters` as counters, the rest as gauges."""
    _state.apps.append((source, frozenset(counters)))


def _pool_waiting(pool: Any) -> int:
    # SQLAlchemy's async pool queue wraps an asyncio.Queue created on first use; its getters are
    # the callers waiting for a connection. Never create it from the scrape thread.
    queue = getattr(pool, "_pool", None)
    inner = vars(queue).get("_queue") if queue is not None else None
    return len(getattr(inner, "_getters", ()) or ())


class _ScrapeCollector(Collector):
    def collect(self) -> Iterable[Any]:
        service = _state.service
        cache = CounterMetricFamily("conduit_cache_requests", "Cache look-ups by result.",
                                    labels=("service", "cache", "result"))
        for name, counted in list(_state.caches.items()):
            cache.add_metric((service, name, "hit"), counted.hits)
            cache.add_metric((service, name, "miss"), counted.misses)
        yield cache
        pool_metrics = {kind: GaugeMetricFamily(f"conduit_db_pool_{kind}", text, labels=("service", "schema"))
                        for kind, text in (("in_use", "Connections checked out."),
                                           ("idle", "Connections ready in the pool."),
                                           ("overflow", "Connections beyond the pool size."),
                                           ("waiting", "Callers waiting for a connection."),
                                           ("size", "Configured pool size."))}
        for schema, engine in list(_state.engines.items()):
            pool = engine.sync_engine.pool
            values = {"in_use": pool.checkedout(), "idle": pool.checkedin(), "overflow": max(0, pool.overflow()),
                      "waiting": _pool_waiting(pool), "size": pool.size()}
            for kind, family in pool_metrics.items():
                family.add_metric((service, schema), values[kind])
        yield from pool_metrics.values()
        for source, counters in list(_state.apps):
            yield from _app_families(service, source(), counters)


def _app_families(service: str, values: Mapping[str, Any], counters: frozenset[str]) -> Iterable[Any]:
    for key, value in values.items():
        name = f"conduit_app_{key}"
        if isinstance(value, bool) or not isinstance(value, int | float | dict):
            continue
        family: CounterMetricFamily | GaugeMetricFamily
        if isinstance(value, dict):
            family = (CounterMetricFamily if key in counters else GaugeMetricFamily)(
                name, f"{key} by method", labels=("service", "method"))
            for method, number in value.items():
                family.add_metric((service, str(method)), number)
        elif key in counters:
            family = CounterMetricFamily(name, key, labels=("service",))
            family.add_metric((service,), value)
        else:
            family = GaugeMetricFamily(name, key, labels=("service",))
            family.add_metric((service,), value)
        yield family


_collector = _ScrapeCollector()
REGISTRY.register(_collector)


def serve_metrics(service: str, host: str, port: int, registry: CollectorRegistry = REGISTRY) -> int:
    """Start the `/metrics` endpoint (a daemon thread); returns the bound port."""
    _state.service = service
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return int(server.server_port)


class MetricsStage(_Stage):
    """Latency by method and final code, and calls in flight: the RED numbers of every RPC."""

    def __init__(self, service: str) -> None:
        self._service = service

    def _instruments(self, method: str) -> tuple[Any, Callable[[str], Any]]:
        in_flight = RPC_IN_FLIGHT.labels(self._service, method)
        children: dict[str, Any] = {}

        def by_code(code: str) -> Any:
            child = children.get(code)
            if child is None:
                child = children[code] = RPC_DURATION.labels(self._service, method, code)
            return child

        return in_flight, by_code

    @staticmethod
    def _code(context: Context, failed: bool) -> str:
        if not failed:
            return "OK"
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        in_flight, by_code = self._instruments(method)

        async def call(request: Any, context: Context) -> Any:
            in_flight.inc()
            started = time.perf_counter()
            failed = True
            try:
                response = await behavior(request, context)
                failed = False
                return response
            finally:
                in_flight.dec()
                by_code(self._code(context, failed)).observe(time.perf_counter() - started)
        return call

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        in_flight, by_code = self._instruments(method)

        async def call(request: Any, context: Context) -> AsyncIterator[Any]:
            in_flight.inc()
            started = time.perf_counter()
            failed = True
            try:
                async for item in behavior(request, context):
                    yield item
                failed = False
            finally:
                in_flight.dec()
                by_code(self._code(context, failed)).observe(time.perf_counter() - started)
        return call


def server_interceptors(service: str, enabled: bool) -> list[StageInterceptor]:
    """The metrics interceptor for a server's chain ([] when metrics are off)."""
    return [StageInterceptor(MetricsStage(service))] if enabled else []


class RelayMetrics:
    """What an outbox relay reports each cycle (no-op labels resolved once)."""

    def __init__(self, service: str, stream: str) -> None:
        self.lag = OUTBOX_LAG.labels(service, stream)
        self.pending = OUTBOX_PENDING.labels(service, stream)
        self.heartbeat = OUTBOX_HEARTBEAT.labels(service, stream)
        self.published = OUTBOX_PUBLISHED.labels(service, stream)
        self.publish = OUTBOX_PUBLISH.labels(service, stream)

    def cycle(self, oldest_age_seconds: float, pending: int, published_total: int) -> None:
        self.lag.set(max(0.0, oldest_age_seconds))
        self.pending.set(pending)
        self.published.set(published_total)
        self.heartbeat.set(time.time())
