"""One REST call through Envoy, read back from Jaeger: Envoy → articles → users → PostgreSQL; the
realtime delivery of the new article links to the write's trace."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import grpc
import httpx
import pytest

from conduit.realtime.v1 import realtime_pb2, realtime_pb2_grpc
from conduit_server.observe import ObservedMesh
from tests.observability.conftest import jaeger_search, jaeger_trace, wait_for

pytestmark = pytest.mark.observe


def _register(client: httpx.Client, base: str) -> str:
    name = f"tracer{secrets.token_hex(4)}"
    response = client.post(f"{base}/api/users", json={"user": {
        "username": name, "email": f"{name}@example.com", "password": "tracer-password"}})
    assert response.status_code == 201, response.text
    token: str = response.json()["user"]["token"]
    return token


def _spans_by_id(trace: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {span["spanID"]: span for span in trace["spans"]}


def _service(trace: dict[str, Any], span: dict[str, Any]) -> str:
    name: str = trace["processes"][span["processID"]]["serviceName"]
    return name


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span.get("tags", ())}


def _ancestry(trace: dict[str, Any], span: dict[str, Any]) -> list[str]:
    """The services of `span` and its parents (CHILD_OF), innermost first, consecutive repeats folded."""
    spans = _spans_by_id(trace)
    services: list[str] = []
    current: dict[str, Any] | None = span
    while current is not None:
        service = _service(trace, current)
        if not services or services[-1] != service:
            services.append(service)
        parents = [ref["spanID"] for ref in current.get("references", ()) if ref["refType"] == "CHILD_OF"]
        current = spans.get(parents[0]) if parents else None
    return services


def test_one_rest_call_is_one_trace_from_envoy_to_postgresql(observed: ObservedMesh) -> None:
    base = f"http://127.0.0.1:{observed.settings.gateway_http_port}"
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    with httpx.Client(timeout=10) as client:
        token = _register(client, base)
        # The caller asks for a sampled trace with a known id; Envoy continues it (W3C traceparent).
        response = client.post(f"{base}/api/articles", headers={
            "Authorization": f"Token {token}", "traceparent": f"00-{trace_id}-{caller_span}-01"},
            json={"article": {"title": f"Traced {trace_id[:8]}", "description": "d", "body": "b",
                              "tagList": ["tracing"]}})
    assert response.status_code == 201, response.text

    def users_sql_chains(trace: dict[str, Any]) -> list[list[str]]:
        return [_ancestry(trace, span) for span in trace["spans"]
                if _service(trace, span) == "conduit-users" and _tags(span).get("db.system") == "postgresql"]

    def complete() -> dict[str, Any] | None:
        # Each process exports its spans in its own batches: wait until all of them are in.
        trace = jaeger_trace(observed, trace_id)
        if trace is None or ["conduit-users", "conduit-articles", "conduit-gateway"] not in users_sql_chains(trace):
            return None
        return trace

    # Some users SQL span descends, parent by parent, from an articles span and from Envoy's.
    trace = wait_for(complete, f"trace {trace_id}: Envoy → articles → users → PostgreSQL in Jaeger")
    services = {_service(trace, span) for span in trace["spans"]}
    assert {"conduit-gateway", "conduit-articles", "conduit-users"} <= services
    # The articles service's own statements are in the same trace too.
    assert any(_service(trace, s) == "conduit-articles" and _tags(s).get("db.system") == "postgresql"
               for s in trace["spans"])
    # Only Envoy's first span hangs from the caller's span; everything else hangs from a span in the trace.
    spans = _spans_by_id(trace)
    outermost = [s for s in trace["spans"] if not any(r["spanID"] in spans for r in s.get("references", ()))]
    assert [(_service(trace, s), [r["spanID"] for r in s["references"]]) for s in outermost] == [
        ("conduit-gateway", [caller_span])]


async def test_realtime_delivery_links_to_the_write(observed: ObservedMesh) -> None:
    base = f"http://127.0.0.1:{observed.settings.gateway_http_port}"
    trace_id = secrets.token_hex(16)
    title = f"Linked {trace_id[:8]}"
    async with grpc.aio.insecure_channel(observed.settings.address_of("realtime")) as channel:
        stream = realtime_pb2_grpc.RealtimeServiceStub(channel).WatchArticles(
            realtime_pb2.WatchArticlesRequest(tag="linked"))
        await stream.wait_for_connection()
        with httpx.Client(timeout=10) as client:
            token = _register(client, base)
        async with httpx.AsyncClient(timeout=10) as async_client:
            response = await async_client.post(f"{base}/api/articles", headers={
                "Authorization": f"Token {token}", "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
                json={"article": {"title": title, "description": "d", "body": "b", "tagList": ["linked"]}})
        assert response.status_code == 201, response.text
        async with asyncio.timeout(30):
            async for message in stream:
                if message.event.article.title == title:
                    break
        stream.cancel()

    def linked() -> list[dict[str, Any]] | None:
        # A link is a reference into another trace: the delivery has a trace of its own.
        return [span for trace in jaeger_search(observed, "conduit-realtime", "realtime deliver")
                for span in trace["spans"]
                if span["traceID"] != trace_id and any(ref["traceID"] == trace_id
                                                       for ref in span.get("references", ()))]

    spans = wait_for(linked, f"a realtime delivery span linked to {trace_id}")
    assert all(span["operationName"] == "realtime deliver" for span in spans)
