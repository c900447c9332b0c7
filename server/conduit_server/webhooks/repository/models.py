"""Tables of the webhooks service (schema `webhooks`): endpoints, the message queue, delivery attempts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from conduit_server.runtime.db import schema_metadata

SCHEMA = "webhooks"


class Base(DeclarativeBase):
    metadata = schema_metadata()


class EndpointRow(Base):
    """A receiver registered by its owner (`user:<id>` or `service:<client id>`), with its secrets."""

    __tablename__ = "endpoints"
    __table_args__ = (Index("ix_endpoints_owner", "owner"),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    owner: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    description: Mapped[str] = mapped_column(Text, server_default="")
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MessageRow(Base):
    """One event for one endpoint; ordered per endpoint by its stream position; leased while sent."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_messages_pending", "endpoint_id", "position_ms", "position_seq",
              postgresql_where=text("state = 'pending'")),
        Index("ix_messages_endpoint_created", "endpoint_id", "created_at"),
        Index("ix_messages_delivered_at", "delivered_at", postgresql_where=text("state = 'delivered'")),
        Index("ix_messages_dead_at", "dead_at", postgresql_where=text("state = 'dead'")),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(Text, ForeignKey("endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    position_ms: Mapped[int] = mapped_column(BigInteger)
    position_seq: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dead_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AttemptRow(Base):
    """One HTTP request made for a message, kept for its owner to read."""

    __tablename__ = "attempts"
    __table_args__ = (Index("ix_attempts_endpoint_id", "endpoint_id", "id"),
                      Index("ix_attempts_message_id", "message_id"))

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    message_id: Mapped[str] = mapped_column(Text, ForeignKey("messages.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    status: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    response: Mapped[bytes] = mapped_column(LargeBinary)
