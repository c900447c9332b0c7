"""The records of webhooks and what the domain needs from storage and the network, as protocols."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from conduit_server.webhooks.domain.targets import Target

State = Literal["pending", "delivered", "dead"]


@dataclass(frozen=True)
class EndpointRecord:
    id: str
    owner: str
    url: str
    event_types: tuple[str, ...]
    description: str
    created_at: datetime
    previous_secret_expires_at: datetime | None


@dataclass(frozen=True)
class MessageRecord:
    id: str
    endpoint_id: str
    event_type: str
    state: State
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class AttemptRecord:
    message_id: str
    event_type: str
    attempt: int
    attempted_at: datetime
    status: int
    error: str
    duration_ms: int
    succeeded: bool


@dataclass(frozen=True)
class Queued:
    """One event to queue for every endpoint subscribed to its type: its place in the order is
    `position` (the stream entry id's two numbers), `event_id` makes queueing it twice harmless."""

    event_id: str
    event_type: str
    body: bytes
    position: tuple[int, int]


@dataclass(frozen=True)
class Claimed:
    """A message leased to one worker for one attempt, with what signing and sending it takes."""

    message_id: str
    endpoint_id: str
    event_type: str
    url: str
    body: bytes
    attempts: int
    lease: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Outcome:
    """What one HTTP attempt came to."""

    status: int
    error: str
    duration_ms: int
    response: bytes = b""

    @property
    def succeeded(self) -> bool:
        return not self.error and 200 <= self.status < 300


@dataclass(frozen=True)
class QueueStatus:
    endpoints: int
    pending: int
    dead: int
    oldest_pending_seconds: float


class EndpointStore(Protocol):
    async def create(self, endpoint_id: str, owner: str, url: str, event_types: Sequence[str], *,
                     description: str, secret: str, limit: int) -> EndpointRecord | None:
        """The new endpoint; None when `owner` already has `limit` endpoints."""

    async def owned(self, owner: str) -> list[EndpointRecord]: ...

    async def get(self, owner: str, endpoint_id: str) -> EndpointRecord | None: ...

    async def delete(self, owner: str, endpoint_id: str) -> bool: ...

    async def rotate(self, owner: str, endpoint_id: str, secret: str, grace_seconds: float
                     ) -> EndpointRecord | None: ...

    async def messages(self, endpoint_id: str, state: State | None, limit: int) -> list[MessageRecord]: ...

    async def attempts(self, endpoint_id: str, message_id: str, limit: int) -> list[AttemptRecord]: ...

    async def redeliver(self, endpoint_id: str, message_id: str) -> MessageRecord | None: ...

    async def status(self) -> QueueStatus: ...


class DeliveryQueue(Protocol):
    async def enqueue(self, events: Sequence[Queued]) -> int:
        """Queue each event for its subscribers (once per endpoint and event); how many messages were new."""

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Claimed]:
        """Lease due messages, at most one per endpoint and only the first pending one of it."""

    async def record(self, claimed: Claimed, outcome: Outcome, retry_in_seconds: float | None) -> bool:
        """Store the attempt and move the message on (delivered, retry in, or dead when None and failed);
        False when the lease was lost meanwhile (nothing written)."""


class PrunableQueue(Protocol):
    async def prune(self, before: datetime, batch: int) -> int:
        """Delete messages delivered or dead-lettered before `before`, with their attempts, `batch` rows
        per transaction; pending messages are never deleted. How many were."""


class Sender(Protocol):
    async def post(self, target: Target, headers: dict[str, str], body: bytes) -> Outcome: ...
