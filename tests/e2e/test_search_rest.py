"""Search through Envoy over HTTPS, as a browser calls it: fresh articles are found within 2 s, and
no query string, however hostile, gets a 5xx."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conduit.client import Conduit, PasswordCredentials

from .conftest import RunningMesh

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def http(mesh: RunningMesh) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mesh.https, verify=ssl.create_default_context(cafile=mesh.ca), timeout=15) as client:
        yield client


def register(http: httpx.Client) -> str:
    name = f"searcher{uuid.uuid4().hex[:8]}"
    answer = http.post("/api/users", json={"user": {"username": name, "email": f"{name}@example.com",
                                                    "password": "correct horse battery"}})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["user"]["token"])


def test_an_article_created_through_rest_is_searchable_within_two_seconds(http: httpx.Client) -> None:
    token = register(http)
    word = f"zeppelin{uuid.uuid4().hex[:6]}"
    created = http.post("/api/articles", headers={"Authorization": f"Token {token}"}, json={"article": {
        "title": f"Riding a {word}", "description": "Up", "body": "<script>x()</script> airships",
        "tagList": ["air"]}})
    assert created.status_code == 201, created.text
    slug = created.json()["article"]["slug"]
    deadline = time.monotonic() + 2.0
    found: list[str] = []
    while time.monotonic() < deadline and slug not in found:
        answer = http.get("/api/search/articles", params={"q": word})
        assert answer.status_code == 200, answer.text
        found = [hit["slug"] for hit in answer.json()["hits"]]
    assert slug in found, "not searchable within 2 s"
    body = answer.json()
    assert body["hitsCount"] == 1
    assert body["tagFacets"] == [{"tag": "air", "count": 1}]
    (hit,) = body["hits"]
    assert hit["article"]["slug"] == slug
    assert hit["article"]["favorited"] is False
    assert "<script>" not in hit["snippet"]


def test_a_plus_in_the_query_string_is_a_space_and_an_escaped_plus_a_plus(http: httpx.Client) -> None:
    """`?q=a+b` (an HTML form's encoding) is the query `a b`, as `?q=a%20b` is; `%2B` stays a plus."""
    token = register(http)
    first, second = f"kestrel{uuid.uuid4().hex[:6]}", f"osprey{uuid.uuid4().hex[:6]}"
    created = http.post("/api/articles", headers={"Authorization": f"Token {token}"}, json={"article": {
        "title": f"Birds: {first}", "description": "Raptors", "body": f"The {second} dives.", "tagList": []}})
    assert created.status_code == 201, created.text
    slug = created.json()["article"]["slug"]
    deadline = time.monotonic() + 10.0
    spaced: list[str] = []
    while time.monotonic() < deadline and slug not in spaced:
        spaced = [hit["slug"] for hit in http.get(f"/api/search/articles?q={first}%20{second}").json()["hits"]]
    assert slug in spaced, "not searchable within 10 s"
    plussed = http.get(f"/api/search/articles?q={first}+{second}").json()
    assert [hit["slug"] for hit in plussed["hits"]] == [slug]
    assert plussed["corrected"] is False
    literal = http.get(f"/api/search/articles?q={first}%2B{second}")  # one word with a plus in it: no match
    assert literal.status_code == 200, literal.text
    assert literal.json()["hits"] == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.one_of(st.text(max_size=300), st.text(alphabet='"-()|&!:*<>~^ orOR\x00\t', max_size=40),
                       st.binary(max_size=64).map(lambda b: b.decode("latin-1"))))
def test_no_query_string_gets_a_server_error(http: httpx.Client, query: str) -> None:
    answer = http.get("/api/search/articles", params={"q": query, "limit": 5})
    assert answer.status_code in (200, 422), f"{answer.status_code}: {answer.text[:300]}"
    if answer.status_code == 422:
        assert "errors" in answer.json()


def _grant_admin(mesh: RunningMesh, username: str) -> None:
    database_url = mesh.banner.split("PostgreSQL", 1)[1].split()[0]
    env = {**os.environ, "CONDUIT_STATE_DIR": str(mesh.state_dir), "CONDUIT_DATABASE_URL": database_url}
    done = subprocess.run([sys.executable, "-m", "conduit_server", "users", "grant-role", "--username", username,
                           "--role", "admin"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_sdk_searches_with_highlights_and_facets_and_an_admin_reindexes_with_progress(
        mesh: RunningMesh) -> None:
    target = f"localhost:{mesh.ports['GATEWAY_TLS_PORT']}"
    suffix = uuid.uuid4().hex[:8]
    email, password = f"admin-{suffix}@example.com", "correct horse battery"
    with Conduit.connect(target, ca_file=mesh.ca) as anonymous:
        anonymous.users.register(username=f"admin_{suffix}", email=email, password=password)
    _grant_admin(mesh, f"admin_{suffix}")
    word = f"kraken{suffix}"
    with Conduit.connect(target, ca_file=mesh.ca, credentials=PasswordCredentials(email, password)) as conduit:
        slug = conduit.articles.create(title=f"The {word}", description="Deep", body=f"A {word} rises.",
                                       tags=["sea"]).slug
        updates: list[str] = []
        indexed = conduit.search.reindex(lambda update: updates.append(update.phase))
        assert indexed >= 1
        assert updates[-1] == "done"

        pager = conduit.search.articles(word)
        (page,) = list(pager.pages())
        assert [hit.article.slug for hit in page.hits] == [slug]
        assert f"<mark>{word}</mark>" in page.hits[0].title_highlight.lower()
        assert [(f.tag, f.count) for f in page.tag_facets] == [("sea", 1)]
        status = conduit.search.status()
        assert status.backend == "postgresql"
        assert status.documents_count >= 1

    # The operator command: the same reindex through the search service's admin RPC, with a progress bar.
    token = httpx.post(f"{mesh.http}/api/users/login", json={"user": {"email": email, "password": password}},
                       timeout=15).json()["user"]["token"]
    done = subprocess.run([sys.executable, "-m", "conduit_server", "search", "reindex", "--token", token,
                           "--target", f"127.0.0.1:{mesh.ports['SEARCH_PORT']}"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reindexed" in done.stdout
    assert "done" in done.stderr  # the progress bar's last phase
