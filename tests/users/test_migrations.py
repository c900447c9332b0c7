"""The users migrations create exactly the tables of its models (tests/test_structure.py checks the shape)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from conduit_server.users.repository import models
from tests.fixtures.users import UsersServer


async def test_migrations_create_exactly_the_tables_of_the_models(users_server: UsersServer) -> None:
    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={
            "include_name": lambda name, kind, _: not (kind == "table" and name == "alembic_version")})
        return list(compare_metadata(context, models.Base.metadata))

    async with users_server.app.database.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
