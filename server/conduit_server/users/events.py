"""What the users service publishes: UserEvents (events.proto), through the outbox of its unit of work.

It consumes no stream. Other services follow `conduit:events:users` (runtime/tail.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from conduit.users.v1 import events_pb2
from conduit_server.runtime import outbox


class EventRepository:
    """UserEvents into the outbox; each call is the last statement of its unit of work."""

    async def _append(self, session: AsyncSession, event_type: str, event: events_pb2.UserEvent) -> None:
        event_id = uuid.uuid4()
        event.event_id = str(event_id)
        event.occurred_at.GetCurrentTime()
        await outbox.append(session, event_type, event, event_id=event_id)

    async def user_created(self, session: AsyncSession, user_id: int, username: str) -> None:
        await self._append(session, "user_created", events_pb2.UserEvent(
            user_created=events_pb2.UserCreated(user_id=user_id, username=username)))

    async def user_updated(self, session: AsyncSession, user_id: int, username: str) -> None:
        await self._append(session, "user_updated", events_pb2.UserEvent(
            user_updated=events_pb2.UserUpdated(user_id=user_id, username=username)))

    async def follow_changed(self, session: AsyncSession, follower_id: int, followee_id: int,
                             following: bool) -> None:
        await self._append(session, "follow_changed", events_pb2.UserEvent(
            follow_changed=events_pb2.FollowChanged(follower_id=follower_id, followee_id=followee_id,
                                                    following=following)))

    async def roles_changed(self, session: AsyncSession, user_id: int, roles: Sequence[str]) -> None:
        await self._append(session, "roles_changed", events_pb2.UserEvent(
            roles_changed=events_pb2.RolesChanged(user_id=user_id, roles=sorted(roles))))


__all__ = ["EventRepository"]
