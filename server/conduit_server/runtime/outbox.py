"""Transactional outbox: events are rows written with the change, relayed to a Redis Stream.

Writers call `append()` as the *last* statement of their transaction; nothing serialises writers.
Its one statement makes sure the transaction has its transaction id (xid) *before* the row's id is
drawn. The relay publishes in id order, but only up to a **horizon**: an id `drawn` it read from the
sequence, once every transaction that already had an xid at that moment has ended. Any row with an id
up to `drawn` was written by one of those (its xid came before its id), so by then it is committed
(visible) or rolled back (gone): nothing below the horizon can appear later, and the stream is in
id order without gaps (see docs/decisions/0028-outbox-horizon.md, which replaces 0003's lock). The
relay XADDs, then marks the rows published. A crash between the two re-publishes the batch on
restart: delivery is at least once, and consumers deduplicate by `event_id`.

One relay per schema publishes, the holder of a session advisory lock, and it
reads and marks rows on that very connection: if the connection drops, the lock
is gone and so is the relay's ability to read the next batch, so two relays
never publish side by side (at most one batch in flight is repeated, which
consumers drop by `event_id`). The holder also bounds both stores: published
rows older than the retention are deleted in small batches, and the stream is
trimmed by age (MINID) as well as by length.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis
from google.protobuf.message import Message
from sqlalchemy import BigInteger, DateTime, Identity, Index, LargeBinary, String, Uuid, func, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from conduit_server.runtime import telemetry
from conduit_server.runtime.db import Database, delete_in_batches
from conduit_server.runtime.errors import Unavailable
from conduit_server.runtime.metrics import RelayMetrics
from conduit_server.runtime.settings import Settings
from conduit_server.runtime.tasks import cancel_until_done

log = logging.getLogger("conduit.outbox")

# The relays of one schema agree on this lock key.
_RELAY_LOCK = "conduit-outbox-relay"


def stream_name(service: str) -> str:
    """The Redis Stream a service's events are published to."""
    return f"conduit:events:{service}"


@dataclass(frozen=True)
class Event:
    """An outbox row as the relay reads it."""

    id: int
    event_id: uuid.UUID
    event_type: str
    payload: bytes
    # W3C traceparent of the span that wrote the event ("" when tracing was off).
    traceparent: str = ""
    created_at: datetime | None = None


class OutboxRow:
    """The outbox table, mixed into each service's declarative base (its own schema):
    `class OutboxEvent(OutboxRow, Base): ...`."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The producer's trace context, carried to consumers in the stream entry (decision 0018).
    traceparent: Mapped[str | None] = mapped_column(String(55))

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Index]:  # noqa: N805 - a declarative class-level directive
        # Only unpublished rows are indexed: the relay's scan stays small however long the table.
        return (Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),)


# One statement, one round trip. The INSERT draws its identity value while projecting the rows of
# its FROM, which are the xid's and the notify's rows: the transaction has its xid before the id
# exists, which is what the relay's horizon relies on. (A SELECT CTE that nothing references would
# not run at all, hence the FROM.)
_APPEND = text(
    "WITH xact AS (SELECT pg_current_xact_id()), "
    "wake_relay AS (SELECT pg_notify(current_schema() || '_outbox', '')) "
    "INSERT INTO outbox (event_id, event_type, payload, traceparent) "
    "SELECT CAST(:event_id AS uuid), CAST(:event_type AS varchar), CAST(:payload AS bytea), "
    "CAST(NULLIF(:traceparent, '') AS varchar) "
    "FROM xact, wake_relay")

# The last id handed out (0 before the first). The identity sequence has no cache (CACHE 1), so this
# is the newest id any session has drawn.
_DRAWN = text("SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('outbox', 'id')::regclass), 0)")
# A fresh xid, in a later statement (and committed at once): larger than every xid assigned before
# `_DRAWN` ran. No function reads the next xid without assigning it; a snapshot's xmax will not do,
# as it is one past the latest *completed* xid (running transactions above it are not listed).
# (The comments name the statements as the outbox's in logs, pg_stat_statements and tests' counts.)
_FRESH_XID = text("SELECT pg_current_xact_id()::text::bigint /* outbox horizon */")
# With the fresh xid ended, xmin >= it means no transaction holding a smaller xid is running.
_XMIN = text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint /* outbox horizon */")


async def append(session: AsyncSession, event_type: str, payload: Message, *,
                 event_id: uuid.UUID | None = None) -> uuid.UUID:
    """Add an event to the current transaction; call it last, just before commit."""
    event_id = event_id or uuid.uuid4()
    await session.execute(_APPEND, {"event_id": event_id, "event_type": event_type,
                                    "payload": payload.SerializeToString(),
                                    "traceparent": telemetry.current_traceparent()})
    return event_id


class Horizon:
    """Which outbox ids are final: the relay's and a snapshot reader's view of "every row up to here".

    `observe()` notes a mark (drawn, xid): the newest id drawn, then a fresh xid taken after it. Once
    the oldest transaction still running is at or past that xid, every transaction that could hold
    an id up to `drawn` has ended (each took its xid before its id). `final` is the largest such
    `drawn`. A fresh xid is taken only when some id is not yet final (idle relays consume none).
    """

    # Newer marks only delay publication, never hide a row, so a long transaction cannot grow the list.
    MAX_MARKS = 64

    def __init__(self) -> None:
        self._marks: list[tuple[int, int]] = []  # (drawn, xid), both increasing
        self.final = 0  # every id up to here is committed or gone

    @property
    def waiting(self) -> bool:
        """Whether some drawn id is not yet known final."""
        return bool(self._marks)

    async def observe(self, connection: AsyncConnection | AsyncSession) -> int:
        """Note a new mark and advance `final` past every mark the running transactions allow.

        Commits on `connection`: call it outside any transaction of the caller's."""
        drawn = int(await connection.scalar(_DRAWN) or 0)
        newest = self._marks[-1][0] if self._marks else self.final
        if drawn > newest:
            xid = int(await connection.scalar(_FRESH_XID) or 0)
            await connection.commit()  # the fresh xid must end, or it would hold xmin below itself
            mark = (drawn, xid)
            if len(self._marks) < self.MAX_MARKS:
                self._marks.append(mark)
            else:
                self._marks[-1] = mark
        if not self._marks:
            await connection.commit()
            return self.final
        xmin = int(await connection.scalar(_XMIN) or 0)
        await connection.commit()
        while self._marks and self._marks[0][1] <= xmin:
            self.final = max(self.final, self._marks.pop(0)[0])
        return self.final


