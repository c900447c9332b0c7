"""The v1 contract against the RealWorld REST contract (`shared/realworld/openapi.yml`).

Every RealWorld operation is exactly one RPC with the same method and path, the same
success status, the same request field names and the same response JSON shape; every RPC
carries an authorization rule and lives under `/api/`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from conduit_gateway.descriptors import Contract, RpcInfo

from .support import (
    EXPECTED_RPCS,
    RFC3339,
    RealWorldOperation,
    normalise_path,
    pointer,
    resolve,
    sample_json,
    validator_for,
)

SAMPLE_PATH_VALUES = {"string": "how-to-train-your-dragon", "integer": 42}
_JSON_OPTIONS: dict[str, Any] = {"always_print_fields_with_no_presence": True}  # = Envoy's printing


def _rpc_for(contract: Contract, op: RealWorldOperation) -> RpcInfo:
    return contract.rpc(EXPECTED_RPCS[op.operation_id])


def _success_response(op: RealWorldOperation) -> tuple[int, dict[str, Any]]:
    codes = [code for code in op.operation["responses"] if str(code).startswith("2")]
    assert len(codes) == 1, f"{op.operation_id} documents {codes}"
    return int(codes[0]), op.operation["responses"][codes[0]]


def _response_pointer(spec: dict[str, Any], op: RealWorldOperation) -> str | None:
    """JSON pointer of the success response's JSON schema in the spec, None for no content."""
    status, response = _success_response(op)
    parts = ["paths", op.path.removeprefix("/api"), op.method.lower(), "responses", str(status)]
    if "$ref" in response:
        parts = response["$ref"].removeprefix("#/").split("/")
        response = resolve(spec, response["$ref"])
    if "application/json" not in response.get("content", {}):
        return None
    return pointer(*parts, "content", "application/json", "schema")


def _to_json(msg: Message) -> Any:
    """What the gateway prints, parsed back: a JSON round trip keeps Python types honest."""
    return json.loads(json.dumps(json_format.MessageToDict(msg, **_JSON_OPTIONS)))


def test_the_spec_has_the_nineteen_realworld_operations(
    realworld_operations: list[RealWorldOperation],
) -> None:
    assert sorted(op.operation_id for op in realworld_operations) == sorted(EXPECTED_RPCS)


def test_every_realworld_operation_maps_to_exactly_one_rpc_with_the_same_method_and_path(
    contract: Contract, realworld_operations: list[RealWorldOperation]
) -> None:
    by_route: dict[tuple[str, str], list[str]] = defaultdict(list)
    by_path: dict[str, list[str]] = defaultdict(list)
    for rpc in contract.rpcs():
        for binding in rpc.bindings:
            name = f"{rpc.service_name}.{rpc.method}"
            by_route[binding.method, normalise_path(binding.path_template)].append(name)
            by_path[normalise_path(binding.path_template)].append(f"{binding.method} {name}")
    problems: list[str] = []
    found: dict[str, str] = {}
    for op in realworld_operations:
        rpcs = by_route.get(op.key, [])
        if len(rpcs) == 1:
            found[op.operation_id] = rpcs[0]
        elif rpcs:
            problems.append(f"duplicated: {op.method} {op.path} ({op.operation_id}) -> {', '.join(rpcs)}")
        elif by_path.get(op.key[1]):
            problems.append(
                f"differs: {op.method} {op.path} ({op.operation_id}); same path has "
                f"{', '.join(by_path[op.key[1]])}"
            )
        else:
            problems.append(f"missing: {op.method} {op.path} ({op.operation_id}) has no RPC")
    assert not problems, "RealWorld operations without exactly one RPC:\n" + "\n".join(problems)
    assert found == EXPECTED_RPCS


