"""Queries over HTTPS through Envoy: batching, paging, limits, errors, auth."""

from __future__ import annotations

import uuid

import pytest

from .conftest import GraphqlClient, GraphqlMesh

pytestmark = pytest.mark.e2e
ARTICLES = """query($tag: String!, $first: Int!, $after: String) {
  articles(tag: $tag, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { slug title tagList } }
  }
}"""
CREATE = """mutation($a: NewArticleInput!) { createArticle(article: $a) { slug author { username } } }"""


def _publish(gql: GraphqlClient, token: str, tag: str, title: str) -> str:
    data = gql.run(CREATE, {"a": {"title": title, "description": "d", "body": "b", "tagList": [tag]}}, token=token)
    slug: str = data["createArticle"]["slug"]
    return slug


def test_twenty_articles_with_authors_make_one_batch_users_call(gql: GraphqlClient,
                                                                 graphql_mesh: GraphqlMesh) -> None:
    tag = f"batch{uuid.uuid4().hex[:8]}"
    authors = [gql.register("author") for _ in range(20)]
    for index, (_, token) in enumerate(authors):
        _publish(gql, token, tag, f"Batched {index}")
    _, viewer = gql.register("viewer")
    request_id = f"gql-batch-{uuid.uuid4().hex}"
    query = "query($tag: String!) { articles(tag: $tag, first: 20) { nodes { slug author { username following } } } }"
    data = gql.run(query, {"tag": tag}, token=viewer, request_id=request_id)
    nodes = data["articles"]["nodes"]
    assert len(nodes) == 20
    assert {node["author"]["username"] for node in nodes} == {name for name, _ in authors}
    # Counted where it is served: the users service logs every call with the request id it carries.
    calls = graphql_mesh.log_lines(request_id, "/conduit.users.v1.UserDirectoryService/BatchGetProfiles")
    assert len(calls) == 1, calls
    assert graphql_mesh.log_lines(request_id, "/conduit.users.v1.ProfilesService/GetProfile") == []


def test_profiles_asked_together_are_one_batch_call(gql: GraphqlClient, graphql_mesh: GraphqlMesh) -> None:
    names = [gql.register("prof")[0] for _ in range(3)]
    _, viewer = gql.register("looker")
    gql.run("mutation($u: String!) { follow(username: $u) { following } }", {"u": names[0]}, token=viewer)
    request_id = f"gql-profiles-{uuid.uuid4().hex}"
    asked = " ".join(f'p{i}: profile(username: "{n}") {{ username following }}' for i, n in enumerate(names))
    query = f'query {{ {asked} nobody: profile(username: "no-such-user") {{ username }} }}'
    data = gql.run(query, token=viewer, request_id=request_id)
    assert [data[f"p{i}"]["username"] for i in range(3)] == names
    assert [data[f"p{i}"]["following"] for i in range(3)] == [True, False, False]
    assert data["nobody"] is None
    assert len(graphql_mesh.log_lines(request_id, "UserDirectoryService/BatchGetProfiles")) == 1
    assert len(graphql_mesh.log_lines(request_id, "UserDirectoryService/ResolveUsernames")) == 1


def test_articles_page_as_a_connection(gql: GraphqlClient) -> None:
    tag = f"page{uuid.uuid4().hex[:8]}"
    _, token = gql.register()
    slugs = [_publish(gql, token, tag, f"Paged {index}") for index in range(3)]
    first = gql.run(ARTICLES, {"tag": tag, "first": 2})["articles"]
    assert first["totalCount"] == 3
    assert first["pageInfo"]["hasNextPage"] is True
    rest = gql.run(ARTICLES, {"tag": tag, "first": 2, "after": first["pageInfo"]["endCursor"]})["articles"]
    assert rest["pageInfo"]["hasNextPage"] is False
    seen = [edge["node"]["slug"] for edge in first["edges"] + rest["edges"]]
    assert sorted(seen) == sorted(slugs)


def test_a_too_deep_query_is_refused_with_a_clear_error(gql: GraphqlClient) -> None:
    # The test mesh allows depth 3 (CONDUIT_GRAPHQL__MAX_DEPTH): articles > nodes > author is fine ...
    gql.run("query { articles(first: 1) { nodes { author { username } } } }")
    # ... one level more, through a fragment too, is refused before anything is called.
    for query in ("query { articles(first: 1) { edges { node { author { username } } } } }",
                  "fragment A on ArticleSummary { author { username } } "
                  "query Deep { articles(first: 1) { edges { node { ...A } } } }"):
        errors = gql.errors(query)
        assert "exceeds maximum operation depth of 3" in errors[0]["message"]


