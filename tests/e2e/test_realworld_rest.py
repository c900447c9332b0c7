"""Every RealWorld operation over HTTPS through Envoy, driven from shared/realworld/openapi.yml:
the documented success status and a body that validates against the spec's (closed) schema,
plus the error cases RealWorld frontends rely on."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
import yaml

from tests.contract.support import iter_realworld_operations, pointer, realworld_file, validator_for

from .conftest import RunningMesh

pytestmark = pytest.mark.e2e
SPEC: dict[str, Any] = yaml.safe_load(realworld_file("openapi.yml").read_text(encoding="utf-8"))
OPERATIONS = {op.operation_id: op for op in iter_realworld_operations(SPEC)}


def _success_status(operation_id: str) -> int:
    return min(int(code) for code in OPERATIONS[operation_id].operation["responses"] if code.startswith("2"))


class RealWorldClient:
    """Calls operations by operationId and checks status and body against the spec."""

    def __init__(self, mesh: RunningMesh) -> None:
        self.http = httpx.Client(base_url=mesh.https, verify=ssl.create_default_context(cafile=mesh.ca),
                                 timeout=15)
        self.exercised: set[str] = set()

    def call(self, operation_id: str, *, token: str | None = None, json: Any = None,
             params: Mapping[str, Any] | None = None, **path: Any) -> Any:
        operation = OPERATIONS[operation_id]
        headers = {"Authorization": f"Token {token}"} if token else {}
        answer = self.http.request(operation.method, operation.path.format(**path), json=json,
                                   params=params, headers=headers)
        expected = _success_status(operation_id)
        assert answer.status_code == expected, f"{operation_id}: {answer.status_code} {answer.text}"
        self.exercised.add(operation_id)
        if expected == 204:
            assert answer.content == b""
            return None
        spec_path = operation.path.removeprefix("/api")
        ref = SPEC["paths"][spec_path][operation.method.lower()]["responses"][str(expected)]["$ref"]
        name = ref.rsplit("/", 1)[-1]
        validator = validator_for(SPEC, pointer("components", "responses", name, "content",
                                                "application/json", "schema"))
        body = answer.json()
        errors = sorted(validator.iter_errors(body), key=str)
        assert not errors, f"{operation_id}: {errors[0].message} in {body}"
        return body

    def raw(self, method: str, path: str, *, token: str | None = None, json: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Token {token}"} if token else {}
        return self.http.request(method, path, json=json, headers=headers)


@pytest.fixture(scope="module")
def client(mesh: RunningMesh) -> Iterator[RealWorldClient]:
    with httpx.Client():
        api = RealWorldClient(mesh)
        yield api
        api.http.close()


def _new_user(api: RealWorldClient, name: str) -> tuple[str, str]:
    email = f"{name}@example.com"
    body = api.call("CreateUser", json={"user": {"username": name, "email": email, "password": "secret-pw-1"}})
    return body["user"]["token"], email


def test_every_realworld_operation_answers_as_documented(client: RealWorldClient) -> None:
    suffix = uuid.uuid4().hex[:8]
    _, jake_email = _new_user(client, f"jake{suffix}")
    anne, _ = _new_user(client, f"anne{suffix}")
    token = client.call("Login", json={"user": {"email": jake_email, "password": "secret-pw-1"}})["user"]["token"]
    assert client.call("GetCurrentUser", token=token)["user"]["username"] == f"jake{suffix}"
    settings = {"email": "", "username": "", "password": "", "bio": "I like dragons", "image": ""}
    assert client.call("UpdateCurrentUser", token=token, json={"user": settings})["user"]["bio"] == "I like dragons"
    assert client.call("GetProfileByUsername", username=f"anne{suffix}")["profile"]["following"] is False
    assert client.call("FollowUserByUsername", token=token, json={},
                       username=f"anne{suffix}")["profile"]["following"] is True
    article = client.call("CreateArticle", token=anne, json={"article": {
        "title": f"Dragons {suffix}", "description": "How to train them", "body": "Believe.",
        "tagList": ["dragons", "training"]}})["article"]
    slug = article["slug"]
    assert article["tagList"] == ["dragons", "training"]
    feed = client.call("GetArticlesFeed", token=token, params={"limit": 10, "offset": 0})
    assert [a["slug"] for a in feed["articles"]] == [slug]
    listed = client.call("GetArticles", params={"author": f"anne{suffix}", "limit": 10, "offset": 0})
    assert listed["articlesCount"] == 1
    assert client.call("GetArticle", slug=slug, token=token)["article"]["author"]["following"] is True
    updated = client.call("UpdateArticle", token=anne, slug=slug, json={"article": {"body": "Believe harder."}})
    assert updated["article"]["body"] == "Believe harder."
    assert client.call("CreateArticleFavorite", token=token, json={}, slug=slug)["article"]["favoritesCount"] == 1
    assert client.call("DeleteArticleFavorite", token=token, slug=slug)["article"]["favorited"] is False
    comment = client.call("CreateArticleComment", token=token, slug=slug,
                          json={"comment": {"body": "Great read"}})["comment"]
    assert [c["id"] for c in client.call("GetArticleComments", slug=slug)["comments"]] == [comment["id"]]
    client.call("DeleteArticleComment", token=token, slug=slug, id=comment["id"])
    assert "dragons" in client.call("GetTags")["tags"]
    assert client.call("UnfollowUserByUsername", token=token, username=f"anne{suffix}")["profile"]["following"] is False
    client.call("DeleteArticle", token=anne, slug=slug)
    assert client.exercised == set(OPERATIONS), f"not exercised: {set(OPERATIONS) - client.exercised}"


def test_errors_have_realworld_status_and_shape(client: RealWorldClient) -> None:
    suffix = uuid.uuid4().hex[:8]
    jake, _ = _new_user(client, f"jake{suffix}")
    anne, _ = _new_user(client, f"anne{suffix}")
    missing = client.raw("GET", "/api/user")
    assert missing.status_code == 401
    assert "errors" in missing.json()
    slug = client.call("CreateArticle", token=anne, json={"article": {
        "title": f"Mine {suffix}", "description": "d", "body": "b"}})["article"]["slug"]
    forbidden = client.raw("PUT", f"/api/articles/{slug}", token=jake, json={"article": {"body": "x"}})
    assert forbidden.status_code == 403
    assert "errors" in forbidden.json()
    unknown = client.raw("GET", "/api/articles/no-such-article-here")
    assert unknown.status_code == 404
    assert "errors" in unknown.json()
    duplicate = client.raw("POST", "/api/users", json={"user": {
        "username": f"other{suffix}", "email": f"jake{suffix}@example.com", "password": "secret-pw-1"}})
    assert duplicate.status_code == 422
    assert duplicate.json() == {"errors": {"email": ["has already been taken"]}}
    blank = client.raw("POST", "/api/users", json={"user": {"username": "", "email": "x@example.com",
                                                              "password": "secret-pw-1"}})
    assert blank.status_code == 422
    assert blank.json()["errors"]["username"] == ["can't be blank"]
    smuggled = client.raw("POST", "/api/users", json={"user": {
        "username": f"eve{suffix}", "email": f"eve{suffix}@example.com", "password": "secret-pw-1",
        "roles": ["admin"]}})
    # Extra input is ignored and never bound: the account is created, without the role.
    assert smuggled.status_code == 201
    eve = smuggled.json()["user"]["token"]
    assert client.raw("GET", f"/api/admin/users/eve{suffix}/roles", token=eve).status_code == 403


def test_trailing_slash_and_token_on_public_reads_work_like_frontends_send_them(client: RealWorldClient) -> None:
    suffix = uuid.uuid4().hex[:8]
    token, _ = _new_user(client, f"kim{suffix}")
    created = client.raw("POST", "/api/articles/", token=token, json={"article": {
        "title": f"Slash {suffix}", "description": "d", "body": "b", "tagList": []}})
    assert created.status_code == 201
    assert client.raw("GET", "/api/tags", token=token).status_code == 200
    assert client.raw("GET", f"/api/profiles/kim{suffix}", token=token).json()["profile"]["following"] is False
