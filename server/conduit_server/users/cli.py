"""Operator commands of the users service (first admin, signing keys, service accounts).

    conduit users create-admin --username NAME      make a registered account an admin
    conduit users grant-role --username NAME --role ROLE
    conduit users revoke-role --username NAME --role ROLE
    conduit keys rotate [--publish-ahead-seconds N]  add a signing key; older keys retire later
    conduit keys list
    conduit service-accounts create --name NAME [--scope S ...]   prints the secret once
    conduit service-accounts list
    conduit service-accounts revoke CLIENT_ID

Each command talks to the users schema directly (PostgreSQL only), applying
migrations first, so it works before the service has ever started.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from conduit_server.runtime import migrations
from conduit_server.runtime.db import Database
from conduit_server.runtime.embedded import database_url
from conduit_server.runtime.errors import ConduitError, NotFound
from conduit_server.runtime.secrets import with_local_secrets
from conduit_server.runtime.settings import Settings
from conduit_server.users.app import MIGRATIONS, admin_for, signer_for
from conduit_server.users.repository import models
from conduit_server.users.repository.models import ROLES


@dataclass(frozen=True)
class Invocation:
    """What a command works with: its arguments, the migrated users schema, settings, output."""

    args: argparse.Namespace
    database: Database
    settings: Settings
    out: TextIO


Command = Callable[[Invocation], Awaitable[None]]


class CommandFailed(SystemExit):
    """A command that could not do what was asked; the message goes to stderr."""


class _Refused(Exception):
    """Raised inside a command; becomes CommandFailed outside the event loop."""


@asynccontextmanager
async def users_database(settings: Settings) -> AsyncIterator[Database]:
    """The users schema, migrated; the embedded PostgreSQL when no URL is configured."""
    async with database_url(settings) as url:
        database = Database(url, models.SCHEMA, pool_size=1, max_overflow=1)
        try:
            await migrations.upgrade(database, MIGRATIONS, models.Base.metadata)
            yield database
        finally:
            await database.close()


def run(command: Command, args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> None:
    """Run one async command with local secrets and a migrated database; domain errors exit 1."""
    settings = with_local_secrets(settings)

    async def main() -> None:
        async with users_database(settings) as database:
            await command(Invocation(args, database, settings, out or sys.stdout))

    try:
        asyncio.run(main())
    except ConduitError as error:
        raise CommandFailed(f"error: {error.message}") from None
    except _Refused as refused:
        raise CommandFailed(f"error: {refused}") from None


async def _create_admin(run: Invocation) -> None:
    roles, _ = admin_for(run.database)
    try:
        held = await roles.grant(run.args.username, "admin")
    except NotFound:
        raise _Refused(f"no account named {run.args.username!r}; register it first "
                       "(POST /api/users), then run this again") from None
    print(f"{run.args.username} now holds: {', '.join(held)} (effective with their next token)", file=run.out)


async def _grant_role(run: Invocation) -> None:
    roles, _ = admin_for(run.database)
    held = await roles.grant(run.args.username, run.args.role)
    print(f"{run.args.username} now holds: {', '.join(held)}", file=run.out)


async def _revoke_role(run: Invocation) -> None:
    roles, _ = admin_for(run.database)
    held = await roles.revoke(run.args.username, run.args.role)
    print(f"{run.args.username} now holds: {', '.join(held)}", file=run.out)


async def _rotate_keys(run: Invocation) -> None:
    signer = signer_for(run.settings, run.database)
    rotation = await signer.rotate(publish_ahead_seconds=run.args.publish_ahead_seconds)
    new_key = rotation.new_key
    print(f"new signing key {new_key.kid} signs from {new_key.activates_at.isoformat()}", file=run.out)
    for key in rotation.scheduled:
        retire = key.retire_after.isoformat() if key.retire_after else "never"
        print(f"key {key.kid} keeps verifying until {retire}", file=run.out)


async def _list_keys(run: Invocation) -> None:
    signer = signer_for(run.settings, run.database)
    await signer.reload(create_if_missing=False)
    now = datetime.now(UTC)
    for key in signer.signing_keys():
        state = "signing" if key.can_sign(now) else ("published" if key.is_published(now) else "retired")
        retire = key.retire_after.isoformat() if key.retire_after else "-"
        print(f"{key.kid}  {state:<9}  activates {key.activates_at.isoformat()}  retires {retire}",
              file=run.out)


async def _create_account(run: Invocation) -> None:
    _, accounts = admin_for(run.database)
    info, secret = await accounts.create(run.args.name, run.args.scope or [])
    print(f"client_id:     {info.client_id}", file=run.out)
    print(f"client_secret: {secret}", file=run.out)
    print(f"scopes:        {' '.join(info.scopes) or '(none)'}", file=run.out)
    print("The secret is shown this once; store it now.", file=run.out)


async def _list_accounts(run: Invocation) -> None:
    _, accounts = admin_for(run.database)
    for info in await accounts.all():
        state = "revoked" if info.revoked else "active"
        print(f"{info.client_id}  {state:<7}  {info.name}  [{' '.join(info.scopes)}]", file=run.out)


async def _revoke_account(run: Invocation) -> None:
    _, accounts = admin_for(run.database)
    await accounts.revoke(run.args.client_id)
    print(f"{run.args.client_id} revoked", file=run.out)


def _handler(command: Command) -> Callable[[argparse.Namespace, Settings], None]:
    def handle(args: argparse.Namespace, settings: Settings) -> None:
        run(command, args, settings)

    return handle


def register(commands: Any) -> None:
    """Add this service's subcommands; each sets `handler(args, settings)` with set_defaults."""
    users = commands.add_parser("users", help="accounts: admins and roles").add_subparsers(
        dest="users_command", required=True)
    admin = users.add_parser("create-admin", help="make a registered account an admin")
    admin.add_argument("--username", required=True)
    admin.set_defaults(handler=_handler(_create_admin))
    for name, command, text in (("grant-role", _grant_role, "grant a role"),
                                ("revoke-role", _revoke_role, "revoke a role")):
        parser = users.add_parser(name, help=text)
        parser.add_argument("--username", required=True)
        parser.add_argument("--role", required=True, choices=ROLES)
        parser.set_defaults(handler=_handler(command))

    keys = commands.add_parser("keys", help="access-token signing keys").add_subparsers(
        dest="keys_command", required=True)
    rotate = keys.add_parser("rotate", help="add a signing key; older keys verify until their tokens expire")
    rotate.add_argument("--publish-ahead-seconds", type=float, default=60.0,
                        help="publish the new key this long before it signs (default 60, > one key reload)")
    rotate.set_defaults(handler=_handler(_rotate_keys))
    keys.add_parser("list", help="list signing keys").set_defaults(handler=_handler(_list_keys))

    accounts = commands.add_parser("service-accounts", help="OAuth2 clients").add_subparsers(
        dest="accounts_command", required=True)
    create = accounts.add_parser("create", help="create a service account and print its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", help="a scope it may be granted (repeatable)")
    create.set_defaults(handler=_handler(_create_account))
    accounts.add_parser("list", help="list service accounts").set_defaults(handler=_handler(_list_accounts))
    revoke = accounts.add_parser("revoke", help="revoke a service account")
    revoke.add_argument("client_id")
    revoke.set_defaults(handler=_handler(_revoke_account))


__all__ = ["CommandFailed", "Invocation", "register", "run", "users_database"]
