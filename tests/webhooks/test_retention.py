"""Bounded storage: settled messages (and their attempts) older than the retention are pruned in
batches; pending ones never are, a redelivered dead letter is pending again, and a row another
transaction holds is skipped rather than waited for."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text

from conduit.webhooks.v1 import webhooks_pb2
from conduit_server.webhooks.domain.ports import Outcome, Queued
from conduit_server.webhooks.domain.retention import Retention
from conduit_server.webhooks.repository.store import WebhookStore
from tests.support import eventually
from tests.webhooks.conftest import Webhooks
from tests.webhooks.receiver import Behaviour, Receiver
from tests.webhooks.test_queue import queue_store

WEEK = 7 * 86_400.0


async def settle(store: WebhookStore) -> dict[str, list[str]]:
    """Four endpoints with 3 messages each: `done` gets them delivered, `dead` dead-lettered, `later` has its
    first one failed and waiting for a retry (the others behind it), `again` all dead-lettered, then the
    first redelivered. Message ids attempted, by endpoint."""
    for name in ("done", "dead", "later", "again"):
        assert await store.create(name, f"user:{name}", f"https://example.com/{name}", ["article.created"],
                                  description="", secret="v1:AAAA", limit=5) is not None
    await store.enqueue([Queued(f"event-{n}", "article.created", b"{}", (1_000 + n, 0)) for n in range(3)])
    settled: dict[str, list[str]] = {}
    for _ in range(3):
        for claimed in await store.claim("worker", 100, 60):
            if claimed.endpoint_id == "done":
                assert await store.record(claimed, Outcome(204, "", 1), None)
            elif claimed.endpoint_id == "later":
                assert await store.record(claimed, Outcome(500, "", 1), 3_600.0)
            else:
                assert await store.record(claimed, Outcome(500, "", 1), None)  # the last attempt failed
            settled.setdefault(claimed.endpoint_id, []).append(claimed.message_id)
    assert await store.redeliver("again", settled["again"][0]) is not None
    return settled


async def remaining(store: WebhookStore) -> tuple[dict[str, int], int]:
    async with store.database.read() as session:
        messages = {row.endpoint_id: int(row.messages) for row in await session.execute(text(
            "SELECT endpoint_id, count(*) AS messages FROM messages GROUP BY endpoint_id"))}
        attempts = int((await session.execute(text("SELECT count(*) FROM attempts"))).scalar_one())
    return messages, attempts


async def test_settled_messages_older_than_the_retention_are_pruned_with_their_attempts(postgres_url: str) -> None:
    store = await queue_store(postgres_url)
    try:
        settled = await settle(store)
        assert {name: len(ids) for name, ids in settled.items()} == {"done": 3, "dead": 3, "later": 1, "again": 3}
        now = time.time()
        retention = Retention(store, retention_seconds=WEEK, every_seconds=60, batch=2, clock=lambda: now)
        assert await retention.prune_once() == 0  # nothing is a week old yet
        assert await remaining(store) == ({"done": 3, "dead": 3, "later": 3, "again": 3}, 10)

        retention.clock = lambda: now + WEEK + 60  # a week and a minute later
        # The 3 delivered and 5 dead letters go (batches of 2); pending messages stay, however old: those
        # waiting for a retry or their turn, and the redelivered one with its earlier attempt.
        assert await retention.prune_once() == 8
        assert retention.pruned == 8
        assert await remaining(store) == ({"later": 3, "again": 1}, 2)
        assert await retention.prune_once() == 0
    finally:
        await store.close()


async def test_pruning_skips_a_row_another_transaction_holds_instead_of_waiting(postgres_url: str) -> None:
    store = await queue_store(postgres_url)
    try:
        settled = await settle(store)
        held = settled["dead"][0]
        retention = Retention(store, retention_seconds=WEEK, every_seconds=60, batch=10,
                              clock=lambda: time.time() + WEEK + 60)
        async with store.database.transaction() as session:
            # A redelivery in flight holds the dead letter's row.
            await session.execute(text("SELECT id FROM messages WHERE id = :id FOR UPDATE"), {"id": held})
            async with asyncio.timeout(30):  # bounded: a prune that waited on the lock would hang here
                assert await retention.prune_once() == 7
        messages, _ = await remaining(store)
        assert messages["dead"] == 1
        assert "done" not in messages
        assert await retention.prune_once() == 1  # released: its turn comes at the next round
    finally:
        await store.close()


async def test_the_service_prunes_a_delivered_message_once_its_retention_has_passed(webhooks: Webhooks,
                                                                                  receiver: Receiver) -> None:
    """The app's own pruning (settings -> Retention -> store), through the RPC an owner reads with."""
    author = await webhooks.mesh.person("pruned")
    created = await webhooks.register(author, receiver.url("/pruned"))
    receiver.behaviours["/pruned"] = Behaviour(secrets=[created.secret])
    await webhooks.mesh.create(author, "Delivered, then pruned")
    await eventually(lambda: webhooks.app.dispatcher.counters.delivered >= 1, seconds=15)
    [message] = await webhooks.messages(author, created.endpoint.id)
    assert len(await webhooks.attempts(author, created.endpoint.id)) == 1
    retention = webhooks.app.retention
    assert retention.retention_seconds == WEEK  # the default setting
    assert await retention.prune_once() == 0
    webhooks.clock.offset = WEEK + 60
    assert await retention.prune_once() == 1
    assert await webhooks.messages(author, created.endpoint.id) == []
    assert await webhooks.attempts(author, created.endpoint.id) == []
    assert webhooks.app.metrics()["webhooks_messages_pruned"] == 1
    assert message.state == webhooks_pb2.MESSAGE_STATE_DELIVERED
