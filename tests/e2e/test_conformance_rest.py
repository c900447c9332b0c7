"""What real RealWorld clients send, over HTTPS through Envoy to the real services.

Extra input is ignored, never bound; odd bytes are a 422 naming the field, never a 500; tags are
alphabetical; limits are clamped; undeclared methods are a 405; no error text carries Envoy's,
protobuf's or the contract's internal names; login tokens last a browser session and a password
change revokes them; the frontends' dev servers pass CORS; an article with more comments than
fit one message still serves its page. Needs no upstream material (runs on a fresh clone).
"""

from __future__ import annotations

import re
import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from conduit_server.articles.domain.pages import ARTICLES_PAGE, COMMENTS_PAGE
from conduit_server.runtime.server import MAX_MESSAGE_BYTES
from conduit_server.runtime.settings import Settings

from .conftest import RunningMesh

pytestmark = pytest.mark.e2e
PASSWORD = "secret-pw-1"
# Internal wording that must never reach a client: contract type names, Envoy's transcoder and
# protobuf's JSON parser.
INTERNAL_WORDING = re.compile(r"conduit\.[a-z]+\.v1|google\.|Could not|Expected|Unexpected|type \"|proto|"
                              r"INVALID_ARGUMENT|grpc|Envoy", re.IGNORECASE)


@pytest.fixture(scope="module")
def api(mesh: RunningMesh) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mesh.https, verify=ssl.create_default_context(cafile=mesh.ca), timeout=30) as client:
        yield client


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