def test_realworld_path_and_query_parameters_are_fields_of_the_request(
    contract: Contract, realworld_spec: dict[str, Any], realworld_operations: list[RealWorldOperation]
) -> None:
    for op in realworld_operations:
        rpc = _rpc_for(contract, op)
        fields = {f.json_name: f for f in rpc.input_type.fields} | {f.name: f for f in rpc.input_type.fields}
        declared = op.operation.get("parameters", [])
        params = [resolve(realworld_spec, p["$ref"]) if "$ref" in p else p for p in declared]
        for param in params:
            where = f"{op.operation_id} {param['in']} parameter {param['name']!r}"
            assert param["name"] in fields, f"{where} is not a field of {rpc.input_type.full_name}"
            field = fields[param["name"]]
            integer = field.type in (field.TYPE_INT32, field.TYPE_UINT32, field.TYPE_INT64, field.TYPE_UINT64)
            assert integer == (param["schema"]["type"] == "integer"), f"{where}: proto type {field.type}"
        assert [p["name"] for p in params if p["in"] == "path"] == list(rpc.path_params), op.operation_id


def test_every_rpc_has_an_authorization_rule(contract: Contract) -> None:
    missing = [rpc.full_path for rpc in contract.rpcs() if rpc.access == "ACCESS_UNSPECIFIED"]
    assert not missing, f"RPCs without (conduit.options.v1.auth): {missing}"


def test_every_http_rule_is_under_api(contract: Contract) -> None:
    outside = [
        f"{b.method} {b.path_template} ({rpc.full_path})"
        for rpc in contract.rpcs()
        for b in rpc.bindings
        if not b.path_template.startswith("/api/")
    ]
    assert not outside


def test_internal_rpcs_have_no_http_rule(contract: Contract) -> None:
    assert not [rpc.full_path for rpc in contract.rpcs() if rpc.access == "ACCESS_INTERNAL" and rpc.has_http]


def test_operations_the_spec_secures_need_a_token_and_the_others_accept_anonymous_callers(
    contract: Contract, realworld_operations: list[RealWorldOperation]
) -> None:
    for op in realworld_operations:
        expected = "ACCESS_AUTHENTICATED" if op.operation.get("security") else "ACCESS_ANONYMOUS"
        assert _rpc_for(contract, op).access == expected, op.operation_id


def test_success_statuses_match_the_spec(
    contract: Contract, realworld_operations: list[RealWorldOperation]
) -> None:
    for op in realworld_operations:
        documented, _ = _success_response(op)
        rpc = _rpc_for(contract, op)
        if documented == 200:
            assert rpc.success_status == 0, f"{op.operation_id} documents 200 but sets {rpc.success_status}"
        else:
            assert rpc.success_status == documented, op.operation_id
    created = {
        name: contract.rpc(name).success_status
        for name in (
            "UsersService.CreateUser",
            "ArticlesService.CreateArticle",
            "ArticlesService.DeleteArticle",
            "CommentsService.DeleteComment",
        )
    }
    assert created == {
        "UsersService.CreateUser": 201,
        "ArticlesService.CreateArticle": 201,
        "ArticlesService.DeleteArticle": 204,
        "CommentsService.DeleteComment": 204,
    }


@pytest.mark.parametrize("zeros", [False, True], ids=["populated", "default-values"])
def test_responses_have_exactly_the_realworld_json_shape(
    contract: Contract,
    realworld_spec: dict[str, Any],
    realworld_operations: list[RealWorldOperation],
    message_sampler: Callable[..., Message],
    zeros: bool,
) -> None:
    for op in realworld_operations:
        rpc = _rpc_for(contract, op)
        schema_at = _response_pointer(realworld_spec, op)
        if schema_at is None:  # 204: the response message must have nothing to lose
            assert not rpc.output_type.fields, f"{op.operation_id} answers no content but has fields"
            continue
        body = _to_json(message_sampler(rpc.output_type.full_name, zeros=zeros))
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator_for(realworld_spec, schema_at).iter_errors(body)
        ]
        assert not errors, f"{op.operation_id} ({rpc.output_type.full_name}) {body}:\n" + "\n".join(errors)


