"""The webhooks service: endpoints over gRPC, the event consumer that queues messages, the dispatcher."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import redis.asyncio as aioredis

from conduit.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc
from conduit_server.runtime import metrics, migrations
from conduit_server.runtime.db import Database
from conduit_server.runtime.resources import Resources
from conduit_server.runtime.server import Binding
from conduit_server.runtime.settings import Settings
from conduit_server.webhooks import api
from conduit_server.webhooks.domain.delivery import Dispatcher
from conduit_server.webhooks.domain.endpoints import Endpoints
from conduit_server.webhooks.domain.ports import Claimed, Outcome
from conduit_server.webhooks.domain.retention import Retention
from conduit_server.webhooks.domain.schedule import RetrySchedule
from conduit_server.webhooks.domain.sealing import Sealer
from conduit_server.webhooks.domain.targets import Resolver, TargetPolicy
from conduit_server.webhooks.events import EventQueue
from conduit_server.webhooks.repository import models
from conduit_server.webhooks.repository.receivers import HttpSender, resolve
from conduit_server.webhooks.repository.store import WebhookStore

SCHEMA = models.SCHEMA
MIGRATIONS = Path(__file__).parent / "migrations"


class WebhooksApp:
    """Owns its database, its Redis client, the HTTP client, the event consumer and the dispatcher."""

    name = "webhooks"
    metric_counters = ("webhooks_delivered", "webhooks_failed_attempts", "webhooks_dead_lettered",
                       "webhooks_messages_queued", "webhooks_messages_pruned")

    def __init__(self, settings: Settings, database: Database, redis: aioredis.Redis, *,
                 resolver: Resolver = resolve, clock: Callable[[], float] | None = None,
                 consumer: str = "", verify_tls: bool | str = True) -> None:
        config = settings.webhooks
        self.settings = settings
        self.redis = redis
        self.store = WebhookStore(database)
        policy = TargetPolicy.of(config.allow_http, config.allowed_networks)
        self.sender = HttpSender(max_response_bytes=config.max_response_bytes,
                                 timeout_seconds=config.timeout_seconds, verify=verify_tls)
        worker = consumer or f"{socket.gethostname()}-{os.getpid()}"
        sealer = Sealer(settings.key_encryption_key.get_secret_value())
        self.dispatcher = Dispatcher(self.store, self.sender, policy, resolver,
                                     schedule=RetrySchedule(tuple(config.retry_schedule_seconds),
                                                            config.retry_jitter), sealer=sealer,
                                     worker=worker, max_concurrent=config.max_concurrent_deliveries,
                                     timeout_seconds=config.timeout_seconds, poll_seconds=config.poll_seconds,
                                     claim_batch=config.claim_batch,
                                     **({"clock": clock} if clock is not None else {}))
        self.dispatcher.counters.observers.append(self._observe)
        self.retention = Retention(self.store, retention_seconds=config.retention_seconds,
                                   every_seconds=config.prune_every_seconds, batch=config.prune_batch,
                                   **({"clock": clock} if clock is not None else {}))
        self.endpoints = Endpoints(self.store, policy, resolver, sealer, grace_seconds=config.secret_grace_seconds,
                                   max_per_owner=config.max_endpoints_per_owner)
        self.events = EventQueue(redis, self.store, articles_stream=settings.realtime.articles_stream,
                                 users_stream=settings.realtime.users_stream, on_queued=self.dispatcher.wake,
                                 consumer=worker)

    @classmethod
    def from_resources(cls, resources: Resources) -> WebhooksApp:
        return cls(resources.settings, resources.database(SCHEMA), resources.redis)

    def bindings(self) -> Sequence[Binding]:
        return [Binding(webhooks_pb2.DESCRIPTOR.services_by_name["WebhooksService"],
                        webhooks_pb2_grpc.add_WebhooksServiceServicer_to_server,
                        api.WebhooksApi(self.endpoints, self._replica_counts))]

    def _replica_counts(self) -> tuple[int, int]:
        counters = self.dispatcher.counters
        return counters.delivered, counters.failed_attempts

    def _observe(self, message: Claimed, outcome: Outcome, dead: bool) -> None:
        result = "delivered" if outcome.succeeded else "dead" if dead else "failed"
        metrics.WEBHOOK_ATTEMPT_DURATION.labels(self.name, result).observe(outcome.duration_ms / 1000)
        if outcome.succeeded:
            metrics.WEBHOOK_DELIVERY_LAG.labels(self.name).set(self.dispatcher.counters.last_lag_seconds)

    def metrics(self) -> dict[str, int]:
        """This replica's deliveries in numbers (read by runtime/metrics at scrape time)."""
        counters = self.dispatcher.counters
        return {"webhooks_delivered": counters.delivered, "webhooks_failed_attempts": counters.failed_attempts,
                "webhooks_dead_lettered": counters.dead_lettered,
                "webhooks_messages_queued": self.events.messages_queued,
                "webhooks_messages_pruned": self.retention.pruned}

    async def start(self) -> None:
        await migrations.upgrade(self.store.database, MIGRATIONS, models.Base.metadata)
        self.events.start()
        self.dispatcher.start()
        self.retention.start()

    async def close(self) -> None:
        await self.retention.stop()
        await self.dispatcher.stop()
        await self.events.stop()
        await self.sender.close()
        await self.store.close()
        await self.redis.aclose()
