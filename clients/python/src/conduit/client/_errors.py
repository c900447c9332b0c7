"""Typed errors of the Conduit API, mapped once from a gRPC status and its `google.rpc` details.

The names mirror the server's error classes (`conduit_server.runtime.errors`); the
SDK never imports the server. `from_rpc_error` is the only place that turns a
`grpc.RpcError` into one of these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2

#: The ErrorInfo domain of errors raised by Conduit services.
ERROR_DOMAIN = "conduit.dev"

_DETAILS_KEY = "grpc-status-details-bin"
_RETRY_AFTER_KEY = "retry-after"

# Every detail type of google/rpc/error_details.proto, unpacked when present.
_DETAIL_TYPES: tuple[type[Message], ...] = (
    error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, error_details_pb2.RetryInfo,
    error_details_pb2.QuotaFailure, error_details_pb2.PreconditionFailure, error_details_pb2.ResourceInfo,
    error_details_pb2.RequestInfo, error_details_pb2.DebugInfo, error_details_pb2.Help,
    error_details_pb2.LocalizedMessage,
)

Metadata = tuple[tuple[str, str | bytes], ...]
_D = TypeVar("_D", bound=Message)


class FieldViolation(NamedTuple):
    """One rejected field: `field` is its path in the request (`user.email`)."""

    field: str
    description: str


class ConduitError(Exception):
    """Base of every error the SDK raises for a failed call.

    Carries the gRPC status code and message and the decoded `google.rpc`
    details: `reason`, `domain` and `metadata` come from `ErrorInfo`;
    `retry_after` from `RetryInfo` (or the `retry-after` trailer).
    """

    #: The status code this class stands for; instances carry the actual code.
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN
    #: Set on the classes of contract reasons (`conduit.options.v1.ErrorReason`).
    reason_name: ClassVar[str | None] = None
    #: True when the contract marks the reason `do_not_retry`: the SDK never retries it.
    do_not_retry: ClassVar[bool] = False

    def __init__(self, message: str = "", *, code: grpc.StatusCode | None = None,
                 details: Sequence[Message] = (), trailing_metadata: Metadata = ()) -> None:
        super().__init__(message)
        self.message = message
        self.code: grpc.StatusCode = code if code is not None else self.grpc_code
        self.details: tuple[Message, ...] = tuple(details)
        self.trailing_metadata: Metadata = tuple(trailing_metadata)
        info = self.detail(error_details_pb2.ErrorInfo)
        self.reason: str | None = info.reason if info is not None else None
        self.domain: str | None = info.domain if info is not None else None
        self.metadata: dict[str, str] = dict(info.metadata) if info is not None else {}
        self.retry_after: float | None = _retry_after(self.details, self.trailing_metadata)
        #: Attempts the SDK made before giving up with this error.
        self.attempts = 1

    def detail(self, kind: type[_D]) -> _D | None:
        """The first detail of type `kind` (e.g. `error_details_pb2.ErrorInfo`), or None."""
        for detail in self.details:
            if isinstance(detail, kind):
                return detail
        return None

    def __str__(self) -> str:
        reason = f" [{self.reason}]" if self.reason else ""
        return f"{self.code.name}{reason}: {self.message}"


class InvalidArgument(ConduitError):
    """The request was rejected; `field_violations` names the fields (INVALID_ARGUMENT)."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str = "", *, code: grpc.StatusCode | None = None,
                 details: Sequence[Message] = (), trailing_metadata: Metadata = (),
                 field_violations: Sequence[tuple[str, str]] | None = None) -> None:
        super().__init__(message, code=code, details=details, trailing_metadata=trailing_metadata)
        if field_violations is None:
            bad_request = self.detail(error_details_pb2.BadRequest)
            field_violations = ([(v.field, v.description) for v in bad_request.field_violations]
                                if bad_request is not None else [])
        self.field_violations: list[FieldViolation] = [FieldViolation(f, d) for f, d in field_violations]

    @property
    def errors(self) -> dict[str, list[str]]:
        """The violations in RealWorld's shape: `{"email": ["has already been taken"]}`."""
        errors: dict[str, list[str]] = {}
        for violation in self.field_violations:
            errors.setdefault(violation.field.rsplit(".", 1)[-1], []).append(violation.description)
        return errors or {"body": [self.message]}


