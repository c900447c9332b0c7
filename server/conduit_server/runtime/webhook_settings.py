"""Settings of the webhooks service (`Settings.webhooks`), in a module of their own to keep settings.py small."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, model_validator


class WebhooksSettings(BaseModel):
    """Outgoing webhooks (`CONDUIT_WEBHOOKS__<NAME>`; docs/decisions/0040-0042, 0046). Defaults suit production;
    tests shorten the schedule and allow loopback receivers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Seconds to wait before each retry of a failed delivery (the first attempt is immediate); after
    # the last one the message is dead-lettered. The default spreads 8 attempts over ~27 hours.
    retry_schedule_seconds: list[float] = Field(default_factory=lambda: [
        5.0, 300.0, 1_800.0, 7_200.0, 18_000.0, 36_000.0, 36_000.0])
    # Each wait is stretched or shrunk by up to this fraction at random, so receivers coming back
    # are not hit by every sender at once.
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    # One delivery request may take this long in all (connect, TLS, answer), then it counts as failed.
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Bytes of a receiver's answer read (and kept with the attempt); the rest is discarded unread.
    max_response_bytes: int = Field(default=4_096, ge=0, le=1_048_576)
    # Deliveries in flight at once per process; one endpoint never has more than one (its order).
    max_concurrent_deliveries: int = Field(default=32, ge=1, le=1_000)
    # How long the previous secret keeps signing after a rotation.
    secret_grace_seconds: float = Field(default=86_400.0, ge=0)
    # Plain-http endpoint URLs (off: https only).
    allow_http: bool = False
    # Networks (CIDR) endpoints may resolve into although not public (loopback, private, link-local
    # and the rest are refused otherwise), e.g. ["10.20.0.0/16"] for receivers inside the cluster.
    allowed_networks: list[str] = Field(default_factory=list)
    # How often a worker looks for due messages when nothing woke it.
    poll_seconds: float = Field(default=1.0, gt=0)
    # Endpoints one owner may register.
    max_endpoints_per_owner: int = Field(default=20, ge=1)
    # Messages claimed by one worker per query.
    claim_batch: int = Field(default=50, ge=1, le=1_000)
    # Delivered and dead-lettered messages (with their attempts) are deleted this long after they were
    # delivered or died; pending ones are kept however old. Default: 7 days.
    retention_seconds: float = Field(default=604_800.0, gt=0)
    # How often each process prunes settled messages.
    prune_every_seconds: float = Field(default=60.0, gt=0)
    # Messages deleted per transaction while pruning (short transactions; the queue never waits on them).
    prune_batch: int = Field(default=1_000, ge=1, le=100_000)

    @model_validator(mode="after")
    def _consistent(self) -> WebhooksSettings:
        if any(wait < 0 for wait in self.retry_schedule_seconds):
            raise ValueError("retry_schedule_seconds must not be negative")
        for network in self.allowed_networks:
            ipaddress.ip_network(network, strict=False)  # raises ValueError naming the bad one
        return self
