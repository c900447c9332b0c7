"""The realtime service announces its heartbeat interval; the SDK's watches size their silence gap by it."""

from __future__ import annotations

import pytest

from conduit.client import AsyncConduit
from conduit.realtime.v1 import realtime_pb2
from conduit_server.realtime.api import HEARTBEAT_INTERVAL_KEY
from tests.realtime.support import Realtime


async def test_a_watch_announces_the_heartbeat_interval_and_the_sdk_gap_follows_it(realtime: Realtime) -> None:
    call = realtime.stub.WatchArticles(realtime_pb2.WatchArticlesRequest())
    assert (HEARTBEAT_INTERVAL_KEY, "500") in tuple(await call.initial_metadata())  # config_for: 0.5 s
    call.cancel()
    async with AsyncConduit.from_channel(realtime.channel) as conduit:
        watch = conduit.articles.watch_all(include_heartbeats=True)
        beat = await anext(watch)  # nothing happens: the first message is a heartbeat
        assert beat.type == realtime_pb2.EVENT_TYPE_HEARTBEAT
        assert watch.heartbeat_gap == pytest.approx(1.5)  # 3 announced intervals, not the 45 s default
        watch.close()
