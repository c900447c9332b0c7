"""HTTP caching through Envoy over HTTPS (docs/decisions/0043-http-caching.md): strong ETags,
If-None-Match -> 304 with no body, Cache-Control and Vary per route, on the real mesh."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import RunningMesh

pytestmark = pytest.mark.e2e
PUBLIC = "public, max-age=30"
PERSONAL = "private, no-cache"


def reference_etag(body: bytes) -> str:
    """What the gateway's Lua computes: FNV-1a and one-at-a-time over the exact bytes, and the length."""
    fnv, oaat = 2166136261, 0
    for byte in body:
        fnv = ((fnv ^ byte) * 16777619) & 0xFFFFFFFF
        oaat = (oaat + byte) & 0xFFFFFFFF
        oaat = (oaat + (oaat << 10)) & 0xFFFFFFFF
        oaat ^= oaat >> 6
    oaat = (oaat + (oaat << 3)) & 0xFFFFFFFF
    oaat ^= oaat >> 11
    oaat = (oaat + (oaat << 15)) & 0xFFFFFFFF
    return f'"{len(body):x}-{fnv:08x}{oaat:08x}"'


@pytest.fixture(scope="module", params=[False, True], ids=["http1", "http2"])
def http(mesh: RunningMesh, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=mesh.ca)
    with httpx.Client(base_url=mesh.https, verify=context, http2=request.param, timeout=15) as client:
        yield client


@pytest.fixture(scope="module")
def author(mesh: RunningMesh) -> Iterator[dict[str, Any]]:
    """One author and article for both protocols."""
    with httpx.Client(base_url=mesh.https, verify=ssl.create_default_context(cafile=mesh.ca), timeout=15) as http:
        yield _author(http)


def _author(http: httpx.Client) -> dict[str, Any]:
    name = f"cache{uuid.uuid4().hex[:8]}"
    created = http.post("/api/users", json={"user": {"username": name, "email": f"{name}@example.com",
                                                     "password": "secret-pw-1"}})
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    user: dict[str, Any] = created.json()["user"]
    article = http.post("/api/articles", headers=_auth(user), json={"article": {
        "title": f"Caching {name}", "description": "ETags", "body": "Ask again.", "tagList": [name]}})
    assert article.status_code == 201, article.text
    assert article.headers["cache-control"] == "no-store"
    user["slug"] = article.json()["article"]["slug"]
    return user


def _auth(user: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Token {user['token']}"}


def test_a_second_get_with_the_etag_is_a_304_without_body(http: httpx.Client, author: dict[str, Any]) -> None:
    first = http.get(f"/api/articles/{author['slug']}")
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag == reference_etag(first.content)  # strong: the exact bytes sent, no W/
    assert first.headers["cache-control"] == PUBLIC
    assert first.headers["vary"] == "Authorization"

    again = http.get(f"/api/articles/{author['slug']}", headers={"If-None-Match": etag})

    assert again.status_code == 304
    assert again.content == b""
    assert "content-type" not in again.headers
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == PUBLIC
    assert again.headers["vary"] == "Authorization"


def test_if_none_match_compares_weakly_and_lists_several_tags(http: httpx.Client, author: dict[str, Any]) -> None:
    etag = http.get("/api/tags").headers["etag"]

    assert http.get("/api/tags", headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert http.get("/api/tags", headers={"If-None-Match": "*"}).status_code == 304
    stale = http.get("/api/tags", headers={"If-None-Match": '"0-0000000000000000"'})
    assert stale.status_code == 200
    assert stale.json()["tags"]


def test_after_a_write_the_etag_changes_and_the_old_one_gets_the_new_body(
        http: httpx.Client, author: dict[str, Any]) -> None:
    path = f"/api/articles/{author['slug']}"
    old = http.get(path).headers["etag"]

    updated = http.put(path, headers=_auth(author), json={"article": {"body": f"Changed {uuid.uuid4()}"}})
    assert updated.status_code == 200
    assert updated.headers["cache-control"] == "no-store"
    fresh = http.get(path, headers={"If-None-Match": old})

    assert fresh.status_code == 200
    assert fresh.headers["etag"] != old
    assert fresh.json()["article"]["body"] == updated.json()["article"]["body"]
    assert http.get(path, headers={"If-None-Match": fresh.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("path", ["/api/tags", "/api/articles?limit=5", "/api/articles/{slug}",
                                  "/api/articles/{slug}/comments", "/api/profiles/{username}",
                                  "/api/articles/feed"])
def test_personalised_answers_are_never_public(http: httpx.Client, author: dict[str, Any], path: str) -> None:
    answer = http.get(path.format(**author), headers=_auth(author))

    assert answer.status_code == 200
    assert answer.headers["cache-control"] == PERSONAL
    assert "public" not in answer.headers["cache-control"]
    assert answer.headers["vary"] == "Authorization"
    revalidated = http.get(path.format(**author), headers={**_auth(author), "If-None-Match": answer.headers["etag"]})
    assert revalidated.status_code == 304
    assert revalidated.headers["cache-control"] == PERSONAL


@pytest.mark.parametrize("path", ["/api/tags", "/api/articles?limit=5", "/api/articles/{slug}",
                                  "/api/articles/{slug}/comments", "/api/profiles/{username}"])
def test_anonymous_public_pages_may_be_kept_by_shared_caches(http: httpx.Client, author: dict[str, Any],
                                                             path: str) -> None:
    answer = http.get(path.format(**author))

    assert answer.status_code == 200
    assert answer.headers["cache-control"] == PUBLIC
    assert answer.headers["vary"] == "Authorization"


def test_answers_carrying_tokens_are_no_store(http: httpx.Client, author: dict[str, Any]) -> None:
    login = http.post("/api/users/login", json={"user": {"email": author["email"], "password": "secret-pw-1"}})
    current = http.get("/api/user", headers=_auth(author))

    for answer in (login, current):
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-store"
        assert "etag" not in answer.headers


def test_errors_are_no_store_and_have_no_etag(http: httpx.Client) -> None:
    missing = http.get(f"/api/articles/missing-{uuid.uuid4().hex}")
    anonymous_feed = http.get("/api/articles/feed")

    for answer in (missing, anonymous_feed):
        assert answer.status_code in {401, 404}
        assert answer.headers["cache-control"] == "no-store"
        assert "etag" not in answer.headers
