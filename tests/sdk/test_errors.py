"""Statuses and `google.rpc` details from a real gRPC server become the typed errors, sync and async."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit.client import (
    AlreadyExists,
    AsyncConduit,
    Conduit,
    ConduitError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    RateLimited,
    ResourceExhausted,
    RetryPolicy,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    from_rpc_error,
)
from conduit_server.runtime import errors as server_errors
from tests.sdk.conftest import Serve
from tests.sdk.support import Failure, ScriptedTags, bad_request, error_info, retry_info

NO_RETRY = RetryPolicy(max_attempts=1)
S = grpc.StatusCode


def _raised_by(serve: Serve, failure: Failure) -> ConduitError:
    server = serve((articles_pb2_grpc.add_TagsServiceServicer_to_server, ScriptedTags(failure)))
    with Conduit.connect(server.target, tls=False, retry=NO_RETRY) as conduit, \
            pytest.raises(ConduitError) as raised:
        conduit.tags.list()
    return raised.value


async def _raised_by_async(serve: Serve, failure: Failure) -> ConduitError:
    server = serve((articles_pb2_grpc.add_TagsServiceServicer_to_server, ScriptedTags(failure)))
    async with await AsyncConduit.connect(server.target, tls=False, retry=NO_RETRY) as conduit:
        with pytest.raises(ConduitError) as raised:
            await conduit.tags.list()
    return raised.value


CASES: list[tuple[Failure, type[ConduitError]]] = [
    (Failure(S.NOT_FOUND, "article not found", (error_info("ARTICLE_NOT_FOUND"),)), NotFound),
    (Failure(S.PERMISSION_DENIED, "only the author may edit", (error_info("NOT_AUTHOR"),)), PermissionDenied),
    (Failure(S.UNAUTHENTICATED, "token expired", (error_info("TOKEN_EXPIRED"),)), Unauthenticated),
    (Failure(S.FAILED_PRECONDITION, "not now", (error_info("FAILED_PRECONDITION"),)), FailedPrecondition),
    (Failure(S.OUT_OF_RANGE, "too old", (error_info("RESUME_TOKEN_EXPIRED"),)), OutOfRange),
    (Failure(S.UNAVAILABLE, "restarting", (error_info("SHUTTING_DOWN"),)), Unavailable),
    (Failure(S.INVALID_ARGUMENT, "bad", (error_info("INVALID_ARGUMENT"),
                                         bad_request(("user.email", "is invalid")))), InvalidArgument),
    (Failure(S.ALREADY_EXISTS, "taken", (error_info("ALREADY_EXISTS"),
                                         bad_request(("user.email", "has already been taken")))),
     AlreadyExists),
    (Failure(S.RESOURCE_EXHAUSTED, "slow down", (error_info("RATE_LIMITED"), retry_info(1.5))), RateLimited),
    (Failure(S.RESOURCE_EXHAUSTED, "fell behind", (error_info("SLOW_CONSUMER", last_event_id="7-0"),)),
     ResourceExhausted),
]


@pytest.mark.parametrize(("failure", "expected"), CASES, ids=[c[1].__name__ for c in CASES])
def test_each_status_maps_to_its_error_class_with_code_reason_and_domain(
        serve: Serve, failure: Failure, expected: type[ConduitError]) -> None:
    error = _raised_by(serve, failure)
    assert isinstance(error, expected)
    assert type(error).__name__ == expected.__name__
    assert error.code == failure.code == expected.grpc_code
    assert error.message == failure.message
    info = failure.details[0]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (error.reason, error.domain) == (info.reason, "conduit.dev")
    assert str(error) == f"{failure.code.name} [{info.reason}]: {failure.message}"
    assert isinstance(error.__cause__, grpc.RpcError)


@pytest.mark.parametrize(("failure", "expected"), CASES, ids=[c[1].__name__ for c in CASES])
async def test_the_async_client_maps_the_same_statuses_to_the_same_classes(
        serve: Serve, failure: Failure, expected: type[ConduitError]) -> None:
    error = await _raised_by_async(serve, failure)
    assert isinstance(error, expected)
    assert type(error).__name__ == expected.__name__
    info = failure.details[0]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (error.code, error.message, error.reason) == (failure.code, failure.message, info.reason)


def test_field_violations_come_as_pairs_and_in_realworld_shape(serve: Serve) -> None:
    error = _raised_by(serve, Failure(S.INVALID_ARGUMENT, "user.email: is invalid; ...", (
        error_info("INVALID_ARGUMENT"),
        bad_request(("user.email", "is invalid"), ("user.password", "is too short (minimum is 8)"),
                    ("user.email", "can't be blank")))))
    assert isinstance(error, InvalidArgument)
    assert error.field_violations == [("user.email", "is invalid"),
                                      ("user.password", "is too short (minimum is 8)"),
                                      ("user.email", "can't be blank")]
    assert error.field_violations[0] == FieldViolation(field="user.email", description="is invalid")
    assert error.errors == {"email": ["is invalid", "can't be blank"],
                            "password": ["is too short (minimum is 8)"]}


def test_uniqueness_conflict_is_an_invalid_argument_naming_the_field(serve: Serve) -> None:
    error = _raised_by(serve, Failure(S.ALREADY_EXISTS, "taken", (
        error_info("ALREADY_EXISTS"), bad_request(("user.username", "has already been taken")))))
    assert isinstance(error, AlreadyExists)
    assert isinstance(error, InvalidArgument)
    assert error.errors == {"username": ["has already been taken"]}


def test_invalid_argument_without_violations_reports_the_message_as_body(serve: Serve) -> None:
    error = _raised_by(serve, Failure(S.INVALID_ARGUMENT, "malformed request"))
    assert isinstance(error, InvalidArgument)
    assert error.field_violations == []
    assert error.errors == {"body": ["malformed request"]}


def test_rate_limit_exposes_retry_after_seconds_from_retry_info(serve: Serve) -> None:
    error = _raised_by(serve, Failure(S.RESOURCE_EXHAUSTED, "too many logins",
                                      (error_info("RATE_LIMITED"), retry_info(2.25))))
    assert isinstance(error, RateLimited)
    assert error.retry_after == pytest.approx(2.25)
    assert isinstance(error.detail(error_details_pb2.RetryInfo), error_details_pb2.RetryInfo)


def test_rate_limit_falls_back_to_the_retry_after_trailer(serve: Serve) -> None:
    error = _raised_by(serve, Failure(S.RESOURCE_EXHAUSTED, "slow down", trailers=(("retry-after", "3"),)))
    assert isinstance(error, RateLimited)
    assert error.retry_after == 3.0


def test_error_info_metadata_is_exposed(serve: Serve) -> None:
    error = _raised_by(serve, Failure(S.UNAVAILABLE, "shutting down",
                                      (error_info("SHUTTING_DOWN", last_event_id="42-0"),)))
    assert isinstance(error, Unavailable)
    assert error.metadata == {"last_event_id": "42-0"}
    assert error.retry_after is None


def test_a_status_without_details_is_its_code_class_with_no_reason(serve: Serve) -> None:
    error = _raised_by(serve, Failure(S.UNIMPLEMENTED, "search is not implemented yet"))
    assert type(error) is Unimplemented
    assert error.code == S.UNIMPLEMENTED
    assert (error.reason, error.domain, error.details) == (None, None, ())
    assert str(error) == "UNIMPLEMENTED: search is not implemented yet"


def test_oauth_errors_keep_their_rfc6749_code_as_reason(serve: Serve) -> None:
    error = _raised_by(serve, Failure(S.UNAUTHENTICATED, "client authentication failed", (
        error_details_pb2.ErrorInfo(reason="invalid_client", domain="oauth2"),)))
    assert isinstance(error, Unauthenticated)
    assert (error.reason, error.domain) == ("invalid_client", "oauth2")


def test_a_bare_rpc_error_maps_to_unknown() -> None:
    error = from_rpc_error(grpc.RpcError("boom"))
    assert type(error) is Unknown
    assert error.code == S.UNKNOWN


def test_an_unreachable_server_is_unavailable() -> None:
    with Conduit.connect("127.0.0.1:1", tls=False, timeout=2, retry=NO_RETRY) as conduit, \
            pytest.raises(Unavailable):
        conduit.tags.list()


class _ServerErrorTags(articles_pb2_grpc.TagsServiceServicer):
    """Aborts the way the server's error interceptor does, with `errors.to_status`."""

    def __init__(self, error: server_errors.ConduitError) -> None:
        self.error = error

    def ListTags(self, request: articles_pb2.ListTagsRequest,
                 context: grpc.ServicerContext) -> articles_pb2.ListTagsResponse:
        payload = server_errors.to_status(self.error)
        context.set_trailing_metadata(payload.trailing_metadata)
        context.abort(payload.code, payload.message)