class AlreadyExists(InvalidArgument):
    """A uniqueness conflict, reported per field like a validation error (ALREADY_EXISTS)."""

    grpc_code = grpc.StatusCode.ALREADY_EXISTS


class NotFound(ConduitError):
    """The resource does not exist (NOT_FOUND)."""

    grpc_code = grpc.StatusCode.NOT_FOUND


class PermissionDenied(ConduitError):
    """The caller is known but may not do this (PERMISSION_DENIED)."""

    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ConduitError):
    """No valid credentials: missing, expired or revoked token, or a spent refresh token."""

    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class FailedPrecondition(ConduitError):
    """The system is not in a state that allows the operation (FAILED_PRECONDITION)."""

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class OutOfRange(ConduitError):
    """A position outside what the server holds (OUT_OF_RANGE)."""

    grpc_code = grpc.StatusCode.OUT_OF_RANGE


class StreamExpired(OutOfRange):
    """A watch's resume token is older than the server's retained window.

    Events were missed: refetch the resource, then start a new watch without a
    token. `resume_token` is the token the server refused.
    """

    def __init__(self, message: str = "", *, code: grpc.StatusCode | None = None,
                 details: Sequence[Message] = (), trailing_metadata: Metadata = (),
                 resume_token: str = "") -> None:
        super().__init__(message, code=code, details=details, trailing_metadata=trailing_metadata)
        self.resume_token = resume_token


class ResourceExhausted(ConduitError):
    """A limit was hit (RESOURCE_EXHAUSTED): e.g. a watch fell too far behind, or too many streams."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class RateLimited(ResourceExhausted):
    """Too many requests: retry after `retry_after` seconds (from the server's RetryInfo)."""

    def __init__(self, message: str = "", *, code: grpc.StatusCode | None = None,
                 details: Sequence[Message] = (), trailing_metadata: Metadata = (),
                 retry_after: float | None = None) -> None:
        super().__init__(message, code=code, details=details, trailing_metadata=trailing_metadata)
        if retry_after is not None:
            self.retry_after = max(retry_after, 0.0)


class Unavailable(ConduitError):
    """The service could not be reached or is shutting down (UNAVAILABLE); safe to retry reads."""

    grpc_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ConduitError):
    """A deadline passed before an answer (DEADLINE_EXCEEDED).

    `budget` says which: `"attempt"` (one attempt's timeout, after which no
    retry was allowed), `"operation"` (the budget of the whole operation:
    retries, pages, reconnects) or None (the server's own deadline). `spent`
    and `limit` are seconds; `attempts` counts the attempts made.
    """

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED

    def __init__(self, message: str = "", *, code: grpc.StatusCode | None = None,
                 details: Sequence[Message] = (), trailing_metadata: Metadata = (),
                 budget: str | None = None, spent: float | None = None, limit: float | None = None,
                 attempts: int = 1) -> None:
        super().__init__(message, code=code, details=details, trailing_metadata=trailing_metadata)
        self.budget = budget
        self.spent = spent
        self.limit = limit
        self.attempts = attempts


class Cancelled(ConduitError):
    """The call was cancelled, usually by the caller (CANCELLED)."""

    grpc_code = grpc.StatusCode.CANCELLED


class Unknown(ConduitError):
    """An error without a known status (UNKNOWN)."""

    grpc_code = grpc.StatusCode.UNKNOWN


class Aborted(ConduitError):
    """A concurrency conflict, e.g. the same idempotency key still running (ABORTED)."""

    grpc_code = grpc.StatusCode.ABORTED


class Unimplemented(ConduitError):
    """The server does not implement the method (UNIMPLEMENTED)."""

    grpc_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(ConduitError):
    """A server fault (INTERNAL)."""

    grpc_code = grpc.StatusCode.INTERNAL


class DataLoss(ConduitError):
    """Unrecoverable data loss (DATA_LOSS)."""

    grpc_code = grpc.StatusCode.DATA_LOSS


_CLASSES: Mapping[grpc.StatusCode, type[ConduitError]] = {
    cls.grpc_code: cls for cls in (Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
                                   PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted,
                                   OutOfRange, Unimplemented, Internal, Unavailable, DataLoss,
                                   Unauthenticated)
}
_COMBINED: dict[tuple[type[ConduitError], type[ConduitError]], type[ConduitError]] = {}


