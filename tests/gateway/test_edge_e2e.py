"""The generated config in a real Envoy, in front of a tiny gRPC server, called as clients would.

One Envoy for the module; JWKS fetched from the upstream through the JWKS listener, as in
production.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit.users.v1 import users_pb2, users_pb2_grpc
from conduit_gateway.config import GatewaySpec, write_config
from conduit_gateway.descriptors import services_from_descriptors
from conduit_gateway.tls import ensure_local_tls
from tests.gateway.support import (
    AUDIENCE,
    DESCRIPTOR,
    ISSUER,
    EnvoyProcess,
    SigningKey,
    TinyServices,
    free_port,
    h2_request,
    raw_http1_request,
    tiny_upstream,
)

pytestmark = pytest.mark.e2e

ALLOWED_ORIGIN = "http://localhost:3000"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}


@dataclass
class Edge:
    https: str
    http: str
    tls_target: str
    ca_cert: Path
    key: SigningKey
    upstream: TinyServices
    envoy: EnvoyProcess

    def client(self, *, http2: bool = True) -> httpx.AsyncClient:
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        return httpx.AsyncClient(verify=context, http2=http2, timeout=10)

    def token_header(self, token: str | None = None) -> dict[str, str]:
        return {"authorization": f"Token {token or self.key.mint()}"}


@pytest.fixture(scope="module")
async def edge(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Edge]:
    key = SigningKey()
    async with tiny_upstream(key) as upstream:
        directory = tmp_path_factory.mktemp("edge")
        address = ("127.0.0.1", upstream.port)
        spec = GatewaySpec(
            descriptor_path=DESCRIPTOR,
            upstreams={s.name: address for s in services_from_descriptors(DESCRIPTOR)},
            tls=ensure_local_tls(directory / "tls"),
            jwt_issuer=ISSUER, jwt_audience=AUDIENCE,
            tls_port=free_port(), http_port=free_port(), admin_port=free_port(), jwks_port=free_port(),
            cors_origins=(ALLOWED_ORIGIN,),
        )
        envoy = EnvoyProcess(write_config(spec, directory / "envoy.yaml"), spec.admin_port)
        envoy.start()
        try:
            plain = f"http://127.0.0.1:{spec.http_port}"
            # The token probe passes once the JWKS has been fetched.
            await envoy.wait_ready([(f"{plain}/api/tags", {}),
                                    (f"{plain}/api/tags", {"authorization": f"Token {key.mint()}"})])
            yield Edge(https=f"https://localhost:{spec.tls_port}", http=plain,
                       tls_target=f"localhost:{spec.tls_port}", ca_cert=spec.tls.ca_cert, key=key,
                       upstream=upstream, envoy=envoy)
        finally:
            envoy.stop()


async def test_tags_over_https_h2_carry_security_headers_and_hsts(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.get(f"{edge.https}/api/tags")

    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    assert response.json() == {"tags": ["grpc", "envoy"]}
    assert response.headers["content-type"] == "application/json"
    assert {k: response.headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert response.headers["server"] == "conduit"
    assert not [h for h in response.headers if h.startswith(("grpc-", "x-conduit-", "x-envoy-"))]


async def test_tags_over_plain_http_have_no_hsts(edge: Edge) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{edge.http}/api/tags")

    assert response.status_code == 200
    assert response.json() == {"tags": ["grpc", "envoy"]}
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in response.headers


async def test_request_id_is_generated_and_traceparent_passes_through(edge: Edge) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with edge.client() as client:
        await client.get(f"{edge.https}/api/tags", headers={"traceparent": traceparent})

    seen = edge.upstream.tags.last_metadata
    assert seen["traceparent"] == traceparent
    assert seen["x-request-id"]


@pytest.mark.parametrize("http2", [True, False])
async def test_delete_article_answers_204_without_body(edge: Edge, http2: bool) -> None:
    async with edge.client(http2=http2) as client:
        response = await client.delete(f"{edge.https}/api/articles/some-slug", headers=edge.token_header())

    assert response.status_code == 204
    assert response.content == b""
    assert "content-length" not in response.headers
    assert "content-type" not in response.headers


async def test_create_article_answers_201_with_the_article(edge: Edge) -> None:
    new = {"article": {"title": "How to train your dragon", "description": "Ever wonder how?",
                       "body": "You have to believe", "tagList": ["dragons"]}}
    async with edge.client() as client:
        response = await client.post(f"{edge.https}/api/articles", json=new, headers=edge.token_header())

    assert response.status_code == 201
    article = response.json()["article"]
    assert article["slug"] == "how-to-train-your-dragon"
    assert article["tagList"] == ["dragons"]
    assert article["favoritesCount"] == 0


async def test_not_found_becomes_a_realworld_404(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.get(f"{edge.https}/api/articles/missing")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"errors": {"body": ["article not found"]}}
    assert not [h for h in response.headers if h.startswith(("grpc-", "x-conduit-"))]


async def test_invalid_argument_becomes_422_with_field_errors(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.get(f"{edge.https}/api/articles/invalid")

    assert response.status_code == 422
    assert response.json() == {"errors": {"title": ["can't be blank"]}}


async def test_rate_limit_becomes_429_with_retry_after(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.get(f"{edge.https}/api/articles/rate-limited")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json() == {"errors": {"body": ["too many attempts"]}}


async def test_error_without_body_metadata_falls_back_on_the_grpc_message(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.get(f"{edge.https}/api/articles/plain-error")

    assert response.status_code == 500
    assert response.json() == {"errors": {"body": ["conflict, try again"]}}


async def test_oauth_client_failure_is_an_rfc6749_401(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.post(
            f"{edge.https}/api/oauth/token", content=b"grant_type=client_credentials",
            headers={"content-type": "application/x-www-form-urlencoded"}, auth=("client", "wrong"))

    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client", "error_description": "client authentication failed"}
    assert response.headers["cache-control"] == "no-store"


async def test_other_oauth_errors_are_rfc6749_400s(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.post(
            f"{edge.https}/api/oauth/token", content=b"grant_type=password",
            headers={"content-type": "application/x-www-form-urlencoded"}, auth=("client", "secret"))

    assert response.status_code == 400
    assert response.json() == {"error": "unsupported_grant_type", "error_description": "unsupported grant"}


async def test_bearer_prefix_is_accepted_like_token(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.delete(f"{edge.https}/api/articles/some-slug",
                                       headers={"authorization": f"Bearer {edge.key.mint()}"})

    assert response.status_code == 204


async def test_missing_token_on_an_authenticated_route_is_a_json_401(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.get(f"{edge.https}/api/articles/feed")

    assert response.status_code == 401
    assert response.json() == {"errors": {"body": ["Jwt is missing"]}}


@pytest.mark.parametrize("token", ["not-a-jwt", "wrong-audience", "expired"])
async def test_bad_token_on_an_anonymous_route_is_a_json_401(edge: Edge, token: str) -> None:
    value = {"not-a-jwt": "abc.def", "wrong-audience": edge.key.mint(audience="someone-else"),
             "expired": edge.key.mint(ttl_seconds=-3600)}[token]
    async with edge.client() as client:
        response = await client.get(f"{edge.https}/api/tags", headers=edge.token_header(value))

    assert response.status_code == 401
    assert list(response.json()["errors"]) == ["body"]


async def test_unknown_path_is_a_json_404(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.get(f"{edge.https}/api/nope")

    assert response.status_code == 404
    assert response.json() == {"errors": {"body": ["not found"]}}


async def test_unknown_query_parameters_are_ignored(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.get(f"{edge.https}/api/tags", params={"foo": "1", "_": "123"})

    assert response.status_code == 200
    assert response.json() == {"tags": ["grpc", "envoy"]}


async def test_a_query_parameter_of_the_wrong_type_is_a_plain_400(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.get(f"{edge.https}/api/articles", params={"limit": "ten"})

    assert response.status_code == 400
    assert response.json() == {"errors": {"body": ["is invalid"]}}


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PATCH", "/api/user", "GET, PUT"),
    ("DELETE", "/api/profiles/jake", "GET"),
    ("PUT", "/api/profiles/jake/follow", "DELETE, POST"),
    ("OPTIONS", "/api/articles/how-to/comments", "GET, POST"),
])
async def test_a_known_path_with_an_undeclared_method_is_a_405_with_allow(edge: Edge, method: str, path: str,
                                                                          allow: str) -> None:
    async with edge.client(http2=False) as client:
        response = await client.request(method, f"{edge.https}{path}", headers=edge.token_header())

    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    assert response.json() == {"errors": {"method": ["is not allowed"]}}

def _article_json(body_bytes: int) -> bytes:
    return b'{"article":{"title":"t","description":"d","body":"' + b"a" * body_bytes + b'"}}'


async def test_body_over_one_mib_is_a_json_413_over_http1(edge: Edge) -> None:
    async with edge.client(http2=False) as client:
        response = await client.post(f"{edge.https}/api/articles", content=_article_json(2 * 1024 * 1024),
                                     headers={**edge.token_header(), "content-type": "application/json"})

    assert response.status_code == 413
    assert response.json() == {"errors": {"body": ["Payload Too Large"]}}


@pytest.mark.parametrize(("body_bytes", "status"), [(2 * 1024 * 1024, 413), (900 * 1024, 201)])
async def test_body_limit_is_one_mib_over_http2(edge: Edge, body_bytes: int, status: int) -> None:
    host, port = edge.tls_target.split(":")
    headers = {**edge.token_header(), "content-type": "application/json"}

    response = await h2_request(host, int(port), ca_cert=edge.ca_cert, method="POST", path="/api/articles",
                                headers=headers, body=_article_json(body_bytes))

    assert response.status == status
    if status == 413:
        assert json.loads(response.body) == {"errors": {"body": ["Payload Too Large"]}}


@pytest.mark.parametrize("http2", [True, False])
async def test_unknown_top_level_body_fields_are_ignored(edge: Edge, http2: bool) -> None:
    user = {"username": "jake", "email": "jake@jake.jake", "password": "jakejake"}
    async with edge.client(http2=http2) as client:
        response = await client.post(f"{edge.https}/api/users", json={"user": user, "admin": True, "roles": ["x"]})

    assert response.status_code == 201
    assert response.json()["user"] == {**response.json()["user"], "username": "jake", "email": "jake@jake.jake"}


@pytest.mark.parametrize("user", [
    {"email": "jake@jake.jake", "admin": True},
    # Escapes are resolved like the transcoder resolves them; still unknown, still ignored.
    {"email": "jake@jake.jake", "\\u0072oles": ["admin"]},
    {"image": "i", "token": "x", "extra": {"nested": [1, {"deeper": None}]}},
])
async def test_unknown_nested_body_fields_are_ignored_and_never_bound(edge: Edge, user: dict[str, object]) -> None:
    content = json.dumps({"user": user}).replace("\\\\u", "\\u").encode()
    async with edge.client() as client:
        response = await client.put(f"{edge.https}/api/user", content=content,
                                    headers={**edge.token_header(), "content-type": "application/json"})

    assert response.status_code == 200, response.text
    echoed = response.json()["user"]
    assert echoed["email"] == user.get("email", "")
    assert echoed["token"] == ""  # a `token` in the body is not a password, nor anything else


async def test_the_body_of_an_operation_without_one_is_ignored(edge: Edge) -> None:
    # The official RealWorld collection posts a user to follow; a body can never rebind the path.
    content = b'{"slug": "someone-else", "user": {"email": "jake@jake.jake"}}'
    async with edge.client() as client:
        response = await client.post(f"{edge.https}/api/articles/how-to/favorite", content=content,
                                     headers={**edge.token_header(), "content-type": "application/json"})

    assert response.status_code == 200, response.text
    assert response.json()["article"]["slug"] == "how-to"


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"user": {"email": 12, "password": "p", "username": "u"}}, "email", "must be a string"),
    ({"user": "jake"}, "user", "must be an object"),
    ({"user": {"email": ["a@b.c"]}}, "email", "must be a string"),
])
async def test_a_value_of_the_wrong_type_is_a_422_naming_the_field(edge: Edge, body: object, field: str,
                                                                   message: str) -> None:
    calls = edge.upstream.users.calls
    async with edge.client() as client:
        response = await client.post(f"{edge.https}/api/users", json=body)

    assert response.status_code == 422
    assert response.json() == {"errors": {field: [message]}}
    assert edge.upstream.users.calls == calls


async def test_a_list_field_given_a_string_is_named(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.post(f"{edge.https}/api/articles", headers=edge.token_header(),
                                     json={"article": {"title": "t", "description": "d", "body": "b",
                                                       "tagList": "dragons"}})

    assert response.status_code == 422
    assert response.json() == {"errors": {"tagList": ["must be a list"]}}

async def test_update_user_with_the_five_fields_a_frontend_sends_passes(edge: Edge) -> None:
    user = {"email": "jake@jake.jake", "username": "jake", "password": "new-password",
            "bio": "I like to skateboard", "image": "https://i.stack.imgur.com/xHWG8.jpg"}
    async with edge.client() as client:
        response = await client.put(f"{edge.https}/api/user", json={"user": user}, headers=edge.token_header())

    assert response.status_code == 200
    echoed = response.json()["user"]
    assert {k: echoed[k] for k in ("email", "username", "bio", "image")} == {
        k: user[k] for k in ("email", "username", "bio", "image")}
    assert echoed["token"] == "password-was-set"


async def test_create_article_with_a_trailing_slash_and_proto_names_passes(edge: Edge) -> None:
    new = {"article": {"title": "t", "description": "d", "body": "b", "tag_list": ["a", "b"]}}
    async with edge.client() as client:
        response = await client.post(f"{edge.https}/api/articles/", json=new, headers=edge.token_header())

    assert response.status_code == 201
    assert response.json()["article"]["tagList"] == ["a", "b"]


@pytest.mark.parametrize("content", [b"{}", b"", b" { } "])
async def test_empty_body_of_a_favorite_passes(edge: Edge, content: bytes) -> None:
    async with edge.client() as client:
        response = await client.post(f"{edge.https}/api/articles/how-to/favorite", content=content,
                                     headers={**edge.token_header(), "content-type": "application/json"})

    assert response.status_code == 200
    assert response.json()["article"] == {**response.json()["article"], "slug": "how-to", "favorited": True}


async def test_strings_that_look_like_json_are_not_mistaken_for_keys(edge: Edge) -> None:
    title = 'a"}, "admin": true, {"x": "'
    description = '\\" , "admin": {'
    body = '"admin": [1, {"nope": 2}] } ]'
    tags = ['}', '{"admin": 1}', '\\', '"', "\u00e9\n"]
    content = ('{"article":{"title":' + json.dumps(title) + ',"description":' + json.dumps(description)
               + ' , "body" :\n' + json.dumps(body) + ',"tagList":' + json.dumps(tags)
               + ',"t\\u0069tle":' + json.dumps(title) + "}}").encode()
    async with edge.client() as client:
        response = await client.post(f"{edge.https}/api/articles", content=content,
                                     headers={**edge.token_header(), "content-type": "application/json"})

    assert response.status_code == 201, response.text
    article = response.json()["article"]
    assert (article["title"], article["description"], article["body"]) == (title, description, body)
    assert article["tagList"] == tags


NOT_JSON = {"errors": {"body": ["is not valid JSON"]}}


@pytest.mark.parametrize("content", [b'{"user": {"admin": ', b'{"user": {"admin": tru}}',
                                     b'{"user": {"admin": 1}} {', b'{"user": {"admin" 1}}',
                                     b'{"user": {"email": "a\x00b"}}', b'{"user": {"email": "a\\qb"}}',
                                     b"\x00", b"{'user': {}}"])
async def test_malformed_json_is_a_plain_400(edge: Edge, content: bytes) -> None:
    async with edge.client() as client:
        response = await client.post(f"{edge.https}/api/users", content=content,
                                     headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json() == NOT_JSON


@pytest.mark.parametrize(("depth", "status"), [(90, 201), (130, 400)])
async def test_deep_nesting_is_scanned_or_else_refused_by_the_transcoder(edge: Edge, depth: int,
                                                                          status: int) -> None:
    deep = "[" * depth + "]" * depth
    content = ('{"user": {"email": "jake@jake.jake", "deep": ' + deep + "}}").encode()
    async with edge.client() as client:
        response = await client.post(f"{edge.https}/api/users", content=content,
                                     headers={"content-type": "application/json"})

    # Up to the scanner's limit (MAX_DEPTH 128) an unknown key is skipped, however deep; beyond
    # it the transcoder (limit 100) refuses, and says so without its parser's words.
    assert response.status_code == status
    if status == 400:
        assert response.json() == {"errors": {"body": ["is invalid"]}}


@pytest.mark.parametrize("path", ["/api/profiles/x/../../user", "/api/profiles/x/%2e%2E/%2E./user",
                                  "/api/./profiles/../user", "/api/articles/..//user"])
async def test_dot_segments_are_resolved_before_routing_and_auth(edge: Edge, path: str) -> None:
    host, port = edge.tls_target.split(":")

    anonymous = await raw_http1_request(host, int(port), ca_cert=edge.ca_cert,
                                        request_line=f"GET {path} HTTP/1.1", headers={})
    with_token = await raw_http1_request(host, int(port), ca_cert=edge.ca_cert,
                                         request_line=f"GET {path} HTTP/1.1", headers=edge.token_header())

    # Handled as GET /api/user (GetCurrentUser): its JWT requirement applies ...
    assert anonymous.status == 401
    assert json.loads(anonymous.body) == {"errors": {"body": ["Jwt is missing"]}}
    assert anonymous.headers["www-authenticate"].endswith('/api/user"')
    # ... and with a token it reaches that RPC (which the tiny upstream does not implement).
    assert with_token.status == 501
    rpc = "/conduit.users.v1.UsersService/GetCurrentUser"
    for _ in range(40):  # the log is flushed every 100 ms
        entries = edge.envoy.access_log()
        if any(e.get("rpc") == rpc and e.get("path") == "/api/user" for e in entries):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("no GetCurrentUser call in the access log")
    assert path not in [e.get("path") for e in entries]


async def test_too_many_headers_is_431_over_http1(edge: Edge) -> None:
    headers = {f"x-filler-{i}": "1" for i in range(120)}
    async with edge.client(http2=False) as client:
        response = await client.get(f"{edge.https}/api/tags", headers=headers)

    assert response.status_code == 431
    assert response.json()["errors"]["body"]


async def test_encoded_slash_in_path_is_a_json_400(edge: Edge) -> None:
    async with edge.client(http2=False) as client:
        response = await client.get(f"{edge.https}/api/articles/a%2Fb")

    assert response.status_code == 400
    assert response.json() == {"errors": {"body": ["Bad Request"]}}


async def test_header_with_underscore_is_refused_over_http1(edge: Edge) -> None:
    async with edge.client(http2=False) as client:
        response = await client.get(f"{edge.https}/api/tags", headers={"x_user": "admin"})

    assert response.status_code == 400


async def test_cors_preflight_is_answered_for_allowed_origins_only(edge: Edge) -> None:
    preflight = {"access-control-request-method": "POST",
                 "access-control-request-headers": "authorization,content-type"}
    async with edge.client() as client:
        allowed = await client.options(f"{edge.https}/api/articles",
                                       headers={"origin": ALLOWED_ORIGIN, **preflight})
        other = await client.options(f"{edge.https}/api/articles",
                                     headers={"origin": "https://evil.example", **preflight})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"]
    assert other.status_code == 403
    assert not [h for h in other.headers if h.startswith("access-control-")]


async def test_native_grpc_over_tls_reaches_public_rpcs_but_never_internal_ones(edge: Edge) -> None:
    credentials = grpc.ssl_channel_credentials(edge.ca_cert.read_bytes())
    async with grpc.aio.secure_channel(edge.tls_target, credentials) as channel:
        tags = await articles_pb2_grpc.TagsServiceStub(channel).ListTags(articles_pb2.ListTagsRequest())
        with pytest.raises(grpc.aio.AioRpcError) as not_found:
            await articles_pb2_grpc.ArticlesServiceStub(channel).GetArticle(
                articles_pb2.GetArticleRequest(slug="missing"))
        with pytest.raises(grpc.aio.AioRpcError) as internal:
            await users_pb2_grpc.UserDirectoryServiceStub(channel).BatchGetProfiles(
                users_pb2.BatchGetProfilesRequest())

    assert list(tags.tags) == ["grpc", "envoy"]
    assert not_found.value.code() == grpc.StatusCode.NOT_FOUND
    assert not_found.value.details() == "article not found"
    assert internal.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert edge.upstream.directory.calls == 0


async def test_grpc_web_call_is_translated(edge: Edge) -> None:
    message = articles_pb2.ListTagsRequest().SerializeToString()
    frame = b"\x00" + struct.pack(">I", len(message)) + message
    async with edge.client() as client:
        response = await client.post(
            f"{edge.https}/conduit.articles.v1.TagsService/ListTags", content=frame,
            headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1",
                     "origin": ALLOWED_ORIGIN})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/grpc-web+proto"
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    length = struct.unpack(">I", response.content[1:5])[0]
    answer = articles_pb2.ListTagsResponse.FromString(response.content[5:5 + length])
    assert list(answer.tags) == ["grpc", "envoy"]
    assert b"grpc-status:0" in response.content[5 + length:]


async def test_server_stream_is_delivered_as_sse_while_it_happens(edge: Edge) -> None:
    async with edge.client() as client, client.stream("GET", f"{edge.https}/api/watch/articles") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        chunks = response.aiter_text()
        first = await anext(chunks)
        # The upstream holds the second event back until the first has reached us.
        edge.upstream.realtime.release.set()
        rest = "".join([chunk async for chunk in chunks])

    assert first.startswith("data: ")
    assert json.loads(first.removeprefix("data: "))["event"]["eventId"] == "1"
    assert '"eventId":"2"' in rest


async def test_access_log_is_json_with_the_rest_path_and_the_services_status(edge: Edge) -> None:
    async with edge.client() as client:
        response = await client.get(f"{edge.https}/api/articles/logged-missing")
    assert response.status_code == 404

    entry: dict[str, object] = {}
    for _ in range(40):  # the log is flushed every 100 ms
        entries = [e for e in edge.envoy.access_log() if e.get("path") == "/api/articles/logged-missing"]
        if entries:
            entry = entries[-1]
            break
        await asyncio.sleep(0.05)

    assert entry["method"] == "GET"
    assert entry["rpc"] == "/conduit.articles.v1.ArticlesService/GetArticle"
    assert entry["status"] == 404
    assert entry["rest_grpc_status"] == "5"
    assert entry["request_id"]
    assert entry["upstream_host"] == f"127.0.0.1:{edge.upstream.port}"
    assert entry["duration_ms"] is not None


async def test_jwks_was_fetched_from_the_users_rpc(edge: Edge) -> None:
    assert edge.upstream.auth.jwks_calls >= 1
