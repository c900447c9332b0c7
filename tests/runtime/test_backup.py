"""`conduit backup` / `conduit restore` on a real PostgreSQL: a backup taken under write load restores to
exactly the source at the backup's snapshot, schema by schema, and a failed restore changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from conduit_server import cli
from conduit_server.articles.app import MIGRATIONS as ARTICLES_MIGRATIONS
from conduit_server.articles.repository import models as articles_models
from conduit_server.runtime import backup, migrations
from conduit_server.runtime.db import Database
from conduit_server.users.app import MIGRATIONS as USERS_MIGRATIONS
from conduit_server.users.repository import models as users_models

SCHEMAS = ("users", "articles")
Tables = dict[str, list[str]]


async def _fresh_database(admin_url: str) -> str:
    name = f"backup_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return admin_url.replace("/conduit?", f"/{name}?", 1)


@pytest.fixture
async def source(postgres_url: str) -> str:
    url = await _fresh_database(postgres_url)
    for schema, location, metadata in (("users", USERS_MIGRATIONS, users_models.Base.metadata),
                                       ("articles", ARTICLES_MIGRATIONS, articles_models.Base.metadata)):
        database = Database(url, schema, pool_size=1, max_overflow=0)
        try:
            await migrations.upgrade(database, location, metadata)
        finally:
            await database.close()
    return url


async def _tables(connection: asyncpg.Connection, schemas: tuple[str, ...] = SCHEMAS) -> Tables:
    """Every row of every table of the schemas, as sorted text: two databases compare equal or not."""
    names = await connection.fetch(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE' ORDER BY 1, 2", list(schemas))
    tables: Tables = {}
    for row in names:
        qualified = f'"{row["table_schema"]}"."{row["table_name"]}"'
        rows = await connection.fetch(f"SELECT t::text AS line FROM {qualified} t")  # noqa: S608 - catalog names
        tables[qualified] = sorted(r["line"] for r in rows)
    return tables


async def _write_until(url: str, stop: asyncio.Event, warm: asyncio.Event) -> int:
    """A steady writer: one article with a tag per transaction until told to stop; `warm` after 20."""
    connection = await asyncpg.connect(url)
    written = 0
    try:
        while not stop.is_set():
            async with connection.transaction():
                article = await connection.fetchval(
                    "INSERT INTO articles.articles (slug, title, description, body, author_id) "
                    "VALUES ($1, 'T', 'd', 'b', 1) RETURNING id", f"a-{uuid.uuid4().hex}")
                tag = await connection.fetchval(
                    "INSERT INTO articles.tags (name) VALUES ($1) RETURNING id", f"t-{uuid.uuid4().hex[:12]}")
                await connection.execute("INSERT INTO articles.article_tags VALUES ($1, $2, 0)", article, tag)
            written += 1
            if written == 20:
                warm.set()
    finally:
        await connection.close()
    return written


async def test_a_backup_under_write_load_restores_to_the_source_at_its_snapshot(
        source: str, postgres_url: str, tmp_path: Path) -> None:
    stop, warm = asyncio.Event(), asyncio.Event()
    writer = asyncio.create_task(_write_until(source, stop, warm))
    at_snapshot: Tables = {}
    observer = await asyncpg.connect(source)

    async def read_at(snapshot: str) -> None:
        # The source exactly as the dump sees it, while the writer goes on.
        async with observer.transaction(isolation="repeatable_read", readonly=True):
            await observer.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            at_snapshot.update(await _tables(observer))

    try:
        await asyncio.wait_for(warm.wait(), 60)
        manifest = await backup.backup(source, tmp_path / "dump", SCHEMAS, on_snapshot=read_at)
    finally:
        stop.set()
        written = await writer
        await observer.close()
    assert manifest.schemas == SCHEMAS
    assert len(at_snapshot['"articles"."articles"']) >= 20
    # Writes went on after the snapshot: the source moved past it.
    assert written > len(at_snapshot['"articles"."articles"'])

    target = await _fresh_database(postgres_url)
    await backup.restore(target, tmp_path / "dump")
    restored = await asyncpg.connect(target)
    try:
        assert await _tables(restored) == at_snapshot
        # Sequences came back too: a new row does not collide with a restored one.
        await restored.execute("INSERT INTO articles.articles (slug, title, description, body, author_id) "
                               "VALUES ('after-restore', 'T', 'd', 'b', 1)")
    finally:
        await restored.close()


async def test_restore_replaces_a_schema_whole_and_a_failed_restore_changes_nothing(
        source: str, tmp_path: Path) -> None:
    connection = await asyncpg.connect(source)
    try:
        await connection.execute("INSERT INTO articles.articles (slug, title, description, body, author_id) "
                                 "VALUES ('before', 'T', 'd', 'b', 1)")
        await backup.backup(source, tmp_path / "dump", SCHEMAS)
        expected = await _tables(connection)
        await connection.execute("INSERT INTO articles.articles (slug, title, description, body, author_id) "
                                 "VALUES ('after', 'T', 'd', 'b', 1)")
        await connection.execute("CREATE TABLE articles.made_later (id int)")
        await backup.restore(source, tmp_path / "dump", ["articles"])
        assert await _tables(connection) == expected

        # A damaged dump: the restore fails with the tool's reason and the schema keeps its rows.
        await connection.execute("INSERT INTO articles.articles (slug, title, description, body, author_id) "
                                 "VALUES ('kept', 'T', 'd', 'b', 1)")
        before = await _tables(connection)
        dump = tmp_path / "dump" / "articles.dump"
        dump.write_bytes(dump.read_bytes()[: len(dump.read_bytes()) // 2])
        with pytest.raises(backup.BackupError, match="pg_restore failed"):
            await backup.restore(source, tmp_path / "dump", ["articles"])
        assert await _tables(connection) == before
    finally:
        await connection.close()


async def test_refusals_name_the_problem(source: str, tmp_path: Path) -> None:
    with pytest.raises(backup.BackupError, match="is not a backup"):
        await backup.restore(source, tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(backup.BackupError, match="not empty"):
        await backup.backup(source, tmp_path / "full", SCHEMAS)
    await backup.backup(source, tmp_path / "dump", ["users"])
    with pytest.raises(backup.BackupError, match="no schema articles"):
        await backup.restore(source, tmp_path / "dump", ["articles"])
    with pytest.raises(backup.BackupError, match="none of the schemas"):
        await backup.backup(source, tmp_path / "none", ["nothing_here"])
    # A manifest is a file anyone may have edited: its schema names never reach SQL unchecked.
    for hostile in ('{"format_version": 1, "schemas": ["users\\" CASCADE; DROP SCHEMA articles"]}',
                    '{"format_version": 1, "schemas": ["users\\u0000"]}', '{"format_version": 1, "schemas": "users"}',
                    "[1, 2]", "not json \udcff".encode("utf-8", "surrogateescape").decode("latin-1")):
        (tmp_path / "forged").mkdir(exist_ok=True)
        (tmp_path / "forged" / "backup.json").write_text(hostile)
        with pytest.raises(backup.BackupError, match=r"backup\.json"):
            await backup.restore(source, tmp_path / "forged")
    with pytest.raises(backup.BackupError, match="not a PostgreSQL URL"):
        backup.libpq_url("mysql://x/y")
    assert backup.libpq_url("postgresql+asyncpg://u@h/db?x=1") == "postgresql://u@h/db?x=1"


def test_the_cli_round_trip(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CONDUIT_DATABASE_URL", source)
    monkeypatch.setenv("CONDUIT_STATE_DIR", str(tmp_path / "state"))
    cli.main(["backup", "--out", str(tmp_path / "dump")])
    assert "backed up users, articles as of" in capsys.readouterr().out
    cli.main(["restore", str(tmp_path / "dump"), "--schema", "users"])
    assert "restored users as of" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="is not a backup"):
        cli.main(["restore", str(tmp_path)])
