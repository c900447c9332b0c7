"""Signing-key rotation without downtime, persisted keys, and the operator's `conduit keys` commands."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
import pytest_asyncio
from sqlalchemy import text

from conduit.users.v1 import users_pb2
from conduit_server.runtime.db import Database
from conduit_server.users import cli
from conduit_server.users.app import signer_for
from conduit_server.users.domain.keys import KeyDecryptionError
from tests.fixtures.users import UsersServer, running_users_service, settings_for, unique_name

from .support import fails


@pytest_asyncio.fixture(loop_scope="session")
async def isolated(postgres_url: str, redis_url: str) -> AsyncIterator[UsersServer]:
    """A users service of its own (schema `users_rotation`), so retiring keys disturbs no other test."""
    async with running_users_service(postgres_url, redis_url, schema="users_rotation") as service:
        yield service


async def whoami(service: UsersServer, token: str) -> str:
    answer = await service.users.GetCurrentUser(users_pb2.GetCurrentUserRequest(),
                                                metadata=service.auth(token))
    return answer.user.username


async def jwks_kids(service: UsersServer) -> set[str]:
    return {key.kid for key in (await service.auth_service.GetJwks(users_pb2.GetJwksRequest())).keys}


async def test_token_signed_before_rotation_verifies_after_it_until_the_old_key_retires(
        isolated: UsersServer) -> None:
    name = unique_name()
    _, old_token = await isolated.register(name)
    rotation = await isolated.app.signer.rotate()  # what `conduit keys rotate` does, effective now
    (old_key,) = rotation.scheduled
    assert old_key.retire_after is not None
    assert await jwks_kids(isolated) >= {old_key.kid, rotation.new_key.kid}
    assert await whoami(isolated, old_token) == name
    _, new_token = await isolated.register(name)  # logs in again: signed with the new key
    assert (await isolated.app.verifier.verify(new_token)) is not None
    assert new_token.split(".")[0] != old_token.split(".")[0]
    # Once the last token the old key could have signed has expired, the key is retired.
    await isolated.app.signer.retire_expired(now=old_key.retire_after + timedelta(seconds=1))
    assert old_key.kid not in await jwks_kids(isolated)
    error = await fails(isolated.users.GetCurrentUser(users_pb2.GetCurrentUserRequest(),
                                                      metadata=isolated.auth(old_token)),
                        grpc.StatusCode.UNAUTHENTICATED)
    assert "unknown key" in (error.details() or "")
    assert await whoami(isolated, new_token) == name


async def test_a_replica_picks_up_a_rotation_made_elsewhere_on_reload(isolated: UsersServer,
                                                                      postgres_url: str, redis_url: str
                                                                      ) -> None:
    other = signer_for(settings_for(postgres_url, redis_url), isolated.app.database)
    rotation = await other.rotate()
    assert rotation.new_key.kid not in await jwks_kids(isolated)
    await isolated.app.signer.reload()  # the periodic reload, without waiting 30 s
    assert rotation.new_key.kid in await jwks_kids(isolated)
    _, token = await isolated.register(unique_name())
    assert isolated.app.verifier is isolated.app.signer.verifier
    header = (await isolated.app.verifier.verify(token))
    assert header.subject.startswith("user:")


async def test_private_keys_are_encrypted_at_rest_and_need_the_kek(isolated: UsersServer, postgres_url: str,
                                                                   redis_url: str) -> None:
    async with isolated.app.database.read() as session:
        rows = (await session.execute(text("SELECT kid, private_key_blob FROM signing_keys"))).all()
    assert rows
    for kid, blob in rows:
        key = next(k for k in isolated.app.signer.signing_keys() if k.kid == kid)
        from cryptography.hazmat.primitives import serialization

        raw = key.private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                            serialization.NoEncryption())
        assert raw not in bytes(blob)
    wrong = signer_for(settings_for(postgres_url, redis_url, key_encryption_key="another-kek-entirely"),
                       isolated.app.database)
    with pytest.raises(KeyDecryptionError):
        await wrong.reload()


async def test_cli_rotation_publishes_a_new_key_ahead_and_keeps_old_tokens_valid(
        users_server: UsersServer, postgres_url: str, redis_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    name = unique_name()
    _, token = await users_server.register(name)
    before = await jwks_kids(users_server)
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["keys", "rotate", "--publish-ahead-seconds", "120"])
    await asyncio.to_thread(args.handler, args, settings_for(postgres_url, redis_url))
    output = capsys.readouterr().out
    assert output.startswith("new signing key ")
    new_kid = output.split()[3]
    await users_server.app.signer.reload()
    after = await jwks_kids(users_server)
    assert after >= before | {new_kid}  # published ahead of use: every verifier learns it first
    assert await whoami(users_server, token) == name
    _, fresh = await users_server.register(name)
    assert await whoami(users_server, fresh) == name
    args = parser.parse_args(["keys", "list"])
    await asyncio.to_thread(args.handler, args, settings_for(postgres_url, redis_url))
    listing = capsys.readouterr().out
    assert f"{new_kid}  published" in listing
    assert "signing" in listing


async def test_cli_reports_domain_errors_without_a_traceback(postgres_url: str, redis_url: str) -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["users", "create-admin", "--username", unique_name("nobody")])
    with pytest.raises(cli.CommandFailed, match="register it first"):
        await asyncio.to_thread(args.handler, args, settings_for(postgres_url, redis_url))


def test_database_schema_is_the_users_schema() -> None:
    assert Database("postgresql://x@localhost/db", "users").schema == "users"
