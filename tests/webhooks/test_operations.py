"""What operators see: `conduit webhooks status`, the admin RPC behind it, and the metrics."""

from __future__ import annotations

import argparse
import asyncio
import io

import grpc
import pytest
from prometheus_client import REGISTRY

from conduit.webhooks.v1 import webhooks_pb2
from conduit_server.webhooks import cli
from tests.support import eventually
from tests.webhooks.conftest import SCHEDULE, Webhooks
from tests.webhooks.receiver import Behaviour, Receiver


async def test_status_counts_pending_and_dead_messages_for_admins_only(webhooks: Webhooks,
                                                                        receiver: Receiver) -> None:
    author = await webhooks.mesh.person("opsauthor")
    created = await webhooks.register(author, receiver.url("/ops"))
    receiver.behaviours["/ops"] = Behaviour(secrets=[created.secret], fail_first=len(SCHEDULE) + 1)
    await webhooks.mesh.create(author, "Will die")
    await eventually(lambda: webhooks.app.dispatcher.counters.dead_lettered >= 1, seconds=15)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await webhooks.stub.GetDeliveryStatus(webhooks_pb2.GetDeliveryStatusRequest(), metadata=author.auth)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

    admin = await webhooks.mesh.moderator("admin")
    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(token=admin.token, target=webhooks.address, tls=False, ca_file=None)
    code = await asyncio.to_thread(cli.run, args, webhooks.app.settings, out, err)
    assert (code, err.getvalue()) == (0, "")
    lines = dict(line.rsplit(None, 1) for line in out.getvalue().splitlines())
    assert lines["endpoints"] == "1"
    assert lines["dead letters"] == "1"
    assert lines["pending messages"] == "0"
    assert lines["failed (replica)"] == str(len(SCHEDULE) + 1)

    without = await asyncio.to_thread(cli.run, argparse.Namespace(token="", target=webhooks.address, tls=False,
                                                                  ca_file=None), webhooks.app.settings, out, err)
    assert without == 2


async def test_deliveries_show_in_the_metrics(webhooks: Webhooks, receiver: Receiver) -> None:
    author = await webhooks.mesh.person("metered")
    created = await webhooks.register(author, receiver.url("/metered"))
    receiver.behaviours["/metered"] = Behaviour(secrets=[created.secret])
    before = REGISTRY.get_sample_value("conduit_webhook_attempt_seconds_count",
                                       {"service": "webhooks", "result": "delivered"}) or 0.0
    await webhooks.mesh.create(author, "Counted")
    await eventually(lambda: webhooks.app.metrics()["webhooks_delivered"] >= 1, seconds=15)
    assert webhooks.app.metrics()["webhooks_messages_queued"] >= 1
    after = REGISTRY.get_sample_value("conduit_webhook_attempt_seconds_count",
                                      {"service": "webhooks", "result": "delivered"})
    assert after == before + 1
    lag = REGISTRY.get_sample_value("conduit_webhook_delivery_lag_seconds", {"service": "webhooks"})
    assert lag is not None
    assert lag >= 0
