"""Subscriptions over WebSocket (graphql-transport-ws) through Envoy on the TLS port: delivery and resume."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import WATCHERS_PER_CLIENT, GraphqlClient, GraphqlMesh
from .ws import Subscriber

pytestmark = pytest.mark.e2e
ACTIVITY = """subscription($slug: String!, $after: String) {
  articleActivity(slug: $slug, after: $after) { eventId type comment { id body author { username } } }
}"""
ADD = "mutation($s: String!, $b: String!) { addComment(slug: $s, comment: {body: $b}) { id } }"
# A bound on waiting for an event that must come (not a speed target: the bench measures latency).
WAIT_SECONDS = 20


async def _joined(subscriber: Subscriber) -> None:
    """Wait for the first heartbeat: the stream has joined, every later change is delivered."""
    while True:
        result = await asyncio.wait_for(subscriber.next(), WAIT_SECONDS)
        assert "errors" not in result, result
        if result["data"]["articleActivity"]["type"] == "HEARTBEAT":
            return


async def _comment_event(subscriber: Subscriber) -> dict[str, object]:
    while True:
        result = await asyncio.wait_for(subscriber.next(), WAIT_SECONDS)
        assert "errors" not in result, result
        event: dict[str, object] = result["data"]["articleActivity"]
        if event["type"] == "COMMENT_ADDED":
            return event


async def test_a_subscription_receives_a_new_comment_and_resumes_with_no_gap(
        gql: GraphqlClient, graphql_mesh: GraphqlMesh) -> None:
    name, token = gql.register("sub")
    slug = gql.run("mutation { createArticle(article: {title: \"Watched\", description: \"d\", body: \"b\"}) "
                   "{ slug } }", token=token)["createArticle"]["slug"]
    subscriber = await Subscriber.open(graphql_mesh.ws_url, graphql_mesh.mesh.ca, ACTIVITY, {"slug": slug})
    try:
        await _joined(subscriber)
        await asyncio.to_thread(gql.run, ADD, {"s": slug, "b": "first"}, token=token)
        first = await _comment_event(subscriber)
        assert first["comment"] == {"id": first["comment"]["id"], "body": "first",  # type: ignore[index]
                                    "author": {"username": name}}
    finally:
        await subscriber.close()
    # While nobody listens, two more comments; a reconnect after the last seen event gets both, in order.
    missed = [f"missed {uuid.uuid4().hex[:6]}", f"missed {uuid.uuid4().hex[:6]}"]
    for body in missed:
        await asyncio.to_thread(gql.run, ADD, {"s": slug, "b": body}, token=token)
    resumed = await Subscriber.open(graphql_mesh.ws_url, graphql_mesh.mesh.ca, ACTIVITY,
                                    {"slug": slug, "after": first["eventId"]})
    try:
        replayed = [await _comment_event(resumed), await _comment_event(resumed)]
        assert [event["comment"]["body"] for event in replayed] == missed  # type: ignore[index]
        await asyncio.to_thread(gql.run, ADD, {"s": slug, "b": "live again"}, token=token)
        assert (await _comment_event(resumed))["comment"]["body"] == "live again"  # type: ignore[index]
    finally:
        await resumed.close()


async def test_the_feed_subscription_needs_a_signed_in_caller(graphql_mesh: GraphqlMesh) -> None:
    subscriber = await Subscriber.open(graphql_mesh.ws_url, graphql_mesh.mesh.ca,
                                       "subscription { feedEvents { eventId } }")
    try:
        message = await asyncio.wait_for(subscriber.next(), WAIT_SECONDS)
        assert message["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    finally:
        await subscriber.close()


NEW_ARTICLES = "subscription { articleEvents { eventId type } }"


async def _first_result(subscriber: Subscriber) -> dict[str, Any]:
    return await asyncio.wait_for(subscriber.next(), WAIT_SECONDS)


async def test_stream_caps_count_each_browser_not_the_graphql_service(graphql_mesh: GraphqlMesh) -> None:
    """The graphql service passes Envoy's `x-forwarded-for` on: the realtime service's per-client cap counts
    the browser's address (here 127.0.0.2 and 127.0.0.3), so one busy client cannot take every stream of
    the GraphQL endpoint, and everyone else still gets theirs."""

    async def open_from(source: str) -> Subscriber:
        return await Subscriber.open(graphql_mesh.ws_url, graphql_mesh.mesh.ca, NEW_ARTICLES, source=source)

    opened: list[Subscriber] = []
    try:
        for _ in range(WATCHERS_PER_CLIENT):
            opened.append(await open_from("127.0.0.2"))
            first = await _first_result(opened[-1])
            assert (first.get("data") or {}).get("articleEvents", {}).get("type") == "HEARTBEAT", first
        opened.append(await open_from("127.0.0.2"))
        refused = await _first_result(opened[-1])
        assert refused["errors"][0]["extensions"]["code"] == "RESOURCE_EXHAUSTED", refused
        opened.append(await open_from("127.0.0.3"))
        other = await _first_result(opened[-1])
        assert (other.get("data") or {}).get("articleEvents", {}).get("type") == "HEARTBEAT", other
    finally:
        for subscriber in opened:
            await subscriber.close()


def _streams_opened(graphql_mesh: GraphqlMesh, method: str) -> float:
    """How many `method` watch streams the realtime service has been asked for (its own counter)."""
    url = f"http://127.0.0.1:{graphql_mesh.realtime_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text)
               if family.name == "conduit_app_streams_opened_by_method"
               for sample in family.samples if sample.labels.get("method", "").endswith(method))


async def _next_article_event(subscriber: Subscriber) -> dict[str, Any]:
    while True:
        result = await asyncio.wait_for(subscriber.next(), WAIT_SECONDS)
        assert "errors" not in result, result
        event: dict[str, Any] = result["data"]["articleEvents"]
        if event["type"] != "HEARTBEAT":
            return event


def _position(event_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = event_id.partition("-")
    return int(milliseconds), int(sequence or 0)


async def test_identical_subscriptions_share_one_stream_and_a_late_joiner_misses_nothing_after_joining(
        graphql_mesh: GraphqlMesh, gql: GraphqlClient) -> None:
    """Five browsers with the same subscription cost the realtime service one stream (decision 0050); each
    gets every article once. One joining later starts with a heartbeat at the shared stream's position and
    gets what follows; one resuming with `after` has a stream of its own and gets what it missed."""
    _, token = gql.register("share")
    tag = f"shared{uuid.uuid4().hex[:8]}"
    query = "subscription($tag: String, $after: String) { articleEvents(tag: $tag, after: $after) { eventId type " \
            "article { slug title } } }"
    create = "mutation($t: String!, $tag: String!) { createArticle(article: {title: $t, description: \"d\", " \
             "body: \"b\", tagList: [$tag]}) { slug } }"
    before = _streams_opened(graphql_mesh, "WatchArticles")
    opened = [await Subscriber.open(graphql_mesh.ws_url, graphql_mesh.mesh.ca, query, {"tag": tag},
                                    source=f"127.0.1.{n}") for n in range(1, 6)]
    try:
        for subscriber in opened:
            first = await asyncio.wait_for(subscriber.next(), WAIT_SECONDS)
            assert first["data"]["articleEvents"]["type"] == "HEARTBEAT", first
        assert _streams_opened(graphql_mesh, "WatchArticles") - before == 1

        one = gql.run(create, {"t": f"One {tag}", "tag": tag}, token=token)["createArticle"]["slug"]
        received = [await _next_article_event(subscriber) for subscriber in opened]
        assert {(event["type"], event["article"]["slug"]) for event in received} == {("ARTICLE_CREATED", one)}
        first_id = received[0]["eventId"]

        late = await Subscriber.open(graphql_mesh.ws_url, graphql_mesh.mesh.ca, query, {"tag": tag},
                                     source="127.0.1.6")
        opened.append(late)
        joined = (await asyncio.wait_for(late.next(), WAIT_SECONDS))["data"]["articleEvents"]
        assert joined["type"] == "HEARTBEAT"
        assert joined["article"] is None
        assert _position(joined["eventId"]) >= _position(first_id)

        resuming = await Subscriber.open(graphql_mesh.ws_url, graphql_mesh.mesh.ca, query,
                                         {"tag": tag, "after": received[0]["eventId"]}, source="127.0.1.7")
        opened.append(resuming)
        two = gql.run(create, {"t": f"Two {tag}", "tag": tag}, token=token)["createArticle"]["slug"]
        for subscriber in opened:
            event = await _next_article_event(subscriber)
            assert (event["type"], event["article"]["slug"]) == ("ARTICLE_CREATED", two)
        # The resumed one has its own stream: two streams in all.
        assert _streams_opened(graphql_mesh, "WatchArticles") - before == 2
    finally:
        for subscriber in opened:
            await subscriber.close()
