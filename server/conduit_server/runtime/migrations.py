"""Alembic migrations per service, applied on start under an advisory lock.

Each service keeps its revisions in `<service>/migrations/` with a two-line
`env.py` that calls `run_in_env`; the version table lives in the service schema.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text

from conduit_server.runtime.db import Database


def _config(script_location: Path, schema: str, connection: Connection, metadata: MetaData) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes.update(connection=connection, schema=schema, metadata=metadata)
    return config


async def upgrade(database: Database, script_location: Path, metadata: MetaData) -> None:
    """Bring the service schema to the newest revision; safe with many replicas starting at once."""
    await database.ensure_schema()
    async with database.engine.begin() as connection:
        await connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                                 {"name": f"conduit-migrate-{database.schema}"})

        def run(sync_connection: Connection) -> None:
            command.upgrade(_config(script_location, database.schema, sync_connection, metadata), "head")

        await connection.run_sync(run)


def _not_version_table(name: str | None, kind: str, _parents: object) -> bool:
    return not (kind == "table" and name == "alembic_version")


def run_in_env() -> None:
    """The body of every service's `env.py` (online mode only: we always have a connection)."""
    attributes = context.config.attributes
    schema: str = attributes["schema"]
    context.configure(connection=attributes["connection"], target_metadata=attributes["metadata"],
                      version_table_schema=schema, include_schemas=False,
                      include_name=_not_version_table)
    with context.begin_transaction():
        context.run_migrations()
