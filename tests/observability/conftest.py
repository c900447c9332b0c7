"""The observed mesh (`conduit observe` as a library): every part on free ports, real Prometheus and Jaeger.

These tests are heavy (a whole mesh, Envoy, Prometheus, Jaeger) and run with `-m observe`
(`make observe-test`, which builds the tools first).
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conduit_server.observe import ObservedMesh, StackPorts
from conduit_server.runtime.settings import Settings
from tests.conftest import free_port

T = TypeVar("T")

pytestmark = pytest.mark.observe


def wait_for(produce: Callable[[], T | None], what: str, timeout_seconds: float = 60.0) -> T:
    """Poll `produce` until it returns something (bounded); the event waited on is in the backend."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        value = produce()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback test URLs
        return json.load(answer)


@pytest.fixture(scope="session")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObservedMesh]:
    state = tmp_path_factory.mktemp("observe")
    settings = Settings(
        state_dir=state, users_port=free_port(), articles_port=free_port(), search_port=free_port(),
        realtime_port=free_port(), webhooks_port=free_port(), gateway_tls_port=free_port(),
        gateway_http_port=free_port(),
        gateway_admin_port=free_port(), gateway_jwks_port=free_port(), users_metrics_port=free_port(),
        articles_metrics_port=free_port(), search_metrics_port=free_port(), realtime_metrics_port=free_port(),
        webhooks_metrics_port=free_port(),
        shutdown_grace_seconds=3, shutdown_drain_seconds=0.2)
    ports = StackPorts(prometheus=free_port(), jaeger_ui=free_port(), jaeger_otlp_grpc=free_port(),
                       jaeger_otlp_http=free_port(), jaeger_health=free_port())
    stack = ObservedMesh(settings, ports=ports, scrape_seconds=1.0, log_dir=Path(state) / "logs")
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def jaeger_trace(stack: ObservedMesh, trace_id: str) -> dict[str, Any] | None:
    """The trace as Jaeger's query API returns it, or None while it is not there."""
    try:
        body = get_json(f"{stack.jaeger_url}/api/traces/{trace_id}")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise
    data = body.get("data") or []
    return data[0] if data else None


def jaeger_search(stack: ObservedMesh, service: str, operation: str, limit: int = 50) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"service": service, "operation": operation, "limit": limit, "lookback": "1h"})
    return list(get_json(f"{stack.jaeger_url}/api/traces?{query}").get("data") or [])
