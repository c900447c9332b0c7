"""The JSON fields each REST body may carry, computed from the contract's descriptor set."""

from __future__ import annotations

import re

import pytest

from conduit_gateway.body_fields import BodyAllowlist, body_allowlist, lua_pattern
from conduit_gateway.descriptors import Contract, template_regex
from conduit_gateway.http_filters import lua_source
from tests.gateway.support import DESCRIPTOR


@pytest.fixture(scope="module")
def allowlist() -> BodyAllowlist:
    return body_allowlist(Contract.load(DESCRIPTOR))


def _allowed(allowlist: BodyAllowlist, method: str, template: str, prefix: str = "") -> frozenset[str]:
    return allowlist.allowed(allowlist.binding(method, template).message, prefix)


def test_create_user_allows_the_new_user_fields(allowlist: BodyAllowlist) -> None:
    assert _allowed(allowlist, "POST", "/api/users") == {"user"}
    assert _allowed(allowlist, "POST", "/api/users", "user") == {"username", "email", "password"}


def test_update_current_user_allows_all_five_fields_a_frontend_sends(allowlist: BodyAllowlist) -> None:
    assert _allowed(allowlist, "PUT", "/api/user", "user") == {"email", "password", "username", "bio", "image"}


def test_create_article_allows_both_spellings_of_tag_list(allowlist: BodyAllowlist) -> None:
    assert _allowed(allowlist, "POST", "/api/articles", "article") == {
        "title", "description", "body", "tagList", "tag_list"}


def test_path_fields_of_a_star_body_are_allowed_in_it(allowlist: BodyAllowlist) -> None:
    assert _allowed(allowlist, "POST", "/api/articles/{slug}/favorite") == {"slug"}
    assert _allowed(allowlist, "POST", "/api/auth/refresh") == {"refreshToken", "refresh_token"}


def test_scalars_are_not_checked_below(allowlist: BodyAllowlist) -> None:
    with pytest.raises(KeyError):
        _allowed(allowlist, "POST", "/api/articles", "article.tagList")


def test_form_bodies_and_bodiless_bindings_are_not_listed(allowlist: BodyAllowlist) -> None:
    listed = {(b.method, b.path_template) for b in allowlist.bindings}

    assert ("POST", "/api/oauth/token") not in listed  # google.api.HttpBody
    assert ("GET", "/api/articles/{slug}") not in listed
    assert ("DELETE", "/api/articles/{slug}") not in listed


def test_only_the_given_services_are_listed() -> None:
    allowlist = body_allowlist(Contract.load(DESCRIPTOR), {"conduit.articles.v1.ArticlesService"})

    assert {b.path_template for b in allowlist.bindings} == {
        "/api/articles", "/api/articles/{slug}", "/api/articles/{slug}/favorite"}


def test_literal_templates_come_before_variables(allowlist: BodyAllowlist) -> None:
    specificity = [b.specificity for b in allowlist.bindings]

    assert specificity == sorted(specificity)


def _lua_to_regex(pattern: str) -> str:
    """Enough of Lua's pattern syntax for the generated patterns: %-escapes, classes, `?`, anchors."""
    return re.sub(r"%(.)", lambda m: re.escape(m.group(1)), pattern)


@pytest.mark.parametrize(("template", "path"), [
    ("/api/articles/{slug}/favorite", "/api/articles/how-to/favorite"),
    ("/api/articles/{slug}/favorite", "/api/articles/how-to/favorite/"),
    ("/api/articles/{slug}/favorite", "/api/articles/favorite"),
    ("/api/admin/service-accounts", "/api/admin/service-accounts"),
    ("/api/admin/service-accounts", "/api/admin/serviceXaccounts"),
    ("/api/articles", "/api/articles/"),
    ("/api/articles", "/api/articlesX"),
])
def test_lua_patterns_match_what_the_transcoder_maps(template: str, path: str) -> None:
    expected = re.fullmatch(template_regex(template), path) is not None

    assert (re.search(_lua_to_regex(lua_pattern(template)), path) is not None) is expected


def test_the_tables_are_generated_into_the_lua_source(allowlist: BodyAllowlist) -> None:
    plain, generated = lua_source(), lua_source(allowlist)

    assert "local BODY_MESSAGES = {}\n" in plain
    assert "local BODY_MESSAGES = {}\n" not in generated
    assert "local BODY_BINDINGS = {}\n" not in generated
    assert '["conduit.users.v1.UpdateUser"] = {["bio"] = true, ["email"] = true' in generated
    assert ('{method = "POST", pattern = "^/api/admin/service%-accounts/?$", '
            'message = "conduit.users.v1.CreateServiceAccountRequest"}') in generated


def test_a_lua_source_without_placeholders_is_refused(allowlist: BodyAllowlist) -> None:
    with pytest.raises(ValueError, match="BODY_MESSAGES"):
        allowlist.render_into("function envoy_on_request(handle) end\n")
