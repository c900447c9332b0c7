"""The webhooks service in-process beside the real articles and users services, and a test receiver.

The app runs the way process.py runs it (gRPC server, verifier fed by the users JWKS), on a
short retry schedule, with http and loopback allowed explicitly (the defaults refuse both).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from sqlalchemy import text

from conduit.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc
from conduit_server.process import build_verifier
from conduit_server.runtime import channels
from conduit_server.runtime.db import Database
from conduit_server.runtime.resources import Resources
from conduit_server.runtime.server import GrpcServer
from conduit_server.webhooks.app import SCHEMA, WebhooksApp
from tests.articles.conftest import Mesh, Person, articles_app, articles_channel, mesh  # noqa: F401 - fixtures
from tests.fixtures.users import INTERNAL_TOKEN, UsersServer, settings_for
from tests.webhooks.receiver import Receiver, running_receiver

# Short waits: 1 + 3 attempts, then dead.
SCHEDULE = [0.05, 0.05, 0.05]
TEST_WEBHOOKS: dict[str, Any] = {"retry_schedule_seconds": SCHEDULE, "retry_jitter": 0.1, "poll_seconds": 0.05,
                                 "timeout_seconds": 2.0, "allow_http": True, "allowed_networks": ["127.0.0.0/8"],
                                 "secret_grace_seconds": 3600.0}


class Clock:
    """Wall time plus an offset a test moves (secret grace periods)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Webhooks:
    app: WebhooksApp
    mesh: Mesh
    channel: grpc.aio.Channel
    clock: Clock
    address: str = ""
    stub: webhooks_pb2_grpc.WebhooksServiceAsyncStub = field(init=False)

    def __post_init__(self) -> None:
        self.stub = webhooks_pb2_grpc.WebhooksServiceStub(self.channel)

    async def register(self, owner: Person, url: str, event_types: list[str] | None = None
                       ) -> webhooks_pb2.CreateEndpointResponse:
        response: webhooks_pb2.CreateEndpointResponse = await self.stub.CreateEndpoint(
            webhooks_pb2.CreateEndpointRequest(url=url, event_types=event_types or ["article.created"]),
            metadata=owner.auth)
        return response

    async def messages(self, owner: Person, endpoint_id: str) -> list[webhooks_pb2.Message]:
        response = await self.stub.ListMessages(webhooks_pb2.ListMessagesRequest(endpoint_id=endpoint_id, limit=100),
                                                metadata=owner.auth)
        return list(response.messages)

    async def attempts(self, owner: Person, endpoint_id: str, message_id: str = ""
                       ) -> list[webhooks_pb2.DeliveryAttempt]:
        response = await self.stub.ListDeliveryAttempts(webhooks_pb2.ListDeliveryAttemptsRequest(
            endpoint_id=endpoint_id, message_id=message_id, limit=100), metadata=owner.auth)
        return list(response.attempts)


async def reset(database: Database) -> None:
    await database.ensure_schema()
    async with database.transaction() as session:
        exists = (await session.execute(text("SELECT to_regclass('endpoints') IS NOT NULL"))).scalar_one()
        if exists:
            await session.execute(text("TRUNCATE endpoints, messages, attempts CASCADE"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


async def start_webhooks(postgres_url: str, redis_url: str, users_server: UsersServer, *, fresh: bool = True,
                         **webhooks: Any) -> tuple[WebhooksApp, GrpcServer, Clock, grpc.aio.Channel]:
    settings = settings_for(postgres_url, redis_url, internal_call_timeout_seconds=5.0,
                            webhooks=TEST_WEBHOOKS | webhooks)
    database = Database(postgres_url, SCHEMA)
    if fresh:
        await reset(database)
    users_channel = channels.internal_channel(users_server.address, INTERNAL_TOKEN)
    redis = aioredis.Redis.from_url(redis_url)
    verifier = build_verifier(settings, Resources(settings, postgres_url, redis, users_channel))
    clock = Clock()
    app = WebhooksApp(settings, database, redis, clock=clock, consumer=f"test-{uuid.uuid4().hex[:8]}")
    server = GrpcServer(app, host="127.0.0.1", port=0, verifier=verifier, internal_token=INTERNAL_TOKEN,
                        grace_seconds=1.0)
    port = await server.start()
    server.users_channel = users_channel  # type: ignore[attr-defined]
    return app, server, clock, grpc.aio.insecure_channel(f"127.0.0.1:{port}")


@pytest_asyncio.fixture(loop_scope="session")
async def webhooks(mesh: Mesh, postgres_url: str, redis_url: str,  # noqa: F811
                   users_server: UsersServer) -> AsyncIterator[Webhooks]:
    app, server, clock, channel = await start_webhooks(postgres_url, redis_url, users_server)
    await asyncio.wait_for(app.events.reading.wait(), 10)
    yield Webhooks(app, mesh, channel, clock, address=f"127.0.0.1:{server.port}")
    await channel.close(None)
    await server.stop()
    await server.users_channel.close(None)  # type: ignore[attr-defined]
