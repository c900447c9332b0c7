"""Deliveries end to end in-process: real articles/users events, the real queue in PostgreSQL, a real
HTTP receiver verifying every request with the `standardwebhooks` library."""

from __future__ import annotations

import threading

import grpc
import pytest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from conduit.webhooks.v1 import webhooks_pb2
from tests.articles.conftest import Person
from tests.support import eventually
from tests.webhooks.conftest import SCHEDULE, Webhooks
from tests.webhooks.receiver import Behaviour, Receiver

HOURS = 3600.0


async def states(webhooks: Webhooks, owner: Person, endpoint_id: str) -> dict[str, int]:
    messages = await webhooks.messages(owner, endpoint_id)
    return {message.id: message.state for message in messages}


async def test_every_delivery_is_signed_the_standard_webhooks_way(webhooks: Webhooks, receiver: Receiver) -> None:
    author = await webhooks.mesh.person("hooked")
    created = await webhooks.register(author, receiver.url("/a"))
    assert created.secret.startswith("whsec_")
    assert created.endpoint.id.startswith("ep_")
    receiver.behaviours["/a"] = Behaviour(secrets=[created.secret])

    article = await webhooks.mesh.create(author, "Signed and sealed")
    [delivery] = await receiver.wait_count("/a", 1)

    assert delivery.verified_with == [0]
    assert delivery.status == 204
    assert delivery.headers["webhook-id"].startswith("msg_")
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.payload["type"] == "article.created"
    assert delivery.payload["data"]["article"]["slug"] == article.slug
    await eventually(lambda: webhooks.app.dispatcher.counters.delivered >= 1)
    [attempt] = await webhooks.attempts(author, created.endpoint.id)
    assert attempt.succeeded
    assert attempt.response_status == 204
    assert attempt.attempt_number == 1
    assert attempt.message_id == delivery.headers["webhook-id"]
    async with webhooks.app.store.database.read() as session:
        stored = (await session.execute(text("SELECT secret FROM endpoints WHERE id = :id"),
                                        {"id": created.endpoint.id})).scalar_one()
    assert created.secret.removeprefix("whsec_") not in stored  # sealed at rest
    # The secret is shown once: never in a read.
    got = await webhooks.stub.GetEndpoint(webhooks_pb2.GetEndpointRequest(endpoint_id=created.endpoint.id),
                                          metadata=author.auth)
    assert created.secret not in str(got)


async def test_a_receiver_failing_three_times_gets_the_event_exactly_once_more_in_order(
        webhooks: Webhooks, receiver: Receiver) -> None:
    author = await webhooks.mesh.person("flaky")
    created = await webhooks.register(author, receiver.url("/flaky"))
    receiver.behaviours["/flaky"] = Behaviour(secrets=[created.secret], fail_first=3)

    first = await webhooks.mesh.create(author, "First of two")
    second = await webhooks.mesh.create(author, "Second of two")
    deliveries = await receiver.wait_count("/flaky", 5)
    endpoint = created.endpoint.id
    await eventually(lambda: webhooks.app.dispatcher.counters.delivered >= 2)

    slugs = [d.payload["data"]["article"]["slug"] for d in receiver.at("/flaky")]
    assert slugs == [first.slug] * 4 + [second.slug]  # the failing one held the second back
    assert [d.status for d in deliveries] == [500, 500, 500, 204, 204]
    assert len({d.headers["webhook-id"] for d in deliveries[:4]}) == 1  # one message, retried
    assert all(d.verified_with == [0] for d in deliveries)
    attempts = await webhooks.attempts(author, endpoint)
    assert [(a.attempt_number, a.succeeded) for a in reversed(attempts)] == [
        (1, False), (2, False), (3, False), (4, True), (1, True)]
    assert set((await states(webhooks, author, endpoint)).values()) == {webhooks_pb2.MESSAGE_STATE_DELIVERED}


