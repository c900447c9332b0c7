"""Domain errors map to statuses in exactly one place."""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import pytest

from conduit_server.runtime import errors
from tests.support import details, status_of

SERVER = Path(__file__).resolve().parents[2] / "server" / "conduit_server"


@pytest.mark.parametrize(("error", "code"), [
    (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
    (errors.PermissionDenied("x"), grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED),
    (errors.AlreadyExists([errors.FieldViolation("user.email", "has already been taken")]),
     grpc.StatusCode.ALREADY_EXISTS),
    (errors.InvalidArgument([errors.FieldViolation("article.title", "can't be blank")]),
     grpc.StatusCode.INVALID_ARGUMENT),
    (errors.RateLimited("slow down", 1.0), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.OutOfRange("x"), grpc.StatusCode.OUT_OF_RANGE),
    (errors.Unavailable("x"), grpc.StatusCode.UNAVAILABLE),
    (errors.FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
])
def test_each_domain_error_has_its_code_and_error_info(error: errors.ConduitError,
                                                       code: grpc.StatusCode) -> None:
    payload = errors.to_status(error)
    assert payload.code == code
    assert status_of(payload.trailing_metadata).code == code.value[0]
    assert details(payload.trailing_metadata)["ErrorInfo"].domain == errors.ERROR_DOMAIN


def test_uniqueness_conflict_names_the_field_like_realworld() -> None:
    error = errors.AlreadyExists([errors.FieldViolation("user.email", "has already been taken"),
                                  errors.FieldViolation("user.username", "has already been taken")])
    body = dict(errors.to_status(error).trailing_metadata)[errors.ERROR_BODY_KEY]
    assert body == '{"errors":{"email":["has already been taken"],"username":["has already been taken"]}}'


def test_error_body_is_ascii_for_metadata() -> None:
    body = dict(errors.to_status(errors.NotFound("article «café» not found")).trailing_metadata)
    assert str(body[errors.ERROR_BODY_KEY]).isascii()


def test_only_the_error_interceptor_builds_statuses() -> None:
    """No servicer or domain module aborts or sets codes by hand (STYLE.md: mapped once)."""
    allowed = {SERVER / "runtime" / "interceptors.py", SERVER / "runtime" / "errors.py"}
    offenders = [
        f"{path.relative_to(SERVER)}:{node.lineno}"
        for path in SERVER.rglob("*.py") if path not in allowed
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in {"abort", "abort_with_status", "set_code"}
    ]
    assert offenders == []
