"""Traces: OpenTelemetry for one process, off unless `CONDUIT_TRACING=true` (decision 0018).

When on, the process gets an SDK tracer provider whose exporter, endpoint and sampler come
from the standard `OTEL_*` variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_TRACES_SAMPLER`,
`OTEL_TRACES_SAMPLER_ARG`, ...), and spans for:

- every RPC served (the gRPC aio server interceptor, first in the chain; health and
  reflection excluded), continuing the W3C `traceparent` Envoy sends;
- every call to another service (the aio client interceptors on the internal channel);
- every SQL statement (SQLAlchemy engines created after configuration) and every Redis command.

Events keep the context of the transaction that wrote them: `current_traceparent()` is
stored in the outbox row, travels in the stream entry, and consumers start their span with
a link to it (`consumer_span`). With tracing off every function here is a cheap no-op.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject

log = logging.getLogger("conduit.telemetry")

TRACEPARENT = "traceparent"
_EXCLUDED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.")
_tracing_on = False


def tracing_enabled() -> bool:
    """Whether `configure_tracing` installed a provider in this process."""
    return _tracing_on


def configure_tracing(service: str, enabled: bool) -> Any | None:
    """Install the SDK provider for `service` (OTLP exporter from `OTEL_*`); None when disabled."""
    global _tracing_on  # noqa: PLW0603 - OpenTelemetry's provider is process-global by design
    if not enabled:
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME over this default.
    resource = Resource.create({"service.name": f"conduit-{service}", "service.namespace": "conduit"})
    provider = TracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER (parent-based default)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    # Wraps sqlalchemy.ext.asyncio.create_async_engine: every engine created afterwards (runtime/db.py
    # calls it through the module for this reason) traces its statements. The instrumentation declares
    # SQLAlchemy < 2.1 and would silently do nothing on our 2.1; the engine events it listens to are
    # unchanged in 2.1, hence skip_dep_check (the Jaeger test proves the PostgreSQL spans).
    SQLAlchemyInstrumentor().instrument(tracer_provider=provider, enable_commenter=False, skip_dep_check=True)
    _tracing_on = True
    log.info("tracing on", extra={"service.name": f"conduit-{service}"})
    return provider


def shutdown_tracing() -> None:
    """Flush buffered spans (end of process)."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if _tracing_on and shutdown is not None:
        shutdown()


def server_interceptors() -> list[Any]:
    """The tracing interceptor to put first in a server's chain ([] with tracing off)."""
    if not _tracing_on:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    return [aio_server_interceptor(filter_=filters.negate(filters.any_of(  # type: ignore[no-untyped-call]
        *(filters.service_prefix(name) for name in _EXCLUDED_SERVICES))))]


def client_interceptors() -> list[Any]:
    """Interceptors that give calls to other services a span and a `traceparent` ([] when off)."""
    if not _tracing_on:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())  # type: ignore[no-untyped-call]


def current_traceparent() -> str:
    """The W3C traceparent of the current span, to store beside an event ("" when none)."""
    if not _tracing_on:
        return ""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get(TRACEPARENT, "")


def trace_ids() -> tuple[str, str]:
    """(trace id, span id) of the current recording span as hex, or ("", "")."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return "", ""
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


@contextlib.contextmanager
def consumer_span(name: str, traceparents: Sequence[str], **attributes: str | int) -> Iterator[None]:
    """A span for handling events, linked to the spans that produced them (W3C traceparents).

    A consumer handles events of many traces at once (one delivery, many writes), so it links
    to them rather than pretending to be the child of one.
    """
    if not _tracing_on or not traceparents:
        yield
        return
    links = []
    for value in traceparents:
        if not value:
            continue
        span_context = trace.get_current_span(extract({TRACEPARENT: value})).get_span_context()
        if span_context.is_valid:
            links.append(trace.Link(span_context))
    tracer = trace.get_tracer("conduit.events")
    # A fresh root: the consumer's own work is not part of whatever trace happened to be current.
    with tracer.start_as_current_span(name, context=otel_context.Context(), kind=trace.SpanKind.CONSUMER,
                                      links=links, attributes=attributes):
        yield
