"""RealWorld registration, login, current user and update through gRPC."""

from __future__ import annotations

import logging

import grpc
import pytest
from sqlalchemy import text

from conduit.users.v1 import users_pb2
from conduit_server.runtime.errors import ERROR_BODY_KEY
from conduit_server.users.domain.passwords import Argon2Parameters, PasswordHasher
from tests.fixtures.users import PASSWORD, UsersServer, email_for, running_users_service, unique_name
from tests.support import trailers

from .support import fails, login, new_user, reason, violations


async def stored_hash(users_server: UsersServer, username: str) -> str:
    async with users_server.app.database.read() as session:
        value = await session.scalar(text("SELECT password_hash FROM users WHERE username = :name"),
                                     {"name": username})
    assert isinstance(value, str)
    return value


async def test_registration_returns_the_user_with_a_token_that_authenticates(users_server: UsersServer
                                                                            ) -> None:
    name = unique_name("jake")
    response = await users_server.users.CreateUser(new_user(name, f"{name}@Example.TEST", PASSWORD))
    assert response.user.username == name
    assert response.user.email == f"{name}@example.test"  # stored lower-cased
    assert (response.user.bio, response.user.image) == ("", "")
    principal = await users_server.app.verifier.verify(response.user.token)
    assert principal.username == name
    assert principal.roles == frozenset({"user"})
    current = await users_server.users.GetCurrentUser(users_pb2.GetCurrentUserRequest(),
                                                      metadata=users_server.auth(response.user.token))
    assert current.user.username == name
    assert current.user.token


async def test_login_with_any_email_case_returns_a_fresh_token(users_server: UsersServer) -> None:
    name = unique_name()
    await users_server.register(name)
    response = await users_server.users.Login(login(email_for(name).upper(), PASSWORD))
    assert response.user.username == name
    assert (await users_server.app.verifier.verify(response.user.token)).username == name


async def test_wrong_password_and_unknown_email_get_the_same_unauthenticated_answer(
        users_server: UsersServer) -> None:
    name = unique_name()
    await users_server.register(name)
    wrong = await fails(users_server.users.Login(login(email_for(name), "not the password")),
                        grpc.StatusCode.UNAUTHENTICATED)
    unknown = await fails(users_server.users.Login(login(f"nobody-{name}@example.test", PASSWORD)),
                          grpc.StatusCode.UNAUTHENTICATED)
    assert wrong.details() == unknown.details() == "email or password is invalid"
    assert reason(wrong) == reason(unknown) == "INVALID_CREDENTIALS"


async def test_invalid_registration_reports_each_field_realworld_style(users_server: UsersServer) -> None:
    error = await fails(users_server.users.CreateUser(new_user("", "not-an-email", "short")),
                        grpc.StatusCode.INVALID_ARGUMENT)
    assert violations(error) == [
        ("user.email", "is invalid"),
        ("user.password", "is too short (minimum is 8 characters)"),
        ("user.username", "can't be blank"),
    ]
    body = trailers(error)[ERROR_BODY_KEY]
    assert '"username":["can\'t be blank"]' in body
    error = await fails(users_server.users.CreateUser(users_pb2.CreateUserRequest()),
                        grpc.StatusCode.INVALID_ARGUMENT)
    assert violations(error) == [("user", "can't be blank")]
    error = await fails(users_server.users.Login(login("", "")), grpc.StatusCode.INVALID_ARGUMENT)
    assert violations(error) == [("user.email", "can't be blank"), ("user.password", "can't be blank")]


async def test_taken_email_and_username_are_named_case_insensitively(users_server: UsersServer) -> None:
    name = unique_name("Taken")
    await users_server.register(name)
    error = await fails(users_server.users.CreateUser(new_user(name.upper(), email_for(name).upper(),
                                                               PASSWORD)),
                        grpc.StatusCode.ALREADY_EXISTS)
    assert violations(error) == [("user.email", "has already been taken"),
                                 ("user.username", "has already been taken")]
    assert trailers(error)[ERROR_BODY_KEY] == (
        '{"errors":{"email":["has already been taken"],"username":["has already been taken"]}}')
    error = await fails(users_server.users.CreateUser(new_user(name.lower(), f"other-{name}@example.test",
                                                               PASSWORD)),
                        grpc.StatusCode.ALREADY_EXISTS)
    assert violations(error) == [("user.username", "has already been taken")]


async def test_update_changes_given_fields_and_leaves_empty_ones_unchanged(users_server: UsersServer) -> None:
    name = unique_name()
    _, token = await users_server.register(name)
    renamed = unique_name("renamed")
    response = await users_server.users.UpdateCurrentUser(users_pb2.UpdateCurrentUserRequest(
        user=users_pb2.UpdateUser(email="", password="", username=renamed, bio="I like gRPC",
                                  image="https://example.test/me.png")), metadata=users_server.auth(token))
    assert response.user.username == renamed
    assert response.user.email == email_for(name)
    assert response.user.bio == "I like gRPC"
    assert response.user.image == "https://example.test/me.png"
    assert (await users_server.app.verifier.verify(response.user.token)).username == renamed
    # RealWorld's settings page sends every field; "" means unchanged, password included.
    response = await users_server.users.UpdateCurrentUser(users_pb2.UpdateCurrentUserRequest(
        user=users_pb2.UpdateUser(email="", password="", username="", bio="", image="")),
        metadata=users_server.auth(token))
    assert (response.user.username, response.user.bio) == (renamed, "I like gRPC")
    await users_server.users.Login(login(email_for(name), PASSWORD))


