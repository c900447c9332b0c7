"""All SQL of webhooks: endpoints of their owners, and the delivery queue workers lease from.

Leasing (docs/decisions/0042-webhook-delivery-queue.md): one statement picks the first pending
message of each endpoint (DISTINCT ON), keeps those that are due and not leased, locks them with
FOR UPDATE SKIP LOCKED (a concurrent worker skips what this one holds) and writes a lease token
and expiry; the conditions on the row itself are checked again on the locked version, so two
workers never lease one message. Results are recorded only under the lease they were sent with.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import text

from conduit_server.runtime.db import Database, delete_in_batches
from conduit_server.webhooks.domain.ports import (
    AttemptRecord,
    Claimed,
    EndpointRecord,
    MessageRecord,
    Outcome,
    Queued,
    QueueStatus,
    State,
)


def _endpoint(row: Any) -> EndpointRecord:
    return EndpointRecord(row.id, row.owner, row.url, tuple(row.event_types), row.description, row.created_at,
                          row.previous_secret_expires_at)


def _message(row: Any) -> MessageRecord:
    return MessageRecord(row.id, row.endpoint_id, row.event_type, cast("State", row.state), row.attempts,
                         row.next_attempt_at, row.created_at)


class WebhookStore:
    """Both repository ports (EndpointStore, DeliveryQueue) over one `webhooks` schema."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # Endpoints ---------------------------------------------------------------------------------

    async def create(self, endpoint_id: str, owner: str, url: str, event_types: Sequence[str], *,
                     description: str, secret: str, limit: int) -> EndpointRecord | None:
        async with self.database.transaction() as session:
            # Serialises one owner's registrations, so the limit holds under concurrency.
            await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:owner))"), {"owner": owner})
            count = (await session.execute(text("SELECT count(*) FROM endpoints WHERE owner = :owner"),
                                           {"owner": owner})).scalar_one()
            if count >= limit:
                return None
            row = (await session.execute(text(
                "INSERT INTO endpoints (id, owner, url, event_types, description, secret) "
                "VALUES (:id, :owner, :url, :types, :description, :secret) RETURNING "
                "id, owner, url, event_types, description, created_at, previous_secret_expires_at"),
                {"id": endpoint_id, "owner": owner, "url": url, "types": list(event_types),
                 "description": description, "secret": secret})).one()
        return _endpoint(row)

    async def owned(self, owner: str) -> list[EndpointRecord]:
        async with self.database.read() as session:
            rows = await session.execute(text(
                "SELECT "
                "id, owner, url, event_types, description, created_at, previous_secret_expires_at "
                "FROM endpoints WHERE owner = :owner ORDER BY created_at DESC, id"),
                {"owner": owner})
            return [_endpoint(row) for row in rows]

    async def get(self, owner: str, endpoint_id: str) -> EndpointRecord | None:
        async with self.database.read() as session:
            row = (await session.execute(text(
                "SELECT "
                "id, owner, url, event_types, description, created_at, previous_secret_expires_at "
                "FROM endpoints WHERE owner = :owner AND id = :id"),
                {"owner": owner, "id": endpoint_id})).one_or_none()
        return None if row is None else _endpoint(row)

    async def delete(self, owner: str, endpoint_id: str) -> bool:
        async with self.database.transaction() as session:
            result = await session.execute(text("DELETE FROM endpoints WHERE owner = :owner AND id = :id"),
                                           {"owner": owner, "id": endpoint_id})
        return bool(cast("Any", result).rowcount)

    async def rotate(self, owner: str, endpoint_id: str, secret: str, grace_seconds: float
                     ) -> EndpointRecord | None:
        async with self.database.transaction() as session:
            row = (await session.execute(text(
                "UPDATE endpoints SET previous_secret = secret, secret = :secret, "
                "previous_secret_expires_at = now() + make_interval(secs => :grace) "
                "WHERE owner = :owner AND id = :id RETURNING "
                "id, owner, url, event_types, description, created_at, previous_secret_expires_at"),
                {"secret": secret, "grace": grace_seconds, "owner": owner, "id": endpoint_id})).one_or_none()
        return None if row is None else _endpoint(row)

    async def messages(self, endpoint_id: str, state: State | None, limit: int) -> list[MessageRecord]:
        async with self.database.read() as session:
            rows = await session.execute(text(
                "SELECT "
                "id, endpoint_id, event_type, state, attempts, next_attempt_at, created_at "
                "FROM messages WHERE endpoint_id = :endpoint "
                "AND (CAST(:state AS text) IS NULL OR state = :state) "
                "ORDER BY position_ms DESC, position_seq DESC, created_at DESC LIMIT :limit"),
                {"endpoint": endpoint_id, "state": state, "limit": limit})
            return [_message(row) for row in rows]

    async def attempts(self, endpoint_id: str, message_id: str, limit: int) -> list[AttemptRecord]:
        async with self.database.read() as session:
            rows = await session.execute(text(
                "SELECT a.message_id, m.event_type, a.attempt, a.attempted_at, a.status, a.error, a.duration_ms, "
                "a.succeeded FROM attempts a JOIN messages m ON m.id = a.message_id "
                "WHERE a.endpoint_id = :endpoint AND (:message = '' OR a.message_id = :message) "
                "ORDER BY a.id DESC LIMIT :limit"),
                {"endpoint": endpoint_id, "message": message_id, "limit": limit})
            return [AttemptRecord(row.message_id, row.event_type, row.attempt, row.attempted_at, row.status,
                                  row.error, row.duration_ms, row.succeeded) for row in rows]

    async def redeliver(self, endpoint_id: str, message_id: str) -> MessageRecord | None:
        """Pending again with a fresh schedule, unless an attempt is in flight (then as it is)."""
        async with self.database.transaction() as session:
            row = (await session.execute(text(
                "UPDATE messages SET state = 'pending', attempts = 0, next_attempt_at = now(), "
                "delivered_at = NULL, dead_at = NULL WHERE endpoint_id = :endpoint AND id = :id "
                "AND (lease_until IS NULL OR lease_until < now()) RETURNING "
                "id, endpoint_id, event_type, state, attempts, next_attempt_at, created_at"),
                {"endpoint": endpoint_id, "id": message_id})).one_or_none()
            if row is None:
                row = (await session.execute(text(
                    "SELECT "
                    "id, endpoint_id, event_type, state, attempts, next_attempt_at, created_at "
                    "FROM messages WHERE endpoint_id = :endpoint AND id = :id"),
                    {"endpoint": endpoint_id, "id": message_id})).one_or_none()
        return None if row is None else _message(row)

    async def status(self) -> QueueStatus:
        async with self.database.read() as session:
            row = (await session.execute(text(
                "SELECT (SELECT count(*) FROM endpoints) AS endpoints, "
                "count(*) FILTER (WHERE state = 'pending') AS pending, "
                "count(*) FILTER (WHERE state = 'dead') AS dead, "
                "coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending')), 0) "
                "AS oldest FROM messages"))).one()
        return QueueStatus(row.endpoints, row.pending, row.dead, float(row.oldest))

    # The queue ---------------------------------------------------------------------------------

    async def enqueue(self, events: Sequence[Queued]) -> int:
        queued = 0
        async with self.database.transaction() as session:
            for event in events:
                result = await session.execute(text(
                    "INSERT INTO messages (id, endpoint_id, event_id, event_type, body, position_ms, position_seq, "
                    "next_attempt_at) "
                    "SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.id, :event_id, :event_type, "
                    ":body, :ms, :seq, now() FROM endpoints e WHERE :event_type = ANY (e.event_types) "
                    "ORDER BY e.id ON CONFLICT (endpoint_id, event_id) DO NOTHING"),
                    {"event_id": event.event_id, "event_type": event.event_type, "body": event.body,
                     "ms": event.position[0], "seq": event.position[1]})
                queued += cast("Any", result).rowcount or 0
        return queued

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Claimed]:
        if limit <= 0:
            return []
        lease = f"{worker}:{uuid.uuid4().hex}"
        async with self.database.transaction() as session:
            rows = await session.execute(text(
                "WITH heads AS ("
                "  SELECT DISTINCT ON (endpoint_id) id, next_attempt_at FROM messages WHERE state = 'pending'"
                "  ORDER BY endpoint_id, position_ms, position_seq, created_at, id"
                "), due AS ("
                "  SELECT m.id FROM messages m JOIN heads h ON h.id = m.id"
                "  WHERE m.state = 'pending' AND m.next_attempt_at <= now()"
                "    AND (m.lease_until IS NULL OR m.lease_until < now())"
                "  ORDER BY h.next_attempt_at LIMIT :limit FOR UPDATE OF m SKIP LOCKED"
                ") "
                "UPDATE messages m SET lease = :lease, lease_until = now() + make_interval(secs => :seconds) "
                "FROM due, endpoints e WHERE m.id = due.id AND e.id = m.endpoint_id "
                "RETURNING m.id, m.endpoint_id, m.event_type, e.url, m.body, m.attempts, e.secret, "
                "e.previous_secret, e.previous_secret_expires_at, m.created_at"),
                {"limit": limit, "lease": lease, "seconds": lease_seconds})
            return [Claimed(row.id, row.endpoint_id, row.event_type, row.url, bytes(row.body), row.attempts, lease,
                            row.secret, row.previous_secret, row.previous_secret_expires_at, row.created_at)
                    for row in rows]

    async def record(self, claimed: Claimed, outcome: Outcome, retry_in_seconds: float | None) -> bool:
        state = "delivered" if outcome.succeeded else ("pending" if retry_in_seconds is not None else "dead")
        async with self.database.transaction() as session:
            updated = (await session.execute(text(
                "UPDATE messages SET lease = NULL, lease_until = NULL, attempts = attempts + 1, state = :state, "
                "next_attempt_at = CASE WHEN :state = 'pending' THEN now() + make_interval(secs => :retry) END, "
                "delivered_at = CASE WHEN :state = 'delivered' THEN now() END, "
                "dead_at = CASE WHEN :state = 'dead' THEN now() END "
                "WHERE id = :id AND lease = :lease RETURNING attempts"),
                {"state": state, "retry": retry_in_seconds or 0.0, "id": claimed.message_id,
                 "lease": claimed.lease})).one_or_none()
            if updated is None:
                return False
            await session.execute(text(
                "INSERT INTO attempts (message_id, endpoint_id, attempt, status, error, duration_ms, succeeded, "
                "response) VALUES (:message, :endpoint, :attempt, :status, :error, :duration, :succeeded, "
                ":response)"),
                {"message": claimed.message_id, "endpoint": claimed.endpoint_id, "attempt": updated.attempts,
                 "status": outcome.status, "error": outcome.error, "duration": outcome.duration_ms,
                 "succeeded": outcome.succeeded, "response": outcome.response})
        return True

    async def prune(self, before: datetime, batch: int) -> int:
        """Delete messages delivered or dead-lettered before `before` (their attempts go with them), a
        batch per short transaction. Pending messages are never touched, and rows another transaction
        holds (a redelivery) are skipped, so pruning never waits on the queue nor the queue on it; the
        state is checked again on the row deleted, so a message redelivered meanwhile stays."""
        removed = 0
        async with self.database.engine.connect() as connection:
            for state, column in (("delivered", "delivered_at"), ("dead", "dead_at")):
                removed += await delete_in_batches(connection, (
                    f"DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE state = '{state}' "  # noqa: S608
                    f"AND {column} < :before ORDER BY {column} LIMIT :batch FOR UPDATE SKIP LOCKED) "
                    f"AND state = '{state}' AND {column} < :before"), {"before": before}, batch)
        return removed

    async def oldest_pending(self) -> datetime | None:
        async with self.database.read() as session:
            value: datetime | None = (await session.execute(text(
                "SELECT min(created_at) FROM messages WHERE state = 'pending'"))).scalar_one()
        return value

    async def close(self) -> None:
        await self.database.close()
