"""The REST calls both smoke tests make through Envoy: a new account publishes an article, and
every read route returns it."""

from __future__ import annotations

import secrets

import httpx


def publish_and_read(client: httpx.Client, name: str, tag: str) -> str:
    """Register `name`, publish an article tagged `tag`, read it back; return its slug."""
    answer = client.post("/api/users", json={"user": {
        "username": name, "email": f"{name}@example.org", "password": secrets.token_urlsafe(16)}})
    answer.raise_for_status()
    token = answer.json()["user"]["token"]
    answer = client.post("/api/articles", headers={"Authorization": f"Token {token}"}, json={"article": {
        "title": f"{tag} {name}", "description": "d", "body": "b", "tagList": [tag]}})
    answer.raise_for_status()
    slug: str = answer.json()["article"]["slug"]
    article = client.get(f"/api/articles/{slug}").json()["article"]
    if article["author"]["username"] != name:
        raise AssertionError(f"article {slug} has author {article['author']}")
    if tag not in client.get("/api/tags").json()["tags"]:
        raise AssertionError(f"GET /api/tags lacks {tag}")
    if client.get(f"/api/profiles/{name}").status_code != 200:
        raise AssertionError(f"GET /api/profiles/{name} failed")
    return slug
