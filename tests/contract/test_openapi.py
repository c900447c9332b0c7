"""The OpenAPI 3.1 document generated from the descriptor set (`gateway/openapi.yaml`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from google.protobuf.message import Message
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from conduit_gateway.descriptors import Contract
from conduit_gateway.openapi import build_document, component_schemas, main, to_yaml

from .support import (
    DESCRIPTOR_SET,
    EXPECTED_RPCS,
    GENERATED_SPEC,
    RealWorldOperation,
    pointer,
    resolve,
    sample_json,
    validator_for,
)

HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def _operations(document: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (path, method, operation)."""
    return {
        op["operationId"]: (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    }


def _errors(validator: Any, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def test_the_generated_document_is_valid_openapi_3_1(generated_document: dict[str, Any]) -> None:
    validate(generated_document, cls=OpenAPIV31SpecValidator)
    validate(yaml.safe_load(to_yaml(generated_document)), cls=OpenAPIV31SpecValidator)


def test_the_committed_document_is_what_the_descriptor_set_generates(
    generated_document: dict[str, Any],
) -> None:
    assert GENERATED_SPEC.read_text(encoding="utf-8") == to_yaml(generated_document), (
        "gateway/openapi.yaml is stale: run `python -m conduit_gateway.openapi` (make openapi)"
    )


def test_generation_is_deterministic(contract: Contract) -> None:
    assert to_yaml(build_document(contract)) == to_yaml(build_document(Contract.load(DESCRIPTOR_SET)))


def test_check_flag_fails_on_a_missing_or_stale_file_and_passes_on_a_fresh_one(tmp_path: Path) -> None:
    out = tmp_path / "openapi.yaml"
    args = ["--descriptor", str(DESCRIPTOR_SET), "--out", str(out)]
    assert main([*args, "--check"]) == 1
    assert main(args) == 0
    assert main([*args, "--check"]) == 0
    out.write_text(out.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert main([*args, "--check"]) == 1


def test_info_servers_and_security_schemes(generated_document: dict[str, Any]) -> None:
    assert generated_document["openapi"] == "3.1.0"
    assert generated_document["info"]["title"] == "Conduit Mesh API"
    assert generated_document["servers"] == [{"url": "https://localhost:8443"}]
    schemes = generated_document["components"]["securitySchemes"]
    assert schemes["Token"] == {**schemes["Token"], "type": "apiKey", "in": "header", "name": "Authorization"}
    assert schemes["Bearer"]["scheme"] == "bearer"
    flow = schemes["OAuth2"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/api/oauth/token"
    assert "articles.import" in flow["scopes"]


def test_realworld_operations_are_documented_with_their_success_status(
    generated_document: dict[str, Any], realworld_operations: list[RealWorldOperation]
) -> None:
    operations = _operations(generated_document)
    for op in realworld_operations:
        operation_id = EXPECTED_RPCS[op.operation_id].replace(".", "_")
        path, method, generated = operations[operation_id]
        assert (method.upper(), path) == (op.method, op.path), operation_id
        documented = [code for code in op.operation["responses"] if str(code).startswith("2")]
        assert [code for code in generated["responses"] if code.startswith("2")] == documented, operation_id
        if documented == ["204"]:
            assert "content" not in generated["responses"]["204"]


def test_errors_share_the_realworld_error_body(generated_document: dict[str, Any]) -> None:
    _, _, create = _operations(generated_document)["ArticlesService_CreateArticle"]
    assert {"401", "403", "404", "422", "429"} <= set(create["responses"])
    _, _, tags = _operations(generated_document)["TagsService_ListTags"]
    assert "403" not in tags["responses"]
    components = generated_document["components"]
    model = validator_for(generated_document, pointer("components", "schemas", "GenericErrorModel"))
    assert not _errors(model, {"errors": {"email": ["has already been taken"]}})
    assert _errors(model, {"errors": {"email": "not a list"}})
    too_many = components["responses"]["TooManyRequests"]
    assert "Retry-After" in too_many["headers"]
    assert too_many["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GenericErrorModel"
    }


def test_security_follows_the_authorization_rules(generated_document: dict[str, Any]) -> None:
    operations = _operations(generated_document)
    assert operations["UsersService_GetCurrentUser"][2]["security"] == [{"Token": []}, {"Bearer": []}]
    assert operations["ArticlesService_ListArticles"][2]["security"][0] == {}
    assert "admin" in operations["AdminService_GrantRole"][2]["description"]


def test_internal_services_are_not_documented(generated_document: dict[str, Any]) -> None:
    assert not [name for name in _operations(generated_document) if name.startswith("UserDirectoryService")]
    assert "UserDirectoryService" not in {tag["name"] for tag in generated_document["tags"]}
    assert "conduit.users.v1.BatchGetProfilesRequest" not in generated_document["components"]["schemas"]


def test_article_schema_uses_the_proto3_json_mapping(
    generated_document: dict[str, Any], contract: Contract
) -> None:
    article = generated_document["components"]["schemas"]["conduit.articles.v1.Article"]
    props = article["properties"]
    assert props["favoritesCount"]["type"] == "integer"
    assert props["createdAt"] == {**props["createdAt"], "type": "string", "format": "date-time"}
    assert props["tagList"]["type"] == "array"
    assert props["author"]["$ref"] == "#/components/schemas/conduit.users.v1.Profile"
    assert {"tagList", "favorited", "favoritesCount"} <= set(article["required"])
    assert "author" not in article["required"]  # message fields print only when set
    assert props["slug"]["description"] == contract.comment("conduit.articles.v1.Article.slug")
    assert article["description"] == contract.comment("conduit.articles.v1.Article")


def test_descriptions_come_from_the_proto_comments(
    generated_document: dict[str, Any], contract: Contract
) -> None:
    tags = {tag["name"]: tag.get("description") for tag in generated_document["tags"]}
    assert tags["ArticlesService"] == contract.comment("conduit.articles.v1.ArticlesService")
    _, _, refresh = _operations(generated_document)["AuthService_RefreshSession"]
    assert refresh["summary"] == "Exchanges a refresh token for a new access token and a new refresh token."
    assert "revokes its family" in refresh["description"]


def test_json_names_and_the_oauth_form_are_respected(generated_document: dict[str, Any]) -> None:
    token = generated_document["components"]["schemas"]["conduit.users.v1.CreateOAuthTokenResponse"]
    assert list(token["properties"]) == ["access_token", "token_type", "expires_in", "scope"]
    _, _, operation = _operations(generated_document)["AuthService_CreateOAuthToken"]
    form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert set(form["properties"]) == {"grant_type", "client_id", "client_secret", "scope"}
    assert "parameters" not in operation  # credentials never travel in the query string


def test_parameters_and_request_bodies(generated_document: dict[str, Any]) -> None:
    operations = _operations(generated_document)
    listed = {p["name"]: p for p in operations["ArticlesService_ListArticles"][2]["parameters"]}
    assert set(listed) == {"tag", "author", "favorited", "limit", "offset"}
    assert {p["in"] for p in listed.values()} == {"query"}
    delete_comment = operations["CommentsService_DeleteComment"][2]["parameters"]
    assert [(p["name"], p["in"], p["schema"]["type"]) for p in delete_comment] == [
        ("slug", "path", "string"),
        ("id", "path", "integer"),
    ]
    update = operations["ArticlesService_UpdateArticle"][2]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert list(update["properties"]) == ["article"]  # the slug is in the path, not the body
    assert "requestBody" not in operations["ArticlesService_FavoriteArticle"][2]  # `{}` or nothing
    search = {p["name"]: p for p in operations["SearchService_SearchArticles"][2]["parameters"]}
    # `query` (gRPC) or `q` (REST's `?q=`): neither is required alone; the service wants one of them.
    assert (search["query"]["required"], search["q"]["required"]) == (False, False)


def test_server_streams_are_documented_as_server_sent_events(generated_document: dict[str, Any]) -> None:
    _, _, watch = _operations(generated_document)["RealtimeService_WatchFeed"]
    content = watch["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]
    assert content["text/event-stream"]["schema"]["$ref"].endswith("conduit.realtime.v1.WatchFeedResponse")
    event_type = generated_document["components"]["schemas"]["conduit.realtime.v1.EventType"]
    assert event_type["type"] == "string"
    assert "EVENT_TYPE_HEARTBEAT" in event_type["enum"]


def test_int64_maps_enums_and_floats_follow_the_proto3_json_mapping(contract: Contract) -> None:
    schemas = component_schemas(
        contract,
        "conduit.users.v1.BatchGetProfilesRequest",
        "conduit.users.v1.BatchGetProfilesResponse",
        "conduit.users.v1.ResolveUsernamesResponse",
        "conduit.articles.v1.ImportArticlesResponse",
        "conduit.search.v1.SearchHit",
    )
    assert schemas["conduit.users.v1.BatchGetProfilesRequest"]["properties"]["userIds"]["items"] == {
        "type": "string",
        "format": "int64",
    }
    profiles = schemas["conduit.users.v1.BatchGetProfilesResponse"]["properties"]["profiles"]
    assert profiles["type"] == "object"
    assert profiles["additionalProperties"] == {"$ref": "#/components/schemas/conduit.users.v1.Profile"}
    assert schemas["conduit.users.v1.ResolveUsernamesResponse"]["properties"]["userIds"][
        "additionalProperties"
    ] == {"type": "string", "format": "int64"}
    outcome = schemas["conduit.articles.v1.ImportItemResult"]["properties"]["outcome"]
    assert outcome["$ref"] == "#/components/schemas/conduit.articles.v1.ImportOutcome"
    assert schemas["conduit.articles.v1.ImportOutcome"]["enum"][0] == "IMPORT_OUTCOME_UNSPECIFIED"
    assert schemas["conduit.search.v1.SearchHit"]["properties"]["score"]["type"] == "number"


@pytest.mark.parametrize("zeros", [False, True], ids=["populated", "default-values"])
def test_every_documented_response_accepts_what_the_gateway_prints(
    generated_document: dict[str, Any],
    contract: Contract,
    message_sampler: Callable[..., Message],
    zeros: bool,
) -> None:
    for operation_id, (path, method, op) in _operations(generated_document).items():
        status, response = next((code, r) for code, r in op["responses"].items() if code[0] in "23")
        for media_type in response.get("content", {}):
            schema = response["content"][media_type]["schema"]
            msg = message_sampler(schema["$ref"].rsplit("/", 1)[-1], zeros=zeros)
            body = json.loads(
                json.dumps(json_format.MessageToDict(msg, always_print_fields_with_no_presence=True))
            )
            at = pointer("paths", path, method, "responses", status, "content", media_type, "schema")
            errors = _errors(validator_for(generated_document, at), body)
            assert not errors, f"{operation_id}: {body}\n" + "\n".join(errors)


def test_realworld_requests_and_responses_validate_against_the_generated_schemas(
    generated_document: dict[str, Any],
    realworld_spec: dict[str, Any],
    realworld_operations: list[RealWorldOperation],
) -> None:
    operations = _operations(generated_document)
    for op in realworld_operations:
        path, method, _generated = operations[EXPECTED_RPCS[op.operation_id].replace(".", "_")]
        if "requestBody" in op.operation:
            spec_body = resolve(realworld_spec, op.operation["requestBody"]["$ref"])
            sent = sample_json(spec_body["content"]["application/json"]["schema"], realworld_spec)
            at = pointer("paths", path, method, "requestBody", "content", "application/json", "schema")
            errors = _errors(validator_for(generated_document, at), sent)
            assert not errors, f"{op.operation_id} request {sent}\n" + "\n".join(errors)
        code = next(code for code in op.operation["responses"] if str(code).startswith("2"))
        spec_response = op.operation["responses"][code]
        spec_response = (
            resolve(realworld_spec, spec_response["$ref"]) if "$ref" in spec_response else spec_response
        )
        if "application/json" in spec_response.get("content", {}):
            answer = sample_json(spec_response["content"]["application/json"]["schema"], realworld_spec)
            at = pointer(
                "paths", path, method, "responses", str(code), "content", "application/json", "schema"
            )
            errors = _errors(validator_for(generated_document, at), answer)
            assert not errors, f"{op.operation_id} response {answer}\n" + "\n".join(errors)