SERVER_ERRORS: list[server_errors.ConduitError] = [
    server_errors.NotFound("article not found"),
    server_errors.PermissionDenied("nope"),
    server_errors.Unauthenticated("who are you"),
    server_errors.FailedPrecondition("not now"),
    server_errors.OutOfRange("too old"),
    server_errors.Unavailable("restarting"),
    server_errors.InvalidArgument([server_errors.FieldViolation("article.title", "can't be blank")]),
    server_errors.AlreadyExists([server_errors.FieldViolation("user.email", "has already been taken")]),
    server_errors.RateLimited("slow down", 1.5),
    server_errors.ResourceExhausted("fell behind", reason="SLOW_CONSUMER", metadata={"last_event_id": "9-0"}),
]


@pytest.mark.parametrize("error", SERVER_ERRORS, ids=[type(e).__name__ for e in SERVER_ERRORS])
def test_every_server_error_class_arrives_as_the_sdk_class_of_the_same_name(
        serve: Serve, error: server_errors.ConduitError) -> None:
    server = serve((articles_pb2_grpc.add_TagsServiceServicer_to_server, _ServerErrorTags(error)))
    with Conduit.connect(server.target, tls=False, retry=NO_RETRY) as conduit, \
            pytest.raises(ConduitError) as raised:
        conduit.tags.list()
    received = raised.value
    assert type(received).__name__ == type(error).__name__
    assert (received.code, received.message, received.reason) == (error.code, error.message, error.reason)
    assert received.metadata == error.metadata
    if isinstance(error, server_errors.InvalidArgument):
        assert isinstance(received, InvalidArgument)
        assert received.field_violations == [(v.field, v.description) for v in error.violations]
        assert received.errors == error.body_errors()
    if isinstance(error, server_errors.RateLimited):
        assert received.retry_after == pytest.approx(error.retry_after_seconds)