def _register(api: httpx.Client, prefix: str) -> tuple[str, str, str]:
    """(username, email, token) of a new user."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    email = f"{name}@example.com"
    answer = api.post("/api/users", json={"user": {"username": name, "email": email, "password": PASSWORD}})
    assert answer.status_code == 201, answer.text
    return name, email, answer.json()["user"]["token"]


def _article(api: httpx.Client, token: str, **fields: Any) -> dict[str, Any]:
    body = {"title": f"Title {uuid.uuid4().hex[:8]}", "description": "d", "body": "b", **fields}
    answer = api.post("/api/articles", json={"article": body}, headers=_auth(token))
    assert answer.status_code == 201, answer.text
    article: dict[str, Any] = answer.json()["article"]
    return article


def test_follow_with_a_body_as_the_official_collection_sends_it(api: httpx.Client) -> None:
    _, email, token = _register(api, "fan")
    celeb, _, _ = _register(api, "celeb")

    answer = api.post(f"/api/profiles/{celeb}/follow", json={"user": {"email": email}}, headers=_auth(token))

    assert answer.status_code == 200, answer.text
    assert answer.json()["profile"] == {**answer.json()["profile"], "username": celeb, "following": True}


def test_unknown_query_parameters_are_ignored(api: httpx.Client) -> None:
    author, _, token = _register(api, "author")
    _article(api, token)

    plain = api.get("/api/articles", params={"author": author})
    extra = api.get("/api/articles", params={"author": author, "_": "123", "foo": "bar"})

    assert extra.status_code == 200
    assert extra.json() == plain.json()
    assert extra.json()["articlesCount"] == 1


@pytest.mark.parametrize("name", ["author", "tag", "favorited"])
def test_nul_in_a_filter_is_a_422_naming_it(api: httpx.Client, name: str) -> None:
    answer = api.get(f"/api/articles?{name}=%00")

    assert answer.status_code == 422
    assert answer.json() == {"errors": {name: ["contains a character that is not allowed"]}}


def test_nul_in_a_login_email_is_a_422_naming_it(api: httpx.Client) -> None:
    answer = api.post("/api/users/login", content=b'{"user":{"email":"a\\u0000@b.c","password":"x"}}',
                      headers={"content-type": "application/json"})

    assert answer.status_code == 422
    assert answer.json() == {"errors": {"email": ["contains a character that is not allowed"]}}


def test_tags_are_alphabetical_in_every_article_response(api: httpx.Client) -> None:
    author, _, token = _register(api, "tagger")

    created = _article(api, token, tagList=["training", "dragons"])
    fetched = api.get(f"/api/articles/{created['slug']}").json()["article"]
    listed = api.get("/api/articles", params={"author": author}).json()["articles"][0]

    assert created["tagList"] == fetched["tagList"] == listed["tagList"] == ["dragons", "training"]


def test_a_limit_above_the_maximum_gets_the_maximum(api: httpx.Client) -> None:
    author, _, token = _register(api, "many")
    for _ in range(ARTICLES_PAGE.maximum + 1):
        _article(api, token)

    answer = api.get("/api/articles", params={"author": author, "limit": 1000})

    assert answer.status_code == 200
    assert len(answer.json()["articles"]) == ARTICLES_PAGE.maximum
    assert answer.json()["articlesCount"] == ARTICLES_PAGE.maximum + 1


@pytest.mark.parametrize("params", [{"limit": -1}, {"limit": 0, "offset": -1}])
def test_a_limit_below_one_or_a_negative_offset_stays_a_422(api: httpx.Client, params: dict[str, int]) -> None:
    answer = api.get("/api/articles", params=params)

    assert answer.status_code == 422
    assert set(answer.json()["errors"]) <= {"limit", "offset"}


def test_an_undeclared_method_on_a_known_path_is_a_405_with_allow(api: httpx.Client) -> None:
    answer = api.patch("/api/user", json={"user": {"bio": "x"}})

    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, PUT"


def test_no_error_text_carries_internal_wording(api: httpx.Client) -> None:
    _, _, token = _register(api, "errs")
    slug = _article(api, token)["slug"]
    json_headers = {"content-type": "application/json"}
    answers = [
        api.get("/api/nope"),
        api.get("/api/articles", params={"limit": "ten"}),
        api.get("/api/articles", params={"limit": "99999999999999"}),
        api.get("/api/articles?author=%00"),
        api.get(f"/api/articles/{slug}/comments/abc"),
        api.post("/api/users", content=b'{"user": {"email": ', headers=json_headers),
        api.post("/api/users", content=b"\x00", headers=json_headers),
        api.post("/api/users", content=b'{"user": {"email": 12}}', headers=json_headers),
        api.post("/api/users", content=b'{"user": {"email": "\\ud800"}}', headers=json_headers),
        api.post("/api/users", content=b'{"user": {"email": "\xff"}}', headers=json_headers),
        api.post("/api/users", content=b'[' * 130 + b']' * 130, headers=json_headers),
        api.post("/api/users", json={"user": {"email": "not-an-email", "password": "", "username": ""}}),
        api.put("/api/user", json={"user": {"image": "not a url"}}, headers=_auth(token)),
        api.post(f"/api/articles/{slug}/comments", json={"comment": {"body": ""}}, headers=_auth(token)),
        api.post("/api/articles", json={"article": {"title": "t", "tagList": "x"}}, headers=_auth(token)),
        api.get("/api/user", headers=_auth("not.a.jwt")),
        api.request("PATCH", "/api/user"),
        api.delete(f"/api/articles/{slug}/comments/999999999", headers=_auth(token)),
    ]

    for answer in answers:
        assert 400 <= answer.status_code < 500, (answer.request.url, answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith("application/json"), answer.request.url
        assert not INTERNAL_WORDING.search(answer.text), (answer.request.url, answer.text)
        assert set(answer.json()) == {"errors"}


def test_a_login_token_lasts_a_browser_session_and_a_password_change_revokes_it(api: httpx.Client) -> None:
    name, email, _ = _register(api, "session")
    token = api.post("/api/users/login", json={"user": {"email": email, "password": PASSWORD}}).json()["user"]["token"]
    claims = jwt.decode(token, options={"verify_signature": False})

    assert claims["exp"] - claims["iat"] == Settings().browser_session_ttl_seconds
    assert api.get("/api/user", headers=_auth(token)).status_code == 200

    changed = api.put("/api/user", json={"user": {"password": "another-secret-2"}}, headers=_auth(token))
    assert changed.status_code == 200
    assert api.get("/api/user", headers=_auth(token)).status_code == 401
    assert api.get("/api/user", headers=_auth(changed.json()["user"]["token"])).json()["user"]["username"] == name


@pytest.mark.parametrize("origin", ["http://localhost:4173", "http://127.0.0.1:4100", "http://localhost:5173"])
def test_a_preflight_from_a_frontend_dev_server_succeeds(api: httpx.Client, origin: str) -> None:
    answer = api.options("/api/articles", headers={"origin": origin, "access-control-request-method": "POST",
                                                   "access-control-request-headers": "authorization,content-type"})

    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == origin


def test_a_refused_preflight_is_a_403_without_cors_headers(api: httpx.Client) -> None:
    answer = api.options("/api/articles", headers={"origin": "https://elsewhere.example",
                                                   "access-control-request-method": "POST"})

    assert answer.status_code == 403
    assert not [name for name in answer.headers if name.startswith("access-control-")]


def test_more_max_size_comments_than_fit_one_message_still_serve_every_reader(api: httpx.Client) -> None:
    _, _, author = _register(api, "talker")
    _, _, reader = _register(api, "reader")
    slug = _article(api, author)["slug"]
    body = "\U0001f409" * 20_000  # the longest comment, 4 UTF-8 bytes per character
    count = MAX_MESSAGE_BYTES // len(body.encode()) + 5
    for _ in range(count):
        answer = api.post(f"/api/articles/{slug}/comments", json={"comment": {"body": body}}, headers=_auth(author))
        assert answer.status_code == 200, answer.status_code  # RealWorld's status for a new comment

    for headers in ({}, _auth(reader), _auth(author)):
        page = api.get(f"/api/articles/{slug}/comments", headers=headers)
        assert page.status_code == 200, page.text[:300]
        assert len(page.json()["comments"]) == COMMENTS_PAGE.default
    assert len(api.get(f"/api/articles/{slug}/comments", params={"limit": 1000}).json()["comments"]) == \
        COMMENTS_PAGE.maximum
