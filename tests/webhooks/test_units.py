"""Webhooks rules without the network: signatures against the reference library, the retry schedule,
event bodies, and the schema against its models."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection
from standardwebhooks.webhooks import Webhook

from conduit.articles.v1 import events_pb2
from conduit_server.runtime import migrations
from conduit_server.runtime.db import Database
from conduit_server.runtime.webhook_settings import WebhooksSettings
from conduit_server.webhooks.app import MIGRATIONS
from conduit_server.webhooks.domain import signing
from conduit_server.webhooks.domain.schedule import RetrySchedule
from conduit_server.webhooks.domain.sealing import SealedSecretError, Sealer
from conduit_server.webhooks.events import ARTICLE_TYPES, queued_of
from conduit_server.webhooks.repository import models


@given(st.text(max_size=2_000), st.text(min_size=1, max_size=40).filter(lambda s: "." not in s))
def test_signatures_are_the_ones_the_reference_library_makes(body: str, message_id: str) -> None:
    secret = signing.new_secret()
    timestamp = int(datetime.now(UTC).timestamp())
    ours = signing.signature(secret, message_id, timestamp, body.encode())
    assert ours == Webhook(secret).sign(message_id, datetime.fromtimestamp(timestamp, UTC), body)


def test_a_secret_is_whsec_and_32_random_bytes() -> None:
    secrets = {signing.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32


def test_signed_headers_carry_one_signature_per_secret() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    headers = signing.headers([first, second], "msg_1", int(datetime.now(UTC).timestamp()), b'{"a":1}')
    for secret in (first, second):
        assert Webhook(secret).verify(b'{"a":1}', headers) == {"a": 1}


def test_a_sealed_secret_opens_only_with_its_key_and_for_its_endpoint() -> None:
    secret = signing.new_secret()
    sealed = Sealer("key-encryption-secret").seal(secret, "ep_1")
    assert secret not in sealed
    assert Sealer("key-encryption-secret").open(sealed, "ep_1") == secret
    with pytest.raises(SealedSecretError):
        Sealer("key-encryption-secret").open(sealed, "ep_2")
    with pytest.raises(SealedSecretError):
        Sealer("another-secret").open(sealed, "ep_1")


def test_the_schedule_backs_off_with_bounded_jitter_then_gives_up() -> None:
    schedule = RetrySchedule((5.0, 300.0, 1800.0), jitter=0.2, uniform=lambda low, high: high)
    assert schedule.max_attempts == 4
    assert [schedule.next_delay(n) for n in (1, 2, 3)] == [6.0, 360.0, 2160.0]
    assert schedule.next_delay(4) is None
    low = RetrySchedule((100.0,), jitter=0.2, uniform=lambda low, high: low)
    assert low.next_delay(1) == 80.0


def test_the_default_schedule_spans_hours_and_grows() -> None:
    waits = WebhooksSettings().retry_schedule_seconds
    assert waits == sorted(waits)
    assert sum(waits) > 24 * 3600


def test_an_article_event_becomes_a_standard_webhooks_body() -> None:
    event = events_pb2.ArticleEvent(event_id="e-1", article_created=events_pb2.ArticleCreated(
        article=events_pb2.ArticleRecord(id=7, slug="hello", title="Hello", tag_list=["a"])))
    event.occurred_at.FromDatetime(datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    queued = queued_of(b"1700000000000-3", {b"type": b"article_created", b"payload": event.SerializeToString(),
                                            b"event_id": b"e-1"}, ARTICLE_TYPES, events_pb2.ArticleEvent)
    assert queued is not None
    assert (queued.event_id, queued.event_type, queued.position) == ("e-1", "article.created", (1700000000000, 3))
    assert json.loads(queued.body) == {"type": "article.created", "timestamp": "2026-12-03T12:00:00Z",
                                       "data": {"article": {"id": "7", "slug": "hello", "title": "Hello",
                                                            "tagList": ["a"]}}}
    assert queued_of(b"1-0", {b"type": b"user_created", b"payload": b""}, ARTICLE_TYPES,
                     events_pb2.ArticleEvent) is None


async def test_the_migrations_create_exactly_the_tables_of_the_models(postgres_url: str) -> None:
    database = Database(postgres_url, models.SCHEMA)
    await migrations.upgrade(database, MIGRATIONS, models.Base.metadata)

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={
            "include_name": lambda name, kind, _: not (kind == "table" and name == "alembic_version")})
        return list(compare_metadata(context, models.Base.metadata))

    try:
        async with database.engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await database.close()
