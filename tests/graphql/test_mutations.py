"""Every mutation over HTTPS through Envoy, each change checked through its REST twin."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .conftest import GraphqlClient

pytestmark = pytest.mark.e2e


def _rest(gql: GraphqlClient, method: str, path: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Token {token}"} if token else {}
    answer = gql.http.request(method, f"{gql.mesh.mesh.https}{path}", headers=headers)
    return answer.status_code, (answer.json() if answer.content else None)


def test_every_mutation_works_and_rest_sees_the_change(gql: GraphqlClient) -> None:
    name = f"mut{uuid.uuid4().hex[:10]}"
    registered = gql.run("mutation($u: NewUserInput!) { register(user: $u) { username email token } }",
                         {"u": {"username": name, "email": f"{name}@example.com", "password": "password123"}})
    assert _rest(gql, "GET", "/api/user", registered["register"]["token"])[1]["user"]["username"] == name
    logged = gql.run("mutation($u: LoginUserInput!) { login(user: $u) { token } }",
                     {"u": {"email": f"{name}@example.com", "password": "password123"}})
    token = logged["login"]["token"]

    gql.run("mutation { updateUser(user: {bio: \"written in GraphQL\"}) { bio } }", token=token)
    assert _rest(gql, "GET", "/api/user", token)[1]["user"]["bio"] == "written in GraphQL"

    other, _ = gql.register("followed")
    assert gql.run("mutation($u: String!) { follow(username: $u) { following } }", {"u": other},
                   token=token)["follow"]["following"] is True
    assert _rest(gql, "GET", f"/api/profiles/{other}", token)[1]["profile"]["following"] is True
    gql.run("mutation($u: String!) { unfollow(username: $u) { following } }", {"u": other}, token=token)
    assert _rest(gql, "GET", f"/api/profiles/{other}", token)[1]["profile"]["following"] is False

    created = gql.run("mutation($a: NewArticleInput!) { createArticle(article: $a) { slug title } }",
                      {"a": {"title": f"Twin {name}", "description": "d", "body": "b", "tagList": ["twin"]}},
                      token=token)["createArticle"]
    slug = created["slug"]
    assert _rest(gql, "GET", f"/api/articles/{slug}")[1]["article"]["title"] == f"Twin {name}"
    gql.run("mutation($s: String!) { updateArticle(slug: $s, article: {body: \"new body\"}) { body } }",
            {"s": slug}, token=token)
    assert _rest(gql, "GET", f"/api/articles/{slug}")[1]["article"]["body"] == "new body"

    gql.run("mutation($s: String!) { favoriteArticle(slug: $s) { favorited } }", {"s": slug}, token=token)
    assert _rest(gql, "GET", f"/api/articles/{slug}", token)[1]["article"]["favoritesCount"] == 1
    gql.run("mutation($s: String!) { unfavoriteArticle(slug: $s) { favorited } }", {"s": slug}, token=token)
    assert _rest(gql, "GET", f"/api/articles/{slug}", token)[1]["article"]["favoritesCount"] == 0

    comment = gql.run("mutation($s: String!) { addComment(slug: $s, comment: {body: \"hello\"}) { id body } }",
                      {"s": slug}, token=token)["addComment"]
    comments = _rest(gql, "GET", f"/api/articles/{slug}/comments")[1]["comments"]
    assert [c["body"] for c in comments] == ["hello"]
    detail = gql.run("query($s: String!) { article(slug: $s) { comments { id body author { username } } } }",
                     {"s": slug})["article"]
    assert detail["comments"] == [{"id": comment["id"], "body": "hello", "author": {"username": name}}]
    assert gql.run("mutation($s: String!, $i: Int!) { deleteComment(slug: $s, id: $i) }",
                   {"s": slug, "i": comment["id"]}, token=token)["deleteComment"] is True
    assert _rest(gql, "GET", f"/api/articles/{slug}/comments")[1]["comments"] == []

    assert gql.run("mutation($s: String!) { deleteArticle(slug: $s) }", {"s": slug}, token=token)["deleteArticle"]
    assert _rest(gql, "GET", f"/api/articles/{slug}")[0] == 404


def test_another_users_article_cannot_be_deleted(gql: GraphqlClient) -> None:
    _, owner = gql.register()
    _, intruder = gql.register()
    slug = gql.run("mutation { createArticle(article: {title: \"Mine\", description: \"d\", body: \"b\"}) { slug } }",
                   token=owner)["createArticle"]["slug"]
    errors = gql.errors("mutation($s: String!) { deleteArticle(slug: $s) }", {"s": slug}, token=intruder)
    assert errors[0]["extensions"]["code"] == "PERMISSION_DENIED"
    assert _rest(gql, "GET", f"/api/articles/{slug}")[0] == 200