async def test_after_the_last_attempt_a_message_is_dead_lettered_and_redelivered_by_rpc(
        webhooks: Webhooks, receiver: Receiver) -> None:
    author = await webhooks.mesh.person("deadletter")
    failing = await webhooks.register(author, receiver.url("/down"))
    healthy = await webhooks.register(author, receiver.url("/up"))
    attempts_per_message = len(SCHEDULE) + 1
    receiver.behaviours["/down"] = Behaviour(secrets=[failing.secret], fail_first=attempts_per_message)
    receiver.behaviours["/up"] = Behaviour(secrets=[healthy.secret])

    doomed = await webhooks.mesh.create(author, "Doomed at first")
    later = await webhooks.mesh.create(author, "Comes later")
    await receiver.wait_count("/up", 2)
    down = await receiver.wait_count("/down", attempts_per_message + 1)
    slugs = [d.payload["data"]["article"]["slug"] for d in down]
    assert slugs == [doomed.slug] * attempts_per_message + [later.slug]
    endpoint = failing.endpoint.id
    messages = {m.event_type + ":" + m.id: m for m in await webhooks.messages(author, endpoint)}
    doomed_id = down[0].headers["webhook-id"]
    await eventually(lambda: webhooks.app.dispatcher.counters.dead_lettered >= 1)
    by_id = {m.id: m for m in await webhooks.messages(author, endpoint)}
    assert by_id[doomed_id].state == webhooks_pb2.MESSAGE_STATE_DEAD, messages
    assert by_id[doomed_id].attempts_count == attempts_per_message
    failed = await webhooks.attempts(author, endpoint, doomed_id)
    assert [a.error for a in failed] == ["HTTP 500"] * attempts_per_message

    redelivered = await webhooks.stub.RedeliverMessage(webhooks_pb2.RedeliverMessageRequest(
        endpoint_id=endpoint, message_id=doomed_id), metadata=author.auth)
    assert redelivered.message.state == webhooks_pb2.MESSAGE_STATE_PENDING
    again = await receiver.wait_count("/down", attempts_per_message + 2)
    assert again[-1].headers["webhook-id"] == doomed_id
    assert again[-1].status == 204
    await eventually(lambda: webhooks.app.dispatcher.counters.delivered >= 4)
    assert (await states(webhooks, author, endpoint))[doomed_id] == webhooks_pb2.MESSAGE_STATE_DELIVERED
    assert len(receiver.at("/up")) == 2


async def test_a_slow_receiver_does_not_delay_another_endpoint(webhooks: Webhooks, receiver: Receiver) -> None:
    author = await webhooks.mesh.person("slowpoke")
    slow = await webhooks.register(author, receiver.url("/slow"))
    fast = await webhooks.register(author, receiver.url("/fast"))
    held = threading.Event()
    receiver.behaviours["/slow"] = Behaviour(secrets=[slow.secret], hold=held)
    receiver.behaviours["/fast"] = Behaviour(secrets=[fast.secret])

    await webhooks.mesh.create(author, "Everyone gets this")
    await receiver.wait_for(lambda: "/slow" in receiver.arrived)
    [delivery] = await receiver.wait_count("/fast", 1)
    assert not held.is_set()
    assert receiver.at("/slow") == []  # the slow one is still inside its request
    assert delivery.verified_with == [0]
    held.set()
    await receiver.wait_count("/slow", 1)


async def test_a_redirect_is_not_followed(webhooks: Webhooks, receiver: Receiver) -> None:
    author = await webhooks.mesh.person("redirected")
    created = await webhooks.register(author, receiver.url("/moved"))
    receiver.behaviours["/moved"] = Behaviour(secrets=[created.secret], redirect_to=receiver.url("/elsewhere"))
    receiver.behaviours["/elsewhere"] = Behaviour(secrets=[created.secret])

    await webhooks.mesh.create(author, "Goes nowhere else")
    await receiver.wait_count("/moved", 1)
    await eventually(lambda: webhooks.app.dispatcher.counters.failed_attempts >= 1)
    [attempt, *_] = await webhooks.attempts(author, created.endpoint.id)
    assert attempt.response_status == 307
    assert not attempt.succeeded
    assert attempt.error == f"redirect to {receiver.url('/elsewhere')} not followed"
    assert receiver.at("/elsewhere") == []


