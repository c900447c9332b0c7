"""Helpers for the users tests: reading statuses and their google.rpc details."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import grpc
import pytest
from google.rpc import error_details_pb2

from conduit.users.v1 import users_pb2
from tests.support import details

_T = TypeVar("_T")


def violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """(field, description) of every BadRequest violation, sorted."""
    bad_request = details(error).get("BadRequest")
    assert bad_request is not None, f"no BadRequest in {error.code()}: {error.details()}"
    return sorted((v.field, v.description) for v in bad_request.field_violations)


def reason(error: grpc.aio.AioRpcError) -> str:
    info: error_details_pb2.ErrorInfo = details(error)["ErrorInfo"]
    return str(info.reason)


async def fails(call: Awaitable[Any], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """Await a call that must fail with `code`; return its error for further checks."""
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    assert failure.value.code() == code, f"{failure.value.code()}: {failure.value.details()}"
    return failure.value


def new_user(username: str, email: str, password: str) -> users_pb2.CreateUserRequest:
    return users_pb2.CreateUserRequest(user=users_pb2.NewUser(username=username, email=email,
                                                              password=password))


def login(email: str, password: str) -> users_pb2.LoginRequest:
    return users_pb2.LoginRequest(user=users_pb2.LoginUser(email=email, password=password))


def forwarded_for(ip: str) -> tuple[tuple[str, str], ...]:
    """Metadata as Envoy sends it: the client's address appended to x-forwarded-for."""
    return (("x-forwarded-for", f"203.0.113.99, {ip}"),)