def error_class(code: grpc.StatusCode, reason: str | None, domain: str | None) -> type[ConduitError]:
    """The class of an error: its code's class, combined with its reason's class when the reason
    is one of the contract's (`except NotFound` and `except ArticleNotFoundError` both catch it)."""
    cls = _CLASSES.get(code, ConduitError)
    if not reason or domain != ERROR_DOMAIN:
        return cls
    from conduit.client._contract import REASON_CLASSES  # generated; imports this module

    reason_cls = REASON_CLASSES.get(reason)
    if reason_cls is None or issubclass(cls, reason_cls):
        return cls
    combined = _COMBINED.get((reason_cls, cls))
    if combined is None:
        # Named after the code's class (what `repr` shows); `except` the reason's class to catch it.
        combined = type(cls.__name__, (reason_cls, cls), {"__module__": cls.__module__,
                                                          "__qualname__": f"{cls.__name__}[{reason}]",
                                                          "__doc__": reason_cls.__doc__})
        _COMBINED[(reason_cls, cls)] = combined
    return combined
_RATE_LIMITED_REASON = "RATE_LIMITED"


def from_rpc_error(error: grpc.RpcError) -> ConduitError:
    """The typed error for a failed gRPC call (sync or `grpc.aio`), details decoded.

    Useful with the generated stubs too: `except grpc.RpcError as e: raise from_rpc_error(e)`.
    """
    # A bare grpc.RpcError (raised by some interceptors) has none of the Call methods.
    try:
        code = error.code()
        message = error.details() or ""
        # Sync calls give (key, value) namedtuples, grpc.aio a Metadata object of pairs.
        pairs: Iterable[Any] = error.trailing_metadata() or ()
        trailing: Metadata = tuple((str(key), value) for key, value in pairs)
    except AttributeError:
        code, message, trailing = grpc.StatusCode.UNKNOWN, str(error), ()
    details = _decode_details(trailing)
    info = next((d for d in details if isinstance(d, error_details_pb2.ErrorInfo)), None)
    base = RateLimited if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _is_rate_limit(details, trailing) \
        else None
    cls = error_class(code, info.reason if info else None, info.domain if info else None)
    if base is not None and not issubclass(cls, RateLimited):
        cls = base if cls is ResourceExhausted else _with(cls, base)
    return cls(message, code=code, details=details, trailing_metadata=trailing)


def _with(cls: type[ConduitError], base: type[ConduitError]) -> type[ConduitError]:
    key = (cls, base)
    if key not in _COMBINED:
        _COMBINED[key] = type(base.__name__, (cls, base), {"__module__": base.__module__})
    return _COMBINED[key]


def _is_rate_limit(details: Sequence[Message], trailing: Metadata) -> bool:
    """A rate limit says when to come back (RetryInfo) or names itself in ErrorInfo."""
    for detail in details:
        if isinstance(detail, error_details_pb2.RetryInfo):
            return True
        if isinstance(detail, error_details_pb2.ErrorInfo) and detail.reason == _RATE_LIMITED_REASON:
            return True
    return any(key == _RETRY_AFTER_KEY for key, _ in trailing)


def _decode_details(trailing: Metadata) -> list[Message]:
    for key, value in trailing:
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
            except DecodeError:
                return []
            return [_unpack(detail) for detail in status.details]
    return []


def _unpack(detail: any_pb2.Any) -> Message:
    for kind in _DETAIL_TYPES:
        if detail.TypeName() == kind.DESCRIPTOR.full_name:
            message = kind()
            detail.Unpack(message)
            return message
    return detail


def _retry_after(details: Sequence[Message], trailing: Metadata) -> float | None:
    for detail in details:
        if isinstance(detail, error_details_pb2.RetryInfo) and detail.HasField("retry_delay"):
            delay = detail.retry_delay
            return max(float(delay.seconds) + float(delay.nanos) / 1e9, 0.0)
    for key, value in trailing:
        if key == _RETRY_AFTER_KEY:
            try:
                return max(float(value), 0.0)
            except ValueError:
                return None
    return None


__all__ = [
    "ERROR_DOMAIN", "Aborted", "AlreadyExists", "Cancelled", "ConduitError", "DataLoss", "DeadlineExceeded",
    "FailedPrecondition", "FieldViolation", "Internal", "InvalidArgument", "NotFound", "OutOfRange",
    "PermissionDenied", "RateLimited", "ResourceExhausted", "StreamExpired", "Unauthenticated", "Unavailable",
    "Unimplemented", "Unknown", "error_class", "from_rpc_error",
]
