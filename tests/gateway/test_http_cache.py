"""The caching policy of each RPC, derived from the contract (conduit_gateway.http_cache)."""

from __future__ import annotations

import pytest

from conduit_gateway.descriptors import Contract, ServiceInfo
from conduit_gateway.http_cache import HttpCachePolicy, lua_source, route_policies
from tests.gateway.support import DESCRIPTOR


@pytest.fixture(scope="module")
def policies(services: list[ServiceInfo]) -> dict[str, str]:
    return route_policies(Contract.load(DESCRIPTOR), [m for s in services for m in s.public_methods])


@pytest.mark.parametrize(("path", "policy"), [
    ("/conduit.articles.v1.TagsService/ListTags", "public"),
    ("/conduit.articles.v1.ArticlesService/GetArticle", "public"),
    ("/conduit.articles.v1.ArticlesService/ListArticles", "public"),
    ("/conduit.users.v1.ProfilesService/GetProfile", "public"),
    ("/conduit.articles.v1.ArticlesService/ListFeedArticles", "private"),
    # The RealWorld user carries its token.
    ("/conduit.users.v1.UsersService/GetCurrentUser", "no-store"),
])
def test_each_get_has_the_policy_its_answer_allows(policies: dict[str, str], path: str, policy: str) -> None:
    assert policies[path] == policy


def test_writes_and_streams_have_no_cache_policy(policies: dict[str, str]) -> None:
    assert "/conduit.articles.v1.ArticlesService/CreateArticle" not in policies
    assert "/conduit.users.v1.UsersService/Login" not in policies
    assert not [path for path in policies if "/Watch" in path]


def test_public_max_age_is_generated_into_the_filter() -> None:
    assert "local PUBLIC_MAX_AGE = 90\n" in lua_source(HttpCachePolicy(public_max_age_seconds=90))
    with pytest.raises(ValueError, match="negative"):
        HttpCachePolicy(public_max_age_seconds=-1)