async def test_a_rotated_secret_signs_beside_the_new_one_until_the_grace_period_ends(
        webhooks: Webhooks, receiver: Receiver) -> None:
    author = await webhooks.mesh.person("rotator")
    created = await webhooks.register(author, receiver.url("/rotating"))
    rotated = await webhooks.stub.RotateEndpointSecret(webhooks_pb2.RotateEndpointSecretRequest(
        endpoint_id=created.endpoint.id), metadata=author.auth)
    assert rotated.secret != created.secret
    assert rotated.endpoint.HasField("previous_secret_expires_at")
    receiver.behaviours["/rotating"] = Behaviour(secrets=[rotated.secret, created.secret])

    await webhooks.mesh.create(author, "During the grace period")
    [during] = await receiver.wait_count("/rotating", 1)
    assert during.verified_with == [0, 1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2

    webhooks.clock.offset = 2 * HOURS  # past the grace period (1 h in these tests)
    await webhooks.mesh.create(author, "After the grace period")
    [_, after] = await receiver.wait_count("/rotating", 2)
    assert after.verified_with == [0]
    with pytest.raises(WebhookVerificationError):
        Webhook(created.secret).verify(after.body, after.headers)


async def test_endpoints_belong_to_their_owner(webhooks: Webhooks, receiver: Receiver) -> None:
    owner = await webhooks.mesh.person("owner")
    stranger = await webhooks.mesh.person("stranger")
    created = await webhooks.register(owner, receiver.url("/mine"), ["article.created", "follow.changed"])
    for call in (webhooks.stub.GetEndpoint(webhooks_pb2.GetEndpointRequest(endpoint_id=created.endpoint.id),
                                           metadata=stranger.auth),
                 webhooks.stub.DeleteEndpoint(webhooks_pb2.DeleteEndpointRequest(endpoint_id=created.endpoint.id),
                                              metadata=stranger.auth)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await webhooks.stub.ListEndpoints(webhooks_pb2.ListEndpointsRequest(), metadata=stranger.auth)
    assert list(listed.endpoints) == []
    mine = await webhooks.stub.ListEndpoints(webhooks_pb2.ListEndpointsRequest(), metadata=owner.auth)
    assert [e.id for e in mine.endpoints] == [created.endpoint.id]
    assert list(mine.endpoints[0].event_types) == ["article.created", "follow.changed"]
    await webhooks.stub.DeleteEndpoint(webhooks_pb2.DeleteEndpointRequest(endpoint_id=created.endpoint.id),
                                       metadata=owner.auth)
    assert list((await webhooks.stub.ListEndpoints(webhooks_pb2.ListEndpointsRequest(),
                                                   metadata=owner.auth)).endpoints) == []


async def test_follow_events_reach_endpoints_subscribed_to_them(webhooks: Webhooks, receiver: Receiver) -> None:
    follower = await webhooks.mesh.person("follower")
    followee = await webhooks.mesh.person("followee")
    created = await webhooks.register(follower, receiver.url("/follows"), ["follow.changed"])
    receiver.behaviours["/follows"] = Behaviour(secrets=[created.secret])
    await webhooks.mesh.follow(follower, followee)

    def mine() -> bool:
        return any(d.payload["data"].get("followerId") == str(follower.user_id) for d in receiver.at("/follows"))

    await receiver.wait_for(mine)
    delivery = next(d for d in receiver.at("/follows") if d.payload["data"].get("followerId") == str(follower.user_id))
    assert delivery.payload["type"] == "follow.changed"
    assert delivery.verified_with == [0]
    assert delivery.payload["data"]["followeeId"] == str(followee.user_id)
    assert delivery.payload["data"]["following"]


async def test_a_receiver_that_never_answers_fails_the_attempt_at_the_deadline(webhooks: Webhooks,
                                                                               receiver: Receiver) -> None:
    author = await webhooks.mesh.person("silent")
    created = await webhooks.register(author, receiver.url("/silent"))
    receiver.behaviours["/silent"] = Behaviour(secrets=[created.secret], hold=threading.Event())  # never set here

    await webhooks.mesh.create(author, "Into the void")
    await eventually(lambda: webhooks.app.dispatcher.counters.failed_attempts >= 1, seconds=15)
    [attempt, *_] = await webhooks.attempts(author, created.endpoint.id)
    assert attempt.error == "no answer within 2s"
    assert attempt.response_status == 0
    assert attempt.duration_ms >= 2000
