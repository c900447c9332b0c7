"""A consumer too slow to keep up is cut off cleanly; the others are unaffected; memory stays bounded."""

from __future__ import annotations

import asyncio
import os
import tracemalloc

import grpc
import psutil

from conduit.realtime.v1 import realtime_pb2
from tests.fixtures.users import UsersServer
from tests.realtime.support import Events, Watch, config_for, created, running_realtime
from tests.support import details, eventually

EVENTS = 1500
BODY = "x" * 8192  # 1,500 events of ~8 KB: ~12 MB that an unbounded queue would hold for the slow stream
MAX_QUEUED = 256
READ_COUNT = 64


async def test_a_slow_watcher_is_cut_off_with_its_last_id_while_fast_ones_receive_everything(
        events: Events, redis_url: str, users_server: UsersServer) -> None:
    author_id, _ = await users_server.register("realtime-backpressure-author")
    config = config_for(events.stream, max_queued_per_watcher=MAX_QUEUED, read_count=READ_COUNT,
                        heartbeat_seconds=5.0)
    process = psutil.Process(os.getpid())
    async with running_realtime(redis_url, users_server, config) as realtime:
        fast = [realtime.watch_articles() for _ in range(3)]
        slow = realtime.watch_articles()
        for watch in (*fast, slow):
            await watch.joined()
        rss_before = process.memory_info().rss
        peak_queued = peak_traced = 0
        peak_rss = rss_before
        # What the realtime service itself holds (queues, serialized events), traced by allocation site.
        only_realtime = [tracemalloc.Filter(inclusive=True, filename_pattern="*/conduit_server/realtime/*")]
        tracemalloc.start()

        async def sample() -> None:
            nonlocal peak_queued, peak_rss, peak_traced
            while True:
                peak_queued = max(peak_queued, realtime.app.metrics()["queued_now"])
                peak_rss = max(peak_rss, process.memory_info().rss)
                traced = tracemalloc.take_snapshot().filter_traces(only_realtime)
                peak_traced = max(peak_traced, sum(stat.size for stat in traced.statistics("filename")))
                await asyncio.sleep(0.2)

        consumed = [0] * len(fast)

        async def consume(index: int, watch: Watch) -> list[str]:
            ids: list[str] = []
            for _ in range(EVENTS):
                ids.append((await watch.next(within=60)).event_id)
                consumed[index] += 1
            return ids

        writing = True

        async def crawl(watch: Watch) -> tuple[list[str], grpc.aio.AioRpcError]:
            received: list[str] = []
            try:
                while True:
                    event = await watch.message(within=60)
                    assert event is not None
                    if event.type != realtime_pb2.EVENT_TYPE_HEARTBEAT:
                        received.append(event.event_id)
                    if writing:
                        await asyncio.sleep(0.05)  # far slower than the writers, until they are done
            except grpc.aio.AioRpcError as error:
                return received, error

        sampler = asyncio.create_task(sample())
        consumers = [asyncio.create_task(consume(n, watch)) for n, watch in enumerate(fast)]
        crawler = asyncio.create_task(crawl(slow))
        for start in range(0, EVENTS, 100):
            await events.write(*(created(n, f"article-{n}", author_id, body=BODY)
                                 for n in range(start, start + 100)))
            # Writers at the pace of the fast watchers (which share this process and its loop with
            # the service): they stay within one burst of the writers; the crawler cannot.
            written = start + 100
            await eventually(lambda: min(consumed) >= written, seconds=60)  # noqa: B023 - awaited here
        everything = [entry_id.decode() for entry_id, _ in await events.published()]
        delivered = await asyncio.gather(*consumers)
        writing = False
        received, error = await crawler
        sampler.cancel()
        tracemalloc.stop()

        # Fast watchers: every event, in order.
        assert all(ids == everything for ids in delivered)
        # The slow one: ended with RESOURCE_EXHAUSTED, told the last id it was given, which is the
        # last one it read (nothing silently dropped before the status).
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        info = details(error)["ErrorInfo"]
        assert info.reason == "SLOW_CONSUMER"
        assert received == everything[:len(received)]
        assert info.metadata["last_event_id"] == received[-1]
        assert len(received) < EVENTS
        metrics = realtime.app.metrics()
        assert metrics["slow_consumer_disconnects"] == 1
        assert metrics["watchers"] == 3
        # Memory: no stream ever held more than its bound, and what the service holds stayed far below
        # the ~12 MB backlog an unbounded queue would have kept for the slow stream. (RSS also counts
        # this process's clients, the writer and the relay: a sanity bound only.)
        traced_mb, growth_mb = peak_traced / 2**20, (peak_rss - rss_before) / 2**20
        print(f"peak queued {peak_queued}, realtime memory {traced_mb:.1f} MB, RSS growth {growth_mb:.1f} MB, "
              f"slow consumer got {len(received)} of {EVENTS}")
        assert peak_queued <= MAX_QUEUED * 4
        assert traced_mb < 6
        assert growth_mb < 128

        # It can resume from that id and gets the rest: nothing was lost.
        resumed = realtime.watch_articles(resume_token=info.metadata["last_event_id"])
        rest = [event.event_id for event in await resumed.take(EVENTS - len(received), within=30)]
        assert received + rest == everything