async def settled_position(connection: AsyncConnection | AsyncSession, *, within: float = 10.0) -> int:
    """An outbox id every row at or below which is final (committed or gone) from now on: a snapshot
    opened after this returns sees all of them, and any row it does not see has a larger id.
    Waits (bounded) for the transactions running now to end."""
    horizon = Horizon()
    deadline = time.monotonic() + within  # checked between statements: none is cut off midway
    while True:
        final = await horizon.observe(connection)
        if not horizon.waiting:
            return final
        if time.monotonic() >= deadline:
            raise Unavailable(f"a write transaction older than {within:g}s holds the outbox horizon; "
                              "try again")
        await asyncio.sleep(0.005)


class OutboxRelay:
    """Publishes a schema's outbox to its stream, in order; one active relay per schema (advisory lock).

    `after_publish` is a fault-injection point for tests: it runs after XADD and
    before the rows are marked published.
    """

    def __init__(self, database: Database, redis: aioredis.Redis, stream: str, *, batch_size: int = 500,
                 poll_seconds: float = 1.0, stream_max_len: int = 100_000, retention_seconds: float = 86_400.0,
                 prune_batch: int = 1_000, prune_every_seconds: float = 60.0, coalesce_seconds: float = 0.005,
                 after_publish: Callable[[Sequence[Event]], Awaitable[None]] | None = None) -> None:
        self.database = database
        self.redis = redis
        self.stream = stream
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.stream_max_len = stream_max_len
        self.retention_seconds = retention_seconds
        self.prune_batch = prune_batch
        self.prune_every_seconds = prune_every_seconds
        self.after_publish = after_publish
        self.published = 0
        self.metrics = RelayMetrics(stream.rsplit(":", 1)[-1], stream)
        self.pruned = 0
        self.holds_lock = False
        self.lock_backend_pid: int | None = None  # the PostgreSQL backend holding the relay lock
        self.horizon = Horizon()
        # Every relay statement stands alone (reads, marks, prune batches, the horizon's): AUTOCOMMIT
        # spares a BEGIN and a COMMIT round trip around each.
        self._engine = database.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.coalesce_seconds = coalesce_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_prune = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, database: Database, redis: aioredis.Redis,
                      stream: str) -> OutboxRelay:
        return cls(database, redis, stream, stream_max_len=settings.events_stream_max_len,
                   retention_seconds=settings.outbox_retention_seconds,
                   prune_every_seconds=settings.outbox_prune_every_seconds)

    async def pending(self) -> int:
        async with self.database.read() as session:
            count = await session.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
            return int(count or 0)

    async def relay_once(self, connection: AsyncConnection | None = None) -> int:
        """Publish one batch; returns how many rows it published.

        The relay passes its lock connection; without one (tests driving a relay by hand) a pooled
        connection is used for the batch.
        """
        if connection is None:
            async with self._engine.connect() as pooled:
                return await self.relay_once(pooled)
        final = await self.horizon.observe(connection)
        async with connection.begin():
            # A later snapshot: every transaction the horizon waited for ended before it.
            rows = (await connection.execute(text(
                "SELECT id, event_id, event_type, payload, traceparent, created_at FROM outbox "
                "WHERE published_at IS NULL AND id <= :final ORDER BY id LIMIT :limit"),
                {"final": final, "limit": self.batch_size})).all()
        if not rows:
            self.metrics.cycle(0.0, 0, self.published)
            return 0
        events = [Event(row.id, row.event_id, row.event_type, bytes(row.payload), row.traceparent or "",
                        row.created_at) for row in rows]
        oldest = events[0].created_at
        self.metrics.cycle((datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0, len(events),
                           self.published)
        started = time.perf_counter()
        with telemetry.consumer_span("outbox publish", [event.traceparent for event in events],
                                     stream=self.stream, events=len(events)):
            async with self.redis.pipeline(transaction=False) as pipe:
                for event in events:
                    fields: dict[str, str | bytes] = {"event_id": str(event.event_id), "type": event.event_type,
                                                      "payload": event.payload, "seq": str(event.id)}
                    if event.traceparent:
                        fields["traceparent"] = event.traceparent
                    pipe.xadd(self.stream, fields,  # type: ignore[arg-type]
                              maxlen=self.stream_max_len, approximate=True)
                await pipe.execute()
        self.metrics.publish.observe(time.perf_counter() - started)
        if self.after_publish is not None:
            await self.after_publish(events)
        async with connection.begin():
            await connection.execute(text("UPDATE outbox SET published_at = now() WHERE id = ANY(:ids)"),
                                     {"ids": [event.id for event in events]})
        self.published += len(events)
        self.metrics.cycle(0.0, 0, self.published)
        return len(events)

    async def prune(self, connection: AsyncConnection | None = None) -> int:
        """Delete published rows older than the retention, a batch per statement (short transactions that
        never touch unpublished rows, so writers never wait on them), and trim the stream by age."""
        if connection is None:
            async with self._engine.connect() as pooled:
                return await self.prune(pooled)
        removed = await delete_in_batches(connection, (
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE published_at IS NOT NULL "
            "AND published_at < now() - make_interval(secs => :retention) ORDER BY id LIMIT :batch)"),
            {"retention": self.retention_seconds}, self.prune_batch)
        # Entry ids are milliseconds since the epoch: MINID drops every entry older than the retention.
        oldest_kept = int((time.time() - self.retention_seconds) * 1000)
        await self.redis.xtrim(self.stream, minid=str(oldest_kept), approximate=False)
        self.pruned += removed
        return removed

    async def run(self) -> None:
        """Relay until cancelled; any failure ends the session (and its lock) and starts a new one after a
        growing pause, so a relay never keeps publishing on a lock it may have lost."""
        backoff = 0.1
        while True:
            try:
                await self._session()
            except Exception as error:  # noqa: BLE001 - PostgreSQL or Redis away: keep trying, never give up
                log.warning("outbox relay session ended, starting again in %.1fs: %s", backoff, error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                backoff = 0.1

    async def _session(self) -> None:
        """Hold the relay lock on one connection, relay and prune on it, wake on NOTIFY or every
        `poll_seconds`."""
        connection = await self._engine.connect()
        try:
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.add_listener(f"{self.database.schema}_outbox", lambda *_: self._wake.set())
            while not await connection.scalar(
                    text("SELECT pg_try_advisory_lock(hashtext(current_schema() || :key))"),
                    {"key": _RELAY_LOCK}):
                await connection.commit()
                await asyncio.sleep(self.poll_seconds)  # another replica relays; stand by
            self.lock_backend_pid = await connection.scalar(text("SELECT pg_backend_pid()"))
            await connection.commit()  # the lock is per session; leave no transaction open
            self.holds_lock = True
            log.info("outbox relay for %s holds the relay lock (backend %s)", self.stream, self.lock_backend_pid)
            while True:
                self._wake.clear()
                while await self.relay_once(connection) == self.batch_size:
                    pass
                if time.monotonic() >= self._next_prune:
                    await self.prune(connection)
                    self._next_prune = time.monotonic() + self.prune_every_seconds
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                # races its completion, and stop() would then wait for ever.
                # Under a stream of commits, let a few gather: one cycle (five statements) per batch,
                # not per commit. Rows drawn but not yet final: look again soon (their writers are short).
                await asyncio.sleep(self.coalesce_seconds)
                pause = min(self.poll_seconds, 0.01) if self.horizon.waiting else self.poll_seconds
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._wake.wait()
        finally:
            self.holds_lock, self.lock_backend_pid = False, None
            # Closing the session (not returning it to the pool) releases the advisory lock and
            # the LISTEN, so a relay restarted in this process can take over at once.
            await connection.invalidate()
            await connection.close()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self.stream}")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_until_done(self._task)
            self._task = None
