"""The delivery queue in PostgreSQL: leases never shared, order per endpoint, nothing lost by a restart."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import text

from conduit_server.runtime import migrations
from conduit_server.runtime.db import Database
from conduit_server.webhooks.app import MIGRATIONS
from conduit_server.webhooks.domain.ports import Outcome, Queued
from conduit_server.webhooks.repository import models
from conduit_server.webhooks.repository.store import WebhookStore
from tests.fixtures.users import UsersServer
from tests.webhooks.conftest import Webhooks, reset, start_webhooks
from tests.webhooks.receiver import Behaviour, Receiver

ENDPOINTS = 12
EVENTS = 5


async def queue_store(postgres_url: str) -> WebhookStore:
    database = Database(postgres_url, models.SCHEMA)
    await migrations.upgrade(database, MIGRATIONS, models.Base.metadata)
    await reset(database)
    return WebhookStore(database)


async def fill(store: WebhookStore) -> list[str]:
    endpoints = []
    for number in range(ENDPOINTS):
        created = await store.create(f"ep_{number}", f"user:{number}", f"https://example.com/{number}",
                                     ["article.created"], description="", secret="v1:AAAA", limit=5)
        assert created is not None
        endpoints.append(created.id)
    await store.enqueue([Queued(f"event-{n}", "article.created", b"{}", (1_000 + n, 0)) for n in range(EVENTS)])
    return endpoints


async def test_concurrent_workers_never_lease_the_same_message_and_take_one_per_endpoint(postgres_url: str) -> None:
    store = await queue_store(postgres_url)
    try:
        await fill(store)
        leased = await asyncio.gather(*(store.claim(f"worker-{n}", 100, 60) for n in range(6)))
        ids = [claimed.message_id for batch in leased for claimed in batch]
        assert len(ids) == len(set(ids)) == ENDPOINTS  # every endpoint's head, once, across all workers
        heads = {claimed.endpoint_id: claimed for batch in leased for claimed in batch}
        async with store.database.read() as session:
            first = {row.endpoint_id: row.id for row in (await session.execute(text(
                "SELECT DISTINCT ON (endpoint_id) endpoint_id, id FROM messages "
                "ORDER BY endpoint_id, position_ms, position_seq"))).all()}
        assert {endpoint: claimed.message_id for endpoint, claimed in heads.items()} == first
        # Nothing else is due while the heads are leased: later messages wait for their turn.
        assert await store.claim("late", 100, 60) == []
        for claimed in heads.values():
            assert await store.record(claimed, Outcome(204, "", 1), None)
        second = await store.claim("next", 100, 60)
        assert Counter(claimed.endpoint_id for claimed in second) == Counter(list(heads))
        assert not await store.record(next(iter(heads.values())), Outcome(204, "", 1), None)  # lease used up
    finally:
        await store.close()


async def test_a_pending_message_survives_a_restart_of_the_service(
        webhooks: Webhooks, receiver: Receiver, postgres_url: str, redis_url: str, users_server: UsersServer) -> None:
    author = await webhooks.mesh.person("restart")
    created = await webhooks.register(author, receiver.url("/later"))
    receiver.behaviours["/later"] = Behaviour(secrets=[created.secret], fail_first=1)
    await webhooks.app.dispatcher.stop()  # this worker is gone before anything is sent
    await webhooks.mesh.create(author, "Outlives its first worker")
    async with webhooks.app.store.database.read() as session, asyncio.timeout(15):
        async def pending() -> int:
            return int((await session.execute(text("SELECT count(*) FROM messages WHERE state = 'pending'")))
                       .scalar_one())

        while await pending() == 0:  # noqa: ASYNC110 - queued by the consumer (its own task), not sent
            await asyncio.sleep(0.02)
    assert receiver.at("/later") == []
    _, server, _, channel = await start_webhooks(postgres_url, redis_url, users_server, fresh=False)
    try:
        deliveries = await receiver.wait_count("/later", 2)
        assert [d.status for d in deliveries] == [500, 204]
        assert deliveries[0].headers["webhook-id"] == deliveries[1].headers["webhook-id"]
    finally:
        await channel.close(None)
        await server.stop()
        await server.users_channel.close(None)  # type: ignore[attr-defined]
