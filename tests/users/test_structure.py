"""The users package keeps its shape: migrations match the models, SQL stays in the repository."""

from __future__ import annotations

import ast
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from conduit_server.users import models
from tests.fixtures.users import UsersServer

PACKAGE = Path(__file__).resolve().parents[2] / "server" / "conduit_server" / "users"
# Modules allowed to speak SQL: the repository, and the table definitions.
SQL_MODULES = {"repository.py", "models.py"}


async def test_migrations_create_exactly_the_tables_of_the_models(users_server: UsersServer) -> None:
    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={
            "include_name": lambda name, kind, _: not (kind == "table" and name == "alembic_version")})
        return list(compare_metadata(context, models.Base.metadata))

    async with users_server.app.database.engine.connect() as connection:
        assert await connection.run_sync(differences) == []


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_sql_is_written_only_in_the_repository() -> None:
    offenders = {
        path.name: sorted(name for name in _imports(path) if name.startswith("sqlalchemy")
                          and not name.endswith(("AsyncSession", "ext.asyncio")))
        for path in PACKAGE.glob("*.py") if path.name not in SQL_MODULES}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_users_service_never_imports_another_service() -> None:
    others = ("conduit_server.articles", "conduit_server.search", "conduit_server.realtime")
    offenders = [f"{path.name}: {name}" for path in PACKAGE.rglob("*.py")
                 for name in _imports(path) if name.startswith(others)]
    assert offenders == []


def test_modules_stay_small() -> None:
    sizes = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert {name: size for name, size in sizes.items() if size > 400} == {}
