"""The REST calls both smoke tests make through Envoy: a new account publishes an article, every
read route returns it, and the webhooks service answers (its list, and its SSRF refusal)."""

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
    check_webhooks(client, token)
    return slug


def check_webhooks(client: httpx.Client, token: str) -> None:
    """The webhooks route reaches the service, which verifies the token and refuses an internal target."""
    auth = {"Authorization": f"Token {token}"}
    listed = client.get("/api/webhooks/endpoints", headers=auth)
    if listed.status_code != 200 or listed.json().get("endpoints", []) != []:
        raise AssertionError(f"GET /api/webhooks/endpoints answered {listed.status_code} {listed.text}")
    refused = client.post("/api/webhooks/endpoints", headers=auth, json={
        "url": "https://169.254.169.254/latest/meta-data/", "eventTypes": ["article.created"]})
    if refused.status_code != 422 or "link-local address 169.254.169.254" not in refused.text:
        raise AssertionError(f"registering the metadata address answered {refused.status_code} {refused.text}")
