"""What the gateway reads from the contract's descriptor set."""

from __future__ import annotations

import re

import pytest

from conduit_gateway.descriptors import Access, HttpBinding, MethodInfo, ServiceInfo, template_regex


def _method(services: list[ServiceInfo], path: str) -> MethodInfo:
    return next(m for s in services for m in s.methods if m.grpc_path == path)


def test_get_article_is_an_anonymous_idempotent_get_on_its_slug(services: list[ServiceInfo]) -> None:
    method = _method(services, "/conduit.articles.v1.ArticlesService/GetArticle")

    assert method.bindings == (HttpBinding("GET", "/api/articles/{slug}"),)
    assert method.access is Access.ANONYMOUS
    assert method.idempotent
    assert method.success_status == 200


def test_creations_answer_201_and_deletions_204(services: list[ServiceInfo]) -> None:
    assert _method(services, "/conduit.users.v1.UsersService/CreateUser").success_status == 201
    assert _method(services, "/conduit.articles.v1.ArticlesService/CreateArticle").success_status == 201
    assert _method(services, "/conduit.articles.v1.ArticlesService/DeleteArticle").success_status == 204
    assert _method(services, "/conduit.articles.v1.CommentsService/DeleteComment").success_status == 204


def test_create_article_requires_a_token_and_is_not_retried(services: list[ServiceInfo]) -> None:
    method = _method(services, "/conduit.articles.v1.ArticlesService/CreateArticle")

    assert method.access is Access.AUTHENTICATED
    assert method.bindings == (HttpBinding("POST", "/api/articles", "*"),)
    assert not method.idempotent


def test_the_directories_for_other_services_are_internal_and_the_rest_is_not(services: list[ServiceInfo]) -> None:
    internal = {s.name for s in services if s.internal}

    assert internal == {"conduit.users.v1.UserDirectoryService", "conduit.articles.v1.ArticleRecordsService"}


def test_realtime_rpcs_are_server_streams(services: list[ServiceInfo]) -> None:
    realtime = next(s for s in services if s.name == "conduit.realtime.v1.RealtimeService")

    assert realtime.methods
    assert all(m.server_streaming and not m.client_streaming for m in realtime.methods)


def test_import_articles_is_a_client_stream_without_rest_binding(services: list[ServiceInfo]) -> None:
    method = _method(services, "/conduit.articles.v1.ArticlesService/ImportArticles")

    assert method.client_streaming
    assert method.bindings == ()
    assert method.roles == ("admin",)
    assert method.scopes == ("articles.import",)


@pytest.mark.parametrize(("template", "path", "matches"), [
    ("/api/articles/{slug}", "/api/articles/how-to", True),
    ("/api/articles/{slug}", "/api/articles/how-to/", True),
    ("/api/articles/{slug}", "/api/articles/how-to/comments", False),
    ("/api/articles/{slug}", "/api/articles", False),
    ("/api/articles/{slug}/comments/{id}", "/api/articles/a/comments/12", True),
    ("/api/.well-known/jwks.json", "/api/.well-known/jwks.json", True),
    ("/api/.well-known/jwks.json", "/api/x.well-known/jwksxjson", False),
])
def test_template_regex_matches_what_the_transcoder_maps(template: str, path: str, matches: bool) -> None:
    assert (re.fullmatch(template_regex(template), path) is not None) is matches


def test_literal_segments_sort_before_variables() -> None:
    feed = HttpBinding("GET", "/api/articles/feed")
    by_slug = HttpBinding("GET", "/api/articles/{slug}")

    assert sorted([by_slug, feed], key=lambda b: b.specificity) == [feed, by_slug]
