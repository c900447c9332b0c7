"""The graphql service's rules without a mesh: errors from google.rpc.Status, the cost rule, the size limit,
and introspection off unless configured (the schema is executed in process; nothing is called)."""

from __future__ import annotations

from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from conduit_server.graphql.app import build_schema
from conduit_server.graphql.domain.errors import CallFailure, extensions
from conduit_server.runtime.settings import GraphqlSettings


def _details(*messages: object) -> bytes:
    status = status_pb2.Status(code=3, message="invalid")
    for message in messages:
        packed = any_pb2.Any()
        packed.Pack(message)  # type: ignore[arg-type]
        status.details.append(packed)
    serialized: bytes = status.SerializeToString()
    return serialized


def test_field_violations_and_the_reason_reach_the_extensions() -> None:
    bad = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field="article.title", description="must not be empty")])
    info = error_details_pb2.ErrorInfo(reason="VALIDATION", domain="conduit")
    found = extensions(CallFailure("INVALID_ARGUMENT", "invalid", _details(bad, info)))
    assert found == {"code": "INVALID_ARGUMENT", "grpcCode": 3, "reason": "VALIDATION",
                     "fieldViolations": [{"field": "article.title", "description": "must not be empty"}]}


def test_unreadable_details_still_give_the_code() -> None:
    assert extensions(CallFailure("NOT_FOUND", "gone", b"\xff\xff not a status")) == {"code": "NOT_FOUND",
                                                                                     "grpcCode": 5}


def test_cost_counts_page_sizes_and_refuses_before_resolving() -> None:
    schema = build_schema(GraphqlSettings(max_complexity=500))
    cheap = schema.execute_sync("{ articles(first: 10) { nodes { slug title } } }")
    # Validation passed: the resolver ran and failed only for want of a mesh (no context here).
    assert cheap.errors is not None
    codes = [(error.extensions or {}).get("code") for error in cheap.errors]
    assert "QUERY_TOO_COMPLEX" not in codes
    costly = schema.execute_sync("{ articles(first: 100) { nodes { slug title description tagList } } }")
    assert costly.errors is not None
    assert costly.errors[0].extensions == {"code": "QUERY_TOO_COMPLEX", "cost": 501, "limit": 500}


def test_a_fragment_cycle_does_not_loop() -> None:
    schema = build_schema(GraphqlSettings())
    result = schema.execute_sync("fragment A on Profile { username ...B } fragment B on Profile { bio ...A } "
                                 "{ profile(username: \"x\") { ...A } }")
    assert result.errors is not None  # refused by GraphQL's own rule (cycles), not a recursion error


def test_a_too_large_document_is_refused() -> None:
    schema = build_schema(GraphqlSettings(max_query_bytes=100))
    result = schema.execute_sync("{ tags }" + " " * 200)
    assert result.errors is not None
    assert result.errors[0].extensions == {"code": "QUERY_TOO_LARGE", "limit": 100}


def test_introspection_is_off_unless_configured() -> None:
    off = build_schema(GraphqlSettings()).execute_sync("{ __schema { queryType { name } } }")
    assert off.errors is not None
    on = build_schema(GraphqlSettings(introspection=True)).execute_sync("{ __schema { queryType { name } } }")
    assert on.errors is None
    assert on.data == {"__schema": {"queryType": {"name": "Query"}}}
