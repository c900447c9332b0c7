"""Roles and the admin RPCs: method rules from the contract, the first admin from the CLI."""

from __future__ import annotations

import argparse
import asyncio

import grpc
import pytest
from sqlalchemy import text

from conduit.users.v1 import events_pb2, users_pb2
from conduit_server.runtime.settings import Settings
from conduit_server.users import cli
from tests.fixtures.users import UsersServer, running_users_service, settings_for, unique_name

from .support import fails, reason, violations


def run_cli(settings: Settings, *argv: str) -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    args.handler(args, settings)


async def test_non_admin_is_denied_until_the_cli_makes_them_admin(
        users_server: UsersServer, postgres_url: str, redis_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    name = unique_name("boss")
    _, token = await users_server.register(name)
    request = users_pb2.ListUserRolesRequest(username=name)
    error = await fails(users_server.admin.ListUserRoles(request, metadata=users_server.auth(token)),
                        grpc.StatusCode.PERMISSION_DENIED)
    assert reason(error) == "INSUFFICIENT_ROLE"
    await fails(users_server.admin.ListUserRoles(request), grpc.StatusCode.UNAUTHENTICATED)

    await asyncio.to_thread(run_cli, settings_for(postgres_url, redis_url), "users", "create-admin",
                            "--username", name)
    assert "admin, user" in capsys.readouterr().out
    # The old token still carries the old roles: role changes take effect on the next token.
    await fails(users_server.admin.ListUserRoles(request, metadata=users_server.auth(token)),
                grpc.StatusCode.PERMISSION_DENIED)
    _, token = await users_server.register(name)  # logs in again
    answer = await users_server.admin.ListUserRoles(request, metadata=users_server.auth(token))
    assert list(answer.roles) == ["admin", "user"]


async def admin_token(users_server: UsersServer) -> str:
    name = unique_name("admin")
    await users_server.register(name)
    await users_server.app.roles.grant(name, "admin")
    return (await users_server.register(name))[1]


async def test_admin_grants_and_revokes_roles_which_reach_the_next_token(users_server: UsersServer) -> None:
    admin = users_server.auth(await admin_token(users_server))
    name = unique_name("mod")
    user_id, _ = await users_server.register(name)
    granted = await users_server.admin.GrantRole(users_pb2.GrantRoleRequest(username=name, role="moderator"),
                                                 metadata=admin)
    assert list(granted.roles) == ["moderator", "user"]
    again = await users_server.admin.GrantRole(users_pb2.GrantRoleRequest(username=name, role="moderator"),
                                               metadata=admin)
    assert list(again.roles) == ["moderator", "user"]
    _, token = await users_server.register(name)
    assert (await users_server.app.verifier.verify(token)).roles == frozenset({"user", "moderator"})
    revoked = await users_server.admin.RevokeRole(
        users_pb2.RevokeRoleRequest(username=name, role="moderator"), metadata=admin)
    assert list(revoked.roles) == ["user"]
    _, token = await users_server.register(name)
    assert (await users_server.app.verifier.verify(token)).roles == frozenset({"user"})
    async with users_server.app.database.read() as session:
        rows = await session.execute(text("SELECT payload FROM outbox WHERE event_type = 'roles_changed' ORDER BY id"))
        changes = [events_pb2.UserEvent.FromString(bytes(row.payload)).roles_changed for row in rows]
    assert [list(change.roles) for change in changes if change.user_id == user_id] == [
        ["moderator", "user"], ["user"]]


async def test_role_rules_unknown_roles_users_and_the_implicit_user_role(users_server: UsersServer) -> None:
    admin = users_server.auth(await admin_token(users_server))
    name = unique_name()
    await users_server.register(name)
    error = await fails(users_server.admin.GrantRole(users_pb2.GrantRoleRequest(username=name, role="god"),
                                                     metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert violations(error)[0][0] == "role"
    error = await fails(users_server.admin.RevokeRole(users_pb2.RevokeRoleRequest(username=name, role="user"),
                                                      metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert violations(error) == [("role", "every account holds the user role")]
    await fails(users_server.admin.GrantRole(users_pb2.GrantRoleRequest(username=unique_name("ghost"),
                                                                        role="admin"), metadata=admin),
                grpc.StatusCode.NOT_FOUND)


async def test_the_last_admin_cannot_be_demoted(postgres_url: str, redis_url: str) -> None:
    async with running_users_service(postgres_url, redis_url, schema="users_last_admin") as service:
        name = unique_name("only")
        await service.register(name)
        await service.app.roles.grant(name, "admin")
        _, token = await service.register(name)
        error = await fails(service.admin.RevokeRole(users_pb2.RevokeRoleRequest(username=name, role="admin"),
                                                     metadata=service.auth(token)),
                            grpc.StatusCode.FAILED_PRECONDITION)
        assert reason(error) == "LAST_ADMIN"
        second = unique_name("second")
        await service.register(second)
        await service.app.roles.grant(second, "admin")
        assert await service.app.roles.revoke(name, "admin") == ("user",)


async def test_admin_manages_service_accounts_and_never_sees_a_secret_twice(users_server: UsersServer
                                                                           ) -> None:
    admin = users_server.auth(await admin_token(users_server))
    created = await users_server.admin.CreateServiceAccount(users_pb2.CreateServiceAccountRequest(
        name="search indexer", scopes=["articles.read", "articles.read"]), metadata=admin)
    account = created.service_account
    assert created.client_secret.startswith("cst_")
    assert (account.name, list(account.scopes)) == ("search indexer", ["articles.read"])
    assert not account.revoked
    listed = await users_server.admin.ListServiceAccounts(users_pb2.ListServiceAccountsRequest(),
                                                          metadata=admin)
    assert account.client_id in {a.client_id for a in listed.service_accounts}
    assert created.client_secret.encode() not in listed.SerializeToString()
    await users_server.admin.RevokeServiceAccount(users_pb2.RevokeServiceAccountRequest(
        client_id=account.client_id), metadata=admin)
    listed = await users_server.admin.ListServiceAccounts(users_pb2.ListServiceAccountsRequest(),
                                                          metadata=admin)
    assert next(a for a in listed.service_accounts if a.client_id == account.client_id).revoked
    await fails(users_server.admin.RevokeServiceAccount(users_pb2.RevokeServiceAccountRequest(
        client_id="sa_missing"), metadata=admin), grpc.StatusCode.NOT_FOUND)
    error = await fails(users_server.admin.CreateServiceAccount(users_pb2.CreateServiceAccountRequest(
        name="bad", scopes=["two words"]), metadata=admin), grpc.StatusCode.INVALID_ARGUMENT)
    assert violations(error)[0][0] == "scopes"


async def test_a_service_token_cannot_call_user_only_methods(users_server: UsersServer) -> None:
    info, secret = await users_server.app.service_accounts.create(unique_name("svc"), [])
    token = (await users_server.auth_service.CreateOAuthToken(users_pb2.CreateOAuthTokenRequest(
        grant_type="client_credentials", client_id=info.client_id, client_secret=secret))).access_token
    await fails(users_server.admin.ListServiceAccounts(users_pb2.ListServiceAccountsRequest(),
                                                       metadata=users_server.auth(token)),
                grpc.StatusCode.PERMISSION_DENIED)
    error = await fails(users_server.users.GetCurrentUser(users_pb2.GetCurrentUserRequest(),
                                                          metadata=users_server.auth(token)),
                        grpc.StatusCode.PERMISSION_DENIED)
    assert reason(error) == "USER_ONLY"