def test_counts_ids_lists_booleans_and_timestamps_print_as_realworld_clients_expect(
    contract: Contract,
    message_sampler: Callable[..., Message],
) -> None:
    def new(full_name: str) -> Any:
        return contract.message_class(full_name)()

    assert _to_json(new("conduit.articles.v1.ListTagsResponse")) == {"tags": []}
    assert _to_json(new("conduit.articles.v1.ListCommentsResponse")) == {"comments": []}
    listed = new("conduit.articles.v1.ListArticlesResponse")
    assert _to_json(listed) == {"articles": [], "articlesCount": 0}
    listed.articles.add()
    article = _to_json(listed)["articles"][0]
    assert article["tagList"] == []
    assert article["favorited"] is False
    assert article["favoritesCount"] == 0
    assert type(article["favoritesCount"]) is int
    profile = _to_json(new("conduit.users.v1.Profile"))
    assert profile == {"username": "", "bio": "", "image": "", "following": False}
    comment = _to_json(message_sampler("conduit.articles.v1.CreateCommentResponse", zeros=False))["comment"]
    assert type(comment["id"]) is int
    assert RFC3339.match(comment["createdAt"])
    assert comment["createdAt"].endswith(".789Z")
    got = _to_json(message_sampler("conduit.articles.v1.GetArticleResponse", zeros=False))["article"]
    assert type(got["favoritesCount"]) is int
    assert got["favorited"] is True
    assert RFC3339.match(got["createdAt"])
    assert RFC3339.match(got["updatedAt"])


def test_realworld_request_bodies_and_parameters_parse_into_the_request_message(
    contract: Contract, realworld_spec: dict[str, Any], realworld_operations: list[RealWorldOperation]
) -> None:
    for op in realworld_operations:
        rpc = _rpc_for(contract, op)
        sent: dict[str, Any] = {}
        if "requestBody" in op.operation:
            body = resolve(realworld_spec, op.operation["requestBody"]["$ref"])
            sent.update(sample_json(body["content"]["application/json"]["schema"], realworld_spec))
        for param in op.operation.get("parameters", []):
            param = resolve(realworld_spec, param["$ref"]) if "$ref" in param else param  # noqa: PLW2901
            sent[param["name"]] = SAMPLE_PATH_VALUES[param["schema"]["type"]]
        msg = contract.message_class(rpc.input_type.full_name)()
        json_format.Parse(json.dumps(sent), msg, ignore_unknown_fields=False)
        # Every value sent arrived: no name was matched loosely and nothing was dropped.
        assert json_format.MessageToDict(msg) == sent, op.operation_id


@pytest.mark.parametrize(
    "body",
    [
        {"user": {"email": "", "password": "", "username": "jake", "bio": "", "image": ""}},
        {"user": {"bio": "only this"}},
    ],
    ids=["settings-page-sends-all-five-fields", "one-field"],
)
def test_update_user_accepts_what_realworld_settings_pages_send(
    contract: Contract, body: dict[str, Any]
) -> None:
    msg: Any = contract.message_class("conduit.users.v1.UpdateCurrentUserRequest")()
    json_format.Parse(json.dumps(body), msg, ignore_unknown_fields=False)
    assert msg.user.bio == body["user"]["bio"]


@pytest.mark.parametrize("rpc_name", ["ProfilesService.FollowProfile", "ArticlesService.FavoriteArticle"])
def test_follow_and_favorite_accept_an_empty_object_with_the_path_parameter(
    contract: Contract, rpc_name: str
) -> None:
    rpc = contract.rpc(rpc_name)
    assert rpc.body == "*"
    msg = contract.message_class(rpc.input_type.full_name)()
    json_format.Parse(json.dumps({rpc.path_params[0]: "x"}), msg, ignore_unknown_fields=False)
    assert [f.name for f in rpc.input_type.fields] == list(rpc.path_params)  # `{}` leaves nothing unset
