"""Failed RPCs as GraphQL errors: the gRPC code, the reason and the field violations in `extensions`.

Pure: it reads what a failed call carried (code name, message, the `google.rpc.Status` details), so
it is testable without a server. The GraphQL error is the only thing a client sees: never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.rpc import error_details_pb2, status_pb2
from graphql import GraphQLError

# gRPC code names a GraphQL client may branch on; the numeric code rides along.
CODES = {"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
         "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
         "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
         "DATA_LOSS": 15, "UNAUTHENTICATED": 16}


@dataclass(frozen=True)
class CallFailure:
    """What a failed call to another service answered."""

    code: str
    message: str
    details: bytes = b""  # the serialized google.rpc.Status (grpc-status-details-bin), when sent


def extensions(failure: CallFailure) -> dict[str, Any]:
    """`code` (name), `grpcCode`, and when the service said so `reason` and `fieldViolations`."""
    found: dict[str, Any] = {"code": failure.code, "grpcCode": CODES.get(failure.code, 2)}
    if not failure.details:
        return found
    status = status_pb2.Status()
    try:
        status.ParseFromString(failure.details)
    except Exception:  # noqa: BLE001 - unreadable details are left out, the code still tells
        return found
    violations: list[dict[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [{"field": v.field, "description": v.description} for v in bad.field_violations]
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found["reason"] = info.reason
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            found["retryAfterSeconds"] = retry.retry_delay.ToTimedelta().total_seconds()
    if violations:
        found["fieldViolations"] = violations
    return found


def graphql_error(failure: CallFailure) -> GraphQLError:
    return GraphQLError(failure.message or failure.code, extensions=extensions(failure))


def unauthenticated(message: str = "authentication required") -> GraphQLError:
    return GraphQLError(message, extensions={"code": "UNAUTHENTICATED", "grpcCode": CODES["UNAUTHENTICATED"]})


__all__ = ["CODES", "CallFailure", "extensions", "graphql_error", "unauthenticated"]
