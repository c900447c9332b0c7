"""`conduit backup` and `conduit restore`: every service schema from one snapshot, with PostgreSQL's tools."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from conduit_server.runtime import backup
from conduit_server.runtime.embedded import database_url
from conduit_server.runtime.settings import SERVICES, Settings


def _backup(args: argparse.Namespace, settings: Settings) -> None:
    folder = Path(args.out) if args.out else backup.default_folder(Path(settings.state_dir))

    async def main() -> backup.Manifest:
        async with database_url(settings) as url:
            return await backup.backup(url, folder, args.schema or SERVICES)

    manifest = _report_errors(main)
    print(f"backed up {', '.join(manifest.schemas)} as of {manifest.taken_at} into {folder}")


def _restore(args: argparse.Namespace, settings: Settings) -> None:
    async def main() -> backup.Manifest:
        async with database_url(settings) as url:
            return await backup.restore(url, Path(args.folder), args.schema)

    manifest = _report_errors(main)
    print(f"restored {', '.join(args.schema or manifest.schemas)} as of {manifest.taken_at}")


def _report_errors(main: Callable[[], Coroutine[Any, Any, backup.Manifest]]) -> backup.Manifest:
    try:
        return asyncio.run(main())
    except backup.BackupError as error:
        sys.exit(f"error: {error}")


def register(commands: Any) -> None:
    dump = commands.add_parser("backup", help="dump every service schema from one snapshot (pg_dump)")
    dump.add_argument("--out", help="a new folder for the dump files (default: .state/backups/<time>)")
    dump.add_argument("--schema", action="append", choices=SERVICES, help="only this schema (repeatable)")
    dump.set_defaults(handler=_backup)
    load = commands.add_parser("restore", help="replace service schemas with a backup's (stop the services first)")
    load.add_argument("folder", help="a folder written by `conduit backup`")
    load.add_argument("--schema", action="append", choices=SERVICES, help="only this schema (repeatable)")
    load.set_defaults(handler=_restore)