async def test_update_of_password_and_email_takes_effect_for_login(users_server: UsersServer) -> None:
    name = unique_name()
    _, token = await users_server.register(name)
    new_email = f"new-{name}@example.test"
    await users_server.users.UpdateCurrentUser(users_pb2.UpdateCurrentUserRequest(
        user=users_pb2.UpdateUser(email=new_email, password="a brand new password")),
        metadata=users_server.auth(token))
    await fails(users_server.users.Login(login(email_for(name), PASSWORD)), grpc.StatusCode.UNAUTHENTICATED)
    await fails(users_server.users.Login(login(new_email, PASSWORD)), grpc.StatusCode.UNAUTHENTICATED)
    response = await users_server.users.Login(login(new_email, "a brand new password"))
    assert response.user.username == name


async def test_update_to_a_taken_username_or_invalid_values_is_rejected(users_server: UsersServer) -> None:
    other = unique_name("other")
    await users_server.register(other)
    _, token = await users_server.register(unique_name())
    error = await fails(users_server.users.UpdateCurrentUser(users_pb2.UpdateCurrentUserRequest(
        user=users_pb2.UpdateUser(username=other.upper())), metadata=users_server.auth(token)),
        grpc.StatusCode.ALREADY_EXISTS)
    assert violations(error) == [("user.username", "has already been taken")]
    error = await fails(users_server.users.UpdateCurrentUser(users_pb2.UpdateCurrentUserRequest(
        user=users_pb2.UpdateUser(email="nope", password="short", image="not a url")),
        metadata=users_server.auth(token)), grpc.StatusCode.INVALID_ARGUMENT)
    assert violations(error) == [("user.email", "is invalid"), ("user.image", "is invalid"),
                                 ("user.password", "is too short (minimum is 8 characters)")]


async def test_current_user_needs_a_token(users_server: UsersServer) -> None:
    await fails(users_server.users.GetCurrentUser(users_pb2.GetCurrentUserRequest()),
                grpc.StatusCode.UNAUTHENTICATED)


async def test_passwords_are_never_logged_or_returned_and_stored_as_argon2id(
        users_server: UsersServer, caplog: pytest.LogCaptureFixture) -> None:
    name = unique_name()
    password = f"pw-{name}-secret"
    new_password = f"pw2-{name}-secret"
    caplog.set_level(logging.DEBUG)  # SQLAlchemy echoes statements and parameters at this level
    created = await users_server.users.CreateUser(new_user(name, email_for(name), password))
    logged_in = await users_server.users.Login(login(email_for(name), password))
    await fails(users_server.users.Login(login(email_for(name), password + "x")),
                grpc.StatusCode.UNAUTHENTICATED)
    updated = await users_server.users.UpdateCurrentUser(users_pb2.UpdateCurrentUserRequest(
        user=users_pb2.UpdateUser(password=new_password)), metadata=users_server.auth(created.user.token))
    session = await users_server.auth_service.CreateSession(users_pb2.CreateSessionRequest(
        user=users_pb2.LoginUser(email=email_for(name), password=new_password)))
    assert caplog.records, "nothing was captured; the assertion below would prove nothing"
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    for secret in (password, new_password):
        assert secret not in logged
        for response in (created, logged_in, updated, session):
            assert secret.encode() not in response.SerializeToString()
    assert (await stored_hash(users_server, name)).startswith("$argon2id$")


async def test_login_rehashes_a_password_stored_with_old_parameters(users_server: UsersServer) -> None:
    name = unique_name()
    await users_server.register(name)
    old = PasswordHasher(Argon2Parameters(time_cost=2, memory_cost_kib=2048, parallelism=1))
    try:
        old_hash = await old.hash(PASSWORD)
    finally:
        old.close()
    async with users_server.app.database.transaction() as session:
        await session.execute(text("UPDATE users SET password_hash = :hash WHERE username = :name"),
                              {"hash": old_hash, "name": name})
    await users_server.users.Login(login(email_for(name), PASSWORD))
    new_hash = await stored_hash(users_server, name)
    assert new_hash != old_hash
    assert new_hash.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert not users_server.app.hasher.needs_rehash(new_hash)
    await users_server.users.Login(login(email_for(name), PASSWORD))


async def test_the_service_hashes_with_owasp_argon2id_parameters_by_default(postgres_url: str,
                                                                           redis_url: str) -> None:
    """The one test with production parameters: a service built without a hasher uses OWASP's."""
    async with running_users_service(postgres_url, redis_url, schema="users_owasp",
                                     hasher=PasswordHasher()) as service:
        name = unique_name()
        await service.users.CreateUser(new_user(name, email_for(name), PASSWORD))
        await service.users.Login(login(email_for(name), PASSWORD))
        assert (await stored_hash(service, name)).startswith("$argon2id$v=19$m=19456,t=2,p=1$")
