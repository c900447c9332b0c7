"""StreamTail on the session's real Redis: it follows from the end, and reports every gap."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from conduit_server.runtime.redis import connect
from conduit_server.runtime.tail import RawEntry, StreamTail
from tests.support import eventually


class Recorder:
    def __init__(self) -> None:
        self.entries: list[bytes] = []
        self.gaps = 0

    def on_entries(self, entries: Sequence[RawEntry]) -> None:
        self.entries.extend(fields[b"n"] for _, fields in entries)

    def on_gap(self) -> None:
        self.gaps += 1


async def test_it_starts_after_the_newest_entry_and_hands_over_every_later_one(redis_url: str) -> None:
    redis = connect(redis_url)
    stream = f"test:tail:{uuid.uuid4().hex}"
    await redis.xadd(stream, {"n": "before"})
    recorder = Recorder()
    tail = StreamTail(redis, stream, on_entries=recorder.on_entries, on_gap=recorder.on_gap, block_ms=100)
    tail.start()
    try:
        await asyncio.wait_for(tail.following.wait(), 5)
        assert recorder.gaps == 1  # the start is a gap: nothing cached before it can be trusted
        for n in range(5):
            await redis.xadd(stream, {"n": str(n)})
        await eventually(lambda: len(recorder.entries) == 5)
        assert recorder.entries == [b"0", b"1", b"2", b"3", b"4"]
    finally:
        await tail.stop()
        await redis.delete(stream)
        await redis.aclose()


async def test_an_unreachable_redis_is_a_gap_each_time_and_never_ends_the_task() -> None:
    redis = connect("redis://127.0.0.1:1/0")  # nothing listens on port 1
    recorder = Recorder()
    tail = StreamTail(redis, "test:tail:nowhere", on_entries=recorder.on_entries, on_gap=recorder.on_gap,
                      max_backoff_seconds=0.05)
    tail.start()
    try:
        await eventually(lambda: tail.failures >= 3)
        assert recorder.gaps >= 3
        assert not tail.following.is_set()
    finally:
        await tail.stop()
        await redis.aclose()
