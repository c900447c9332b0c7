"""The one error hierarchy of the mesh and its single mapping to gRPC status.

Domain code raises these; the error interceptor (and nothing else) turns them
into a status code with `google.rpc` details. The SDK maps statuses back to
the same classes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

ERROR_DOMAIN = "conduit.dev"
# Trailing metadata carrying the RealWorld JSON error body; the gateway turns it
# into the HTTP response body (see docs/decisions/0002-rest-errors.md).
ERROR_BODY_KEY = "x-conduit-error-body"
# Trailing metadata carrying an RFC 6749 §5.2 error body of the OAuth2 token endpoint; the
# gateway answers REST callers with it verbatim (400, or 401 for invalid_client).
OAUTH_ERROR_KEY = "x-conduit-oauth-error"
OAUTH_ERROR_DOMAIN = "oauth2"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: `field` is the path (`user.email`), `description` a RealWorld-style message."""

    field: str
    description: str


class ConduitError(Exception):
    """Base of every error a handler may raise on purpose."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None,
                 metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = dict(metadata or {})

    def details(self) -> list[any_pb2.Any]:
        """The `google.rpc` details to attach, ErrorInfo first."""
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN,
                                              metadata=self.metadata))
        return [info]

    def body_errors(self) -> dict[str, list[str]]:
        """The RealWorld `errors` object for this error."""
        return {"body": [self.message]}


class InvalidArgument(ConduitError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation], message: str | None = None,
                 *, reason: str | None = None) -> None:
        self.violations = list(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(message or summary or "invalid argument", reason=reason)

    def details(self) -> list[any_pb2.Any]:
        bad_request = any_pb2.Any()
        bad_request.Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in self.violations
        ]))
        return [*super().details(), bad_request]

    def body_errors(self) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        for violation in self.violations:
            errors.setdefault(violation.field.rsplit(".", 1)[-1], []).append(violation.description)
        return errors or super().body_errors()


class AlreadyExists(InvalidArgument):
    """A uniqueness conflict, reported per field (`email`: "has already been taken")."""

    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class NotFound(ConduitError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class PermissionDenied(ConduitError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class Unauthenticated(ConduitError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class FailedPrecondition(ConduitError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class OutOfRange(ConduitError):
    code = grpc.StatusCode.OUT_OF_RANGE
    reason = "OUT_OF_RANGE"


class Unavailable(ConduitError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class ResourceExhausted(ConduitError):
    """A limit other than a rate was hit (a stream consumer fell too far behind); no RetryInfo."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


class RateLimited(ConduitError):
    """Too many attempts; the caller may retry after `retry_after_seconds`."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RATE_LIMITED"

    def __init__(self, message: str, retry_after_seconds: float, *, reason: str | None = None,
                 metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after_seconds = max(retry_after_seconds, 0.0)

    def details(self) -> list[any_pb2.Any]:
        retry = any_pb2.Any()
        seconds = self.retry_after_seconds
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
            seconds=int(seconds), nanos=int((seconds % 1) * 1e9))))
        return [*super().details(), retry]


OAuthErrorCode = Literal["invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                         "unsupported_grant_type", "invalid_scope"]


class OAuthError(ConduitError):
    """An RFC 6749 §5.2 error of the token endpoint, its `error` code as the ErrorInfo reason.

    `invalid_client` (failed client authentication) is UNAUTHENTICATED; every
    other code is INVALID_ARGUMENT.
    """

    def __init__(self, error: OAuthErrorCode, description: str) -> None:
        super().__init__(description, reason=error)
        self.error = error
        self.code = (grpc.StatusCode.UNAUTHENTICATED if error == "invalid_client"
                     else grpc.StatusCode.INVALID_ARGUMENT)

    def details(self) -> list[any_pb2.Any]:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=self.error, domain=OAUTH_ERROR_DOMAIN))
        return [info]

    def oauth_body(self) -> str:
        """The RFC 6749 §5.2 JSON error response."""
        return json.dumps({"error": self.error, "error_description": self.message},
                          separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class StatusPayload:
    """What the error interceptor sends: code, message and trailing metadata."""

    code: grpc.StatusCode
    message: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


_CODE_NUMBERS = {c: c.value[0] for c in grpc.StatusCode}


class Replayed(ConduitError):
    """A status sent once before, sent again exactly (an idempotency-key repeat: runtime.idempotency)."""

    def __init__(self, payload: StatusPayload) -> None:
        super().__init__(payload.message)
        self.code = payload.code
        self.payload = payload


def to_status(error: ConduitError) -> StatusPayload:
    """The one mapping from a domain error to what goes on the wire."""
    if isinstance(error, Replayed):
        return error.payload
    status = status_pb2.Status(code=_CODE_NUMBERS[error.code], message=error.message,
                               details=error.details())
    body = json.dumps({"errors": error.body_errors()}, separators=(",", ":"), ensure_ascii=True)
    metadata: list[tuple[str, str | bytes]] = [("grpc-status-details-bin", status.SerializeToString()),
                                               (ERROR_BODY_KEY, body)]
    if isinstance(error, RateLimited):
        metadata.append(("retry-after", str(max(1, math.ceil(error.retry_after_seconds)))))
    if isinstance(error, OAuthError):
        metadata.append((OAUTH_ERROR_KEY, error.oauth_body()))
    return StatusPayload(error.code, error.message, tuple(metadata))


def internal_status() -> StatusPayload:
    """What an unexpected exception becomes: no detail leaks to the caller."""
    return to_status(ConduitError("internal error", reason="INTERNAL"))


__all__ = [
    "ERROR_BODY_KEY", "ERROR_DOMAIN", "OAUTH_ERROR_DOMAIN", "OAUTH_ERROR_KEY", "AlreadyExists",
    "ConduitError", "FailedPrecondition", "FieldViolation", "InvalidArgument", "NotFound", "OAuthError",
    "OAuthErrorCode", "OutOfRange", "PermissionDenied", "RateLimited", "Replayed", "ResourceExhausted",
    "StatusPayload",
    "Unauthenticated", "Unavailable", "internal_status", "to_status",
]
