"""SDK unit tests: in-process test servers of the contract, no mesh needed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conduit.client.testing import InProcessServer

Serve = Callable[..., InProcessServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start an InProcessServer with (register, servicer) pairs; every server stops after the test."""
    servers: list[InProcessServer] = []

    def start(*registrations: tuple[Callable[[Any, Any], None], Any], port: int = 0) -> InProcessServer:
        server = InProcessServer(port=port)
        for register, servicer in registrations:
            server.add(register, servicer)
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def _span_exporter() -> InMemorySpanExporter:
    """The SDK uses the OpenTelemetry API only; tests install the SDK's provider (or reuse one)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(_span_exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    """The spans finished during the test."""
    _span_exporter.clear()
    return _span_exporter
