"""Uniqueness under concurrency is decided by the unique indexes, never by a 500."""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest
from sqlalchemy import text

from conduit.users.v1 import users_pb2
from conduit_server.users.repository import UserRepository
from tests.fixtures.users import PASSWORD, UsersServer, unique_name

from .support import new_user, violations


async def _register_all(users_server: UsersServer, requests: list[users_pb2.CreateUserRequest]
                        ) -> tuple[int, list[grpc.aio.AioRpcError]]:
    results = await asyncio.gather(*(users_server.users.CreateUser(request) for request in requests),
                                   return_exceptions=True)
    errors = [result for result in results if isinstance(result, grpc.aio.AioRpcError)]
    unexpected = [result for result in results if isinstance(result, BaseException)
                  and not isinstance(result, grpc.aio.AioRpcError)]
    assert unexpected == []
    return len(results) - len(errors), errors


@pytest.mark.parametrize("shared", ["username", "email"])
async def test_fifty_concurrent_registrations_of_one_name_let_exactly_one_win(
        users_server: UsersServer, shared: str) -> None:
    name = unique_name("race")
    requests = [new_user(name if shared == "username" else f"{name}-{n}",
                         f"{name}@example.test" if shared == "email" else f"{name}-{n}@example.test",
                         PASSWORD) for n in range(50)]
    succeeded, errors = await _register_all(users_server, requests)
    assert succeeded == 1
    assert Counter(error.code() for error in errors) == {grpc.StatusCode.ALREADY_EXISTS: 49}
    assert {tuple(violations(error)) for error in errors} == {((f"user.{shared}", "has already been taken"),)}
    async with users_server.app.database.read() as session:
        count = await session.scalar(text(
            "SELECT count(*) FROM users "
            "WHERE lower(username) = lower(:name) OR email = :name || '@example.test'"),
            {"name": name})
    assert count == 1


async def test_concurrent_registrations_differing_only_in_case_let_exactly_one_win(
        users_server: UsersServer) -> None:
    name = unique_name("case")
    variants = [name.upper(), name.lower(), name.capitalize(), name.swapcase()] * 5
    requests = [new_user(variant, f"{variant}-{n}@example.test", PASSWORD)
                for n, variant in enumerate(variants)]
    succeeded, errors = await _register_all(users_server, requests)
    assert succeeded == 1
    assert all(error.code() == grpc.StatusCode.ALREADY_EXISTS for error in errors)


async def test_the_unique_indexes_decide_when_the_precheck_sees_nothing(
        users_server: UsersServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every loser of the race goes through the IntegrityError path, not the friendly pre-check."""

    async def nothing_taken(*args: object, **kwargs: object) -> set[str]:
        return set()

    monkeypatch.setattr(UserRepository, "taken", nothing_taken)
    name = unique_name("index")
    succeeded, errors = await _register_all(users_server, [
        new_user(name, f"{name}-{n}@example.test", PASSWORD) for n in range(10)])
    assert succeeded == 1
    assert {tuple(violations(error)) for error in errors} == {(("user.username", "has already been taken"),)}
    succeeded, errors = await _register_all(users_server, [
        new_user(f"{name}-{n}", f"{name}@example.test", PASSWORD) for n in range(10)])
    assert succeeded == 1
    assert {tuple(violations(error)) for error in errors} == {(("user.email", "has already been taken"),)}
