"""StreamFollower on the session's real Redis: it follows from the end, reports every gap, and retries a
batch whose handler failed instead of skipping it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import redis.asyncio as aioredis

from conduit_server.runtime.tail import RawEntry, StreamFollower
from tests.support import eventually


class Recorder:
    def __init__(self, failures: int = 0) -> None:
        self.entries: list[tuple[str, bytes]] = []
        self.gaps = 0
        self.failures_left = failures

    def on_entries(self, stream: str, entries: Sequence[RawEntry]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("the service this handler calls is away")
        self.entries.extend((stream, fields[b"n"]) for _, fields in entries)

    def on_gap(self) -> None:
        self.gaps += 1


async def test_it_starts_after_the_newest_entry_and_hands_over_every_later_one(redis_url: str) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    stream = f"test:tail:{uuid.uuid4().hex}"
    await redis.xadd(stream, {"n": "before"})
    recorder = Recorder()
    tail = StreamFollower(redis, [stream], on_entries=recorder.on_entries, on_gap=recorder.on_gap, block_ms=100)
    tail.start()
    try:
        await asyncio.wait_for(tail.following.wait(), 5)
        assert recorder.gaps == 1  # the start is a gap: nothing cached before it can be trusted
        for n in range(5):
            await redis.xadd(stream, {"n": str(n)})
        await eventually(lambda: len(recorder.entries) == 5)
        assert recorder.entries == [(stream, str(n).encode()) for n in range(5)]
    finally:
        await tail.stop()
        await redis.delete(stream)
        await redis.aclose()


async def test_two_streams_in_one_reader_in_the_order_given_and_a_failed_batch_comes_again(
        redis_url: str) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    first, second = f"test:tail:{uuid.uuid4().hex}", f"test:tail:{uuid.uuid4().hex}"
    await redis.xadd(second, {"n": "b"})
    await redis.xadd(first, {"n": "a"})

    async def from_the_beginning() -> dict[str, str]:
        return {first: "0-0", second: "0-0"}

    recorder = Recorder(failures=1)
    tail = StreamFollower(redis, [first, second], on_entries=recorder.on_entries, on_gap=recorder.on_gap,
                          start=from_the_beginning, block_ms=100, retry_initial_seconds=0.01)
    tail.start()
    try:
        await eventually(lambda: len(recorder.entries) == 2)
        assert tail.failures == 1  # the first handling failed; the same entries came again
        assert recorder.entries == [(first, b"a"), (second, b"b")]
        assert recorder.gaps == 2  # the start, and the failure
    finally:
        await tail.stop()
        await redis.delete(first, second)
        await redis.aclose()


async def test_an_unreachable_redis_is_a_gap_each_time_and_never_ends_the_task() -> None:
    redis = aioredis.Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    recorder = Recorder()
    tail = StreamFollower(redis, ["test:tail:nowhere"], on_entries=recorder.on_entries, on_gap=recorder.on_gap,
                          retry_max_seconds=0.05)
    tail.start()
    try:
        await eventually(lambda: tail.failures >= 3)
        assert recorder.gaps >= 3
        assert not tail.following.is_set()
    finally:
        await tail.stop()
        await redis.aclose()
