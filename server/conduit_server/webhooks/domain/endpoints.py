"""Endpoints of one owner: registration (URL and event types checked), secrets, messages, redelivery."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from conduit_server.runtime.errors import FieldViolation, InvalidArgument, NotFound, ResourceExhausted
from conduit_server.runtime.tokens import Principal
from conduit_server.webhooks.domain import signing
from conduit_server.webhooks.domain.ports import (
    AttemptRecord,
    EndpointRecord,
    EndpointStore,
    MessageRecord,
    QueueStatus,
    State,
)
from conduit_server.webhooks.domain.sealing import Sealer
from conduit_server.webhooks.domain.targets import Resolver, TargetPolicy, TargetRefused

# The event types an endpoint can subscribe to (events.py maps the outbox types onto them).
EVENT_TYPES = ("article.created", "article.updated", "article.deleted", "comment.created", "comment.deleted",
               "favorite.changed", "follow.changed")
DEFAULT_PAGE = 20


def owner_of(principal: Principal) -> str:
    """Endpoints belong to a user or to a service account."""
    if principal.is_service:
        return f"service:{principal.subject}"
    return f"user:{principal.user_id}"


@dataclass(frozen=True)
class Created:
    endpoint: EndpointRecord
    secret: str


class Endpoints:
    def __init__(self, store: EndpointStore, policy: TargetPolicy, resolve: Resolver, sealer: Sealer, *,
                 grace_seconds: float, max_per_owner: int) -> None:
        self._store = store
        self._sealer = sealer
        self._policy = policy
        self._resolve = resolve
        self._grace_seconds = grace_seconds
        self._max_per_owner = max_per_owner

    async def create(self, owner: str, url: str, event_types: Sequence[str], description: str) -> Created:
        unknown = sorted(set(event_types) - set(EVENT_TYPES))
        if unknown:
            raise InvalidArgument([FieldViolation("event_types", f"unknown event type {name!r}; known: "
                                                  f"{', '.join(EVENT_TYPES)}") for name in unknown])
        try:
            target = await self._policy.check(url, self._resolve)
        except TargetRefused as refused:
            raise InvalidArgument([FieldViolation("url", str(refused))], reason="WEBHOOK_TARGET_REFUSED") from None
        secret, endpoint_id = signing.new_secret(), f"ep_{secrets.token_hex(12)}"
        endpoint = await self._store.create(endpoint_id, owner, target.url, sorted(set(event_types)),
                                            description=description, secret=self._sealer.seal(secret, endpoint_id),
                                            limit=self._max_per_owner)
        if endpoint is None:
            raise ResourceExhausted(f"at most {self._max_per_owner} endpoints per owner",
                                    reason="WEBHOOK_ENDPOINT_LIMIT")
        return Created(endpoint, secret)

    async def owned(self, owner: str) -> list[EndpointRecord]:
        return await self._store.owned(owner)

    async def get(self, owner: str, endpoint_id: str) -> EndpointRecord:
        endpoint = await self._store.get(owner, endpoint_id)
        if endpoint is None:  # another owner's endpoint is as absent as a missing one
            raise NotFound("endpoint not found", reason="WEBHOOK_ENDPOINT_NOT_FOUND")
        return endpoint

    async def delete(self, owner: str, endpoint_id: str) -> None:
        if not await self._store.delete(owner, endpoint_id):
            raise NotFound("endpoint not found", reason="WEBHOOK_ENDPOINT_NOT_FOUND")

    async def rotate(self, owner: str, endpoint_id: str) -> Created:
        secret = signing.new_secret()
        endpoint = await self._store.rotate(owner, endpoint_id, self._sealer.seal(secret, endpoint_id),
                                            self._grace_seconds)
        if endpoint is None:
            raise NotFound("endpoint not found", reason="WEBHOOK_ENDPOINT_NOT_FOUND")
        return Created(endpoint, secret)

    async def messages(self, owner: str, endpoint_id: str, state: State | None, limit: int) -> list[MessageRecord]:
        await self.get(owner, endpoint_id)
        return await self._store.messages(endpoint_id, state, limit or DEFAULT_PAGE)

    async def attempts(self, owner: str, endpoint_id: str, message_id: str, limit: int) -> list[AttemptRecord]:
        await self.get(owner, endpoint_id)
        return await self._store.attempts(endpoint_id, message_id, limit or DEFAULT_PAGE)

    async def redeliver(self, owner: str, endpoint_id: str, message_id: str) -> MessageRecord:
        await self.get(owner, endpoint_id)
        message = await self._store.redeliver(endpoint_id, message_id)
        if message is None:
            raise NotFound("message not found", reason="WEBHOOK_MESSAGE_NOT_FOUND")
        return message

    async def status(self) -> QueueStatus:
        return await self._store.status()
