"""Webhooks through Envoy over HTTPS, as an integrator calls them: register an endpoint with REST, write
an article with REST, and the test's receiver gets it signed the Standard Webhooks way."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.webhooks.receiver import Behaviour, running_receiver

from .conftest import RunningMesh

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def http(mesh: RunningMesh) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mesh.https, verify=ssl.create_default_context(cafile=mesh.ca), timeout=15) as client:
        yield client


def register(http: httpx.Client) -> dict[str, str]:
    name = f"hooker{uuid.uuid4().hex[:8]}"
    answer = http.post("/api/users", json={"user": {"username": name, "email": f"{name}@example.com",
                                                    "password": "correct horse battery"}})
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Token {answer.json()['user']['token']}"}


def test_an_endpoint_registered_with_rest_receives_an_article_created_with_rest(http: httpx.Client) -> None:
    auth = register(http)
    with running_receiver() as receiver:
        created = http.post("/api/webhooks/endpoints", headers=auth, json={
            "url": receiver.url("/rest"), "eventTypes": ["article.created"], "description": "e2e"})
        assert created.status_code == 201, created.text
        endpoint, secret = created.json()["endpoint"], created.json()["secret"]
        assert endpoint["eventTypes"] == ["article.created"]
        receiver.behaviours["/rest"] = Behaviour(secrets=[secret])

        article = http.post("/api/articles", headers=auth, json={"article": {
            "title": f"Hooked {uuid.uuid4().hex[:6]}", "description": "d", "body": "b", "tagList": []}})
        assert article.status_code == 201, article.text
        [delivery] = asyncio.run(receiver.wait_count("/rest", 1, seconds=30))
        assert delivery.verified_with == [0]
        assert delivery.payload["data"]["article"]["slug"] == article.json()["article"]["slug"]

        # The sender records the attempt once the receiver's answer is read, which may be just after
        # the receiver saw the request: wait (bounded) for the record.
        deadline = time.monotonic() + 30
        while True:
            listed = http.get(f"/api/webhooks/endpoints/{endpoint['id']}/attempts", headers=auth)
            assert listed.status_code == 200, listed.text
            if listed.json().get("attempts") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert [a["succeeded"] for a in listed.json()["attempts"]] == [True]
        rotated = http.post(f"/api/webhooks/endpoints/{endpoint['id']}/secret:rotate", headers=auth, json={})
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["secret"].startswith("whsec_")
        assert rotated.json()["secret"] != secret
        gone = http.delete(f"/api/webhooks/endpoints/{endpoint['id']}", headers=auth)
        assert gone.status_code == 204, gone.text


def test_registering_a_metadata_address_is_a_422_naming_the_reason(http: httpx.Client) -> None:
    answer = http.post("/api/webhooks/endpoints", headers=register(http), json={
        "url": "http://169.254.169.254/latest/meta-data/", "eventTypes": ["article.created"]})
    assert answer.status_code == 422, answer.text
    assert answer.json() == {"errors": {"url": [
        "the host is a link-local address 169.254.169.254, which is not allowed"]}}


def test_webhooks_need_a_token(http: httpx.Client) -> None:
    assert http.get("/api/webhooks/endpoints").status_code == 401


