"""What the edge knows of each REST binding (methods, body shape), computed from the descriptor set."""

from __future__ import annotations

import re

import pytest

from conduit_gateway.body_fields import NO_BODY, RAW_BODY, RestBindings, lua_pattern, rest_bindings
from conduit_gateway.descriptors import Contract, template_regex
from conduit_gateway.http_filters import lua_source
from tests.gateway.support import DESCRIPTOR


@pytest.fixture(scope="module")
def bindings() -> RestBindings:
    return rest_bindings(Contract.load(DESCRIPTOR))


def _shape(bindings: RestBindings, method: str, template: str, prefix: str = "") -> dict[str, str]:
    return dict(bindings.shape(bindings.binding(method, template).body, prefix))


def test_create_user_body_has_the_new_user_fields_typed(bindings: RestBindings) -> None:
    assert _shape(bindings, "POST", "/api/users") == {"user": "conduit.users.v1.NewUser"}
    assert _shape(bindings, "POST", "/api/users", "user") == {
        "username": "string", "email": "string", "password": "string"}


def test_update_current_user_knows_all_five_fields_a_frontend_sends(bindings: RestBindings) -> None:
    assert set(_shape(bindings, "PUT", "/api/user", "user")) == {"email", "password", "username", "bio", "image"}


def test_both_spellings_of_tag_list_are_a_list_of_strings(bindings: RestBindings) -> None:
    shape = _shape(bindings, "POST", "/api/articles", "article")

    assert shape["tagList"] == shape["tag_list"] == "*string"


def test_operations_whose_fields_are_all_in_the_path_have_no_body(bindings: RestBindings) -> None:
    # The official collection posts `{"user": …}` to follow: dropped, so nothing in it is bound.
    assert bindings.binding("POST", "/api/profiles/{username}/follow").body == NO_BODY
    assert bindings.binding("POST", "/api/articles/{slug}/favorite").body == NO_BODY
    assert bindings.binding("DELETE", "/api/articles/{slug}").body == NO_BODY
    assert bindings.binding("GET", "/api/articles/{slug}").body == NO_BODY
    assert bindings.binding("POST", "/api/auth/refresh").body == "conduit.users.v1.RefreshSessionRequest"


def test_form_bodies_are_passed_raw(bindings: RestBindings) -> None:
    assert bindings.binding("POST", "/api/oauth/token").body == RAW_BODY


def test_scalars_have_no_shape_below(bindings: RestBindings) -> None:
    with pytest.raises(KeyError):
        _shape(bindings, "POST", "/api/articles", "article.tagList")


def test_methods_of_a_path_are_what_a_405_allows(bindings: RestBindings) -> None:
    assert bindings.methods("/api/user") == {"GET", "PUT"}
    assert bindings.methods("/api/profiles/{username}/follow") == {"POST", "DELETE"}


def test_only_the_given_services_are_listed() -> None:
    listed = rest_bindings(Contract.load(DESCRIPTOR), {"conduit.articles.v1.ArticlesService"})

    assert {b.path_template for b in listed.bindings} == {
        "/api/articles", "/api/articles/feed", "/api/articles/{slug}", "/api/articles/{slug}/favorite"}


def test_literal_templates_come_before_variables(bindings: RestBindings) -> None:
    specificity = [b.specificity for b in bindings.bindings]

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


def test_the_tables_are_generated_into_the_lua_source(bindings: RestBindings) -> None:
    plain, generated = lua_source(), lua_source(bindings)

    assert "local BODY_MESSAGES = {}\n" in plain
    assert "local BODY_MESSAGES = {}\n" not in generated
    assert "local BODY_BINDINGS = {}\n" not in generated
    assert '["conduit.users.v1.UpdateUser"] = {["bio"] = "string", ["email"] = "string"' in generated
    assert ('{method = "POST", pattern = "^/api/admin/service%-accounts/?$", '
            'body = "conduit.users.v1.CreateServiceAccountRequest"}') in generated
    assert '{method = "GET", pattern = "^/api/user/?$", body = ""}' in generated


def test_a_lua_source_without_placeholders_is_refused(bindings: RestBindings) -> None:
    with pytest.raises(ValueError, match="BODY_MESSAGES"):
        bindings.render_into("function envoy_on_request(handle) end\n")
