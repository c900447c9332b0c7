"""DNS rebinding: the sender connects to the very address the target check accepted. A host that
resolves to an allowed address when checked and to loopback afterwards never reaches loopback."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from conduit_server.webhooks.domain.delivery import Dispatcher
from conduit_server.webhooks.domain.ports import Claimed, Outcome, Queued
from conduit_server.webhooks.domain.schedule import RetrySchedule
from conduit_server.webhooks.domain.sealing import Sealer
from conduit_server.webhooks.domain.signing import new_secret
from conduit_server.webhooks.domain.targets import TargetPolicy
from conduit_server.webhooks.repository.receivers import HttpSender
from tests.webhooks.receiver import Behaviour, running_receiver

# 127.0.0.2 stands for a public address (the only one the policy admits); 127.0.0.1 is the loopback
# target of the attack, refused like every loopback address.
CHECKED, REBOUND = "127.0.0.2", "127.0.0.1"


class RebindingResolver:
    """Answers CHECKED to the first look-up, REBOUND to every later one (a TTL-0 rebinding server)."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        return [CHECKED if len(self.lookups) == 1 else REBOUND]


class NoQueue:
    """`Dispatcher.attempt` sends one request and records nothing: any use of the queue is a failure."""

    async def enqueue(self, events: Sequence[Queued]) -> int:
        raise AssertionError("attempt() queued something")

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Claimed]:
        raise AssertionError("attempt() claimed something")

    async def record(self, claimed: Claimed, outcome: Outcome, retry_in_seconds: float | None) -> bool:
        raise AssertionError("attempt() recorded something")


async def test_a_host_rebinding_to_loopback_after_the_check_never_reaches_loopback() -> None:
    sealer, secret = Sealer("k" * 32), new_secret()
    resolver = RebindingResolver()
    sender = HttpSender(max_response_bytes=64, timeout_seconds=5.0)
    dispatcher = Dispatcher(
        NoQueue(), sender, TargetPolicy.of(allow_http=True, allowed_networks=[f"{CHECKED}/32"]),
        resolver, schedule=RetrySchedule((1.0,), 0.0), sealer=sealer, worker="test", max_concurrent=1,
        timeout_seconds=5.0, poll_seconds=1.0, claim_batch=1)
    with running_receiver(CHECKED) as allowed, running_receiver(REBOUND, allowed.port) as loopback:
        for receiver in (allowed, loopback):
            receiver.behaviours["/hook"] = Behaviour(secrets=[secret])
        message = Claimed("msg_1", "ep_1", "article.created", f"http://rebind.test:{allowed.port}/hook", b"{}", 0,
                          "lease", sealer.seal(secret, "ep_1"), None, None, datetime.now(UTC))
        try:
            first = await dispatcher.attempt(message)
            # One look-up, by the check; the request went to the address it accepted, named by its host.
            assert resolver.lookups == ["rebind.test"]
            assert (first.status, first.error) == (204, "")
            [delivery] = allowed.at("/hook")
            assert delivery.headers["host"] == f"rebind.test:{allowed.port}"
            # The next attempt checks again, now sees loopback and refuses without sending anything.
            second = await dispatcher.attempt(message)
            assert resolver.lookups == ["rebind.test", "rebind.test"]
            assert second.status == 0
            assert f"loopback address {REBOUND}" in second.error
            assert second.error.startswith("refused")
        finally:
            await sender.close()
        assert loopback.deliveries == []
        assert loopback.arrived == []
        assert len(allowed.deliveries) == 1