def test_an_expensive_query_is_refused_before_any_call(gql: GraphqlClient) -> None:
    fields = " ".join(f"a{i}: articles(first: 100) {{ nodes {{ slug title description }} }}" for i in range(20))
    errors = gql.errors(f"query {{ {fields} }}")
    assert errors[0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert gql.errors("query { tags }" + " " * 20_000)[0]["extensions"]["code"] == "QUERY_TOO_LARGE"


def test_errors_carry_the_grpc_code_and_field_violations(gql: GraphqlClient) -> None:
    _, token = gql.register()
    errors = gql.errors(CREATE, {"a": {"title": "", "description": "d", "body": "b"}}, token=token)
    extensions = errors[0]["extensions"]
    assert extensions["code"] == "INVALID_ARGUMENT"
    assert extensions["grpcCode"] == 3
    assert any("title" in violation["field"] for violation in extensions["fieldViolations"])
    missing = gql.errors('query { article(slug: "no-such-article-here") { slug } }')
    assert missing[0]["extensions"]["code"] == "NOT_FOUND"


def test_an_unauthenticated_mutation_is_refused(gql: GraphqlClient) -> None:
    errors = gql.errors(CREATE, {"a": {"title": "t", "description": "d", "body": "b"}})
    assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert gql.errors("query { me { username } }")[0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_bad_token_is_refused_at_the_edge(gql: GraphqlClient) -> None:
    answer = gql.post("query { tags }", token="not.a.jwt")
    assert answer.status_code == 401


SHARED = "query($tag: String!) { articles(tag: $tag, first: 5) { totalCount nodes { slug } } }"
LIST_ARTICLES = "/conduit.articles.v1.ArticlesService/ListArticles"


def test_an_anonymous_query_is_executed_once_and_shared_but_never_for_a_signed_in_caller(
        gql: GraphqlClient, graphql_mesh: GraphqlMesh) -> None:
    """Decision 0047: anonymous answers are shared for CONDUIT_GRAPHQL__RESPONSE_CACHE_SECONDS (60 in
    this mesh); a signed-in caller, a mutation and an answer with errors always go to the mesh."""
    tag = f"shared{uuid.uuid4().hex[:8]}"
    _, token = gql.register()
    _publish(gql, token, tag, "Shared 1")
    ids = [f"gql-shared-{uuid.uuid4().hex}" for _ in range(3)]
    first = gql.post(SHARED, {"tag": tag}, request_id=ids[0])
    second = gql.post(SHARED, {"tag": tag}, request_id=ids[1])
    assert (first.headers["x-conduit-cache"], second.headers["x-conduit-cache"]) == ("miss", "hit")
    assert second.json() == first.json()
    assert first.json()["data"]["articles"]["totalCount"] == 1
    assert len(graphql_mesh.log_lines(ids[0], LIST_ARTICLES)) == 1
    assert graphql_mesh.log_lines(ids[1], LIST_ARTICLES) == []
    _publish(gql, token, tag, "Shared 2")
    signed_in = gql.post(SHARED, {"tag": tag}, token=token, request_id=ids[2])
    assert "x-conduit-cache" not in signed_in.headers
    assert signed_in.json()["data"]["articles"]["totalCount"] == 2
    assert len(graphql_mesh.log_lines(ids[2], LIST_ARTICLES)) == 1
    # An anonymous reader may see the shared answer until it expires, as with REST's public max-age.
    assert gql.post(SHARED, {"tag": tag}).json()["data"]["articles"]["totalCount"] == 1
    for _ in range(2):
        refused = gql.post("query { me { username } }")
        assert refused.headers["x-conduit-cache"] == "miss"
    name = f"shared{uuid.uuid4().hex[:8]}"
    register = ("mutation($u: NewUserInput!) { register(user: $u) { username } }",
                {"u": {"username": name, "email": f"{name}@example.com", "password": "password123"}})
    assert "x-conduit-cache" not in gql.post(*register).headers
    taken = gql.post(*register).json()
    assert taken["errors"], taken


@pytest.mark.parametrize("body", ["[" * 60_000, '{"query": "{ tags }\u0000"}', "\udcff{", '{"query": ["x"]}'])
def test_hostile_anonymous_bodies_get_a_clear_4xx_or_errors_never_a_5xx(gql: GraphqlClient, body: str) -> None:
    answer = gql.http.post(gql.mesh.url, content=body.encode("utf-8", "surrogateescape"),
                           headers={"content-type": "application/json"})
    assert answer.status_code < 500, answer.text
