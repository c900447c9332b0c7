"""Shared subscriptions (graphql/domain/sharing.py, decision 0050): one source for identical subscribers,
a late joiner starts at the feed's position and misses nothing after it, a slow one is cut off alone,
the last one out closes the source."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from conduit_server.graphql.domain.sharing import Opened, SharedSubscriptions, TooManySubscriptions


class Source:
    """Items pushed by the test; records how often it was opened and whether it was closed."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[str | BaseException] = asyncio.Queue()
        self.opened = 0
        self.closed = asyncio.Event()
        self.position: str | None = None

    async def _read(self) -> AsyncIterator[str]:
        try:
            while True:
                item = await self.items.get()
                if isinstance(item, BaseException):
                    raise item
                self.position = item  # as the resolver records each event id before yielding it
                yield f"result {item}"
        finally:
            self.closed.set()

    async def open(self) -> Opened[str]:
        self.opened += 1
        return self._read(), lambda: self.position


async def joined(position: str) -> str:
    return f"heartbeat {position}"


def fell_behind() -> str:
    return "fell behind"


async def take(results: AsyncIterator[str], count: int) -> list[str]:
    return [await asyncio.wait_for(anext(results), 5) for _ in range(count)]


async def attached(feeds: SharedSubscriptions[str], count: int) -> None:
    """Until `count` subscribers read the feed (their tasks have started and are waiting on it)."""
    async with asyncio.timeout(5):
        while feeds.attached("k") < count:  # noqa: ASYNC110 - set by the readers' own tasks
            await asyncio.sleep(0)


async def reading_one_each(feeds: SharedSubscriptions[str], source: Source, *clients: str
                           ) -> tuple[list[AsyncIterator[str]], list[asyncio.Task[list[str]]]]:
    """A subscriber per client, each reading its next result in a task of its own, all attached."""
    subscribers = [feeds.results("k", client, source.open, joined, fell_behind) for client in clients]
    tasks = [asyncio.create_task(take(results, 1)) for results in subscribers]
    await attached(feeds, len(clients))
    return subscribers, tasks


def shared(per_client: int = 100, backlog: int = 100) -> SharedSubscriptions[str]:
    return SharedSubscriptions[str](per_client=per_client, backlog=backlog)


async def test_identical_subscribers_share_one_source_and_see_the_same_results_in_order() -> None:
    source, feeds = Source(), shared()
    first = feeds.results("k", "ip:a", source.open, joined, fell_behind)
    second = feeds.results("k", "ip:b", source.open, joined, fell_behind)
    reading = [asyncio.create_task(take(first, 3)), asyncio.create_task(take(second, 3))]
    await attached(feeds, 2)  # both attach before anything is produced
    for item in ("1", "2", "3"):
        source.items.put_nowait(item)
    assert [await task for task in reading] == [["result 1", "result 2", "result 3"]] * 2
    assert source.opened == 1
    assert feeds.feeds == 1


async def test_a_late_joiner_starts_with_a_heartbeat_at_the_position_and_misses_nothing_after_it() -> None:
    source, feeds = Source(), shared()
    early = feeds.results("k", "ip:a", source.open, joined, fell_behind)
    reading = asyncio.create_task(take(early, 2))
    await attached(feeds, 1)
    source.items.put_nowait("1")
    source.items.put_nowait("2")
    assert await reading == ["result 1", "result 2"]
    late = feeds.results("k", "ip:b", source.open, joined, fell_behind)
    assert await take(late, 1) == ["heartbeat 2"]
    source.items.put_nowait("3")
    assert await take(late, 1) == ["result 3"]
    assert await take(early, 1) == ["result 3"]
    assert source.opened == 1


async def test_a_slow_subscriber_is_cut_off_alone_and_the_others_go_on() -> None:
    source, feeds = Source(), shared(backlog=2)
    (slow, fast), reading = await reading_one_each(feeds, source, "ip:a", "ip:b")
    source.items.put_nowait("1")
    assert [await task for task in reading] == [["result 1"]] * 2
    for item in ("2", "3", "4", "5"):  # the fast one reads each; the slow one none: its backlog passes 2
        source.items.put_nowait(item)
        assert await take(fast, 1) == [f"result {item}"]
    assert await take(slow, 3) == ["result 2", "result 3", "fell behind"]
    with pytest.raises(StopAsyncIteration):
        await anext(slow)
    source.items.put_nowait("6")
    assert await take(fast, 1) == ["result 6"]


async def test_the_last_subscriber_to_leave_closes_the_source_and_a_new_one_opens_another() -> None:
    source, feeds = Source(), shared()
    (first, second), reading = await reading_one_each(feeds, source, "ip:a", "ip:a")
    source.items.put_nowait("1")
    await asyncio.gather(*reading)
    await first.aclose()  # type: ignore[attr-defined]
    assert not source.closed.is_set()
    await second.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(source.closed.wait(), 5)
    assert feeds.feeds == 0
    assert feeds.clients == {}
    third = feeds.results("k", "ip:a", source.open, joined, fell_behind)
    reading_third = asyncio.create_task(take(third, 1))
    await attached(feeds, 1)
    source.items.put_nowait("2")
    assert await reading_third == ["result 2"]
    assert source.opened == 2


async def test_a_failing_source_fails_every_subscriber_and_is_forgotten() -> None:
    source, feeds = Source(), shared()
    _, failing = await reading_one_each(feeds, source, "ip:a", "ip:b")
    source.items.put_nowait(ConnectionError("realtime went away"))
    for task in failing:
        with pytest.raises(ConnectionError, match="realtime went away"):
            await task
    assert feeds.feeds == 0


async def test_one_client_holds_at_most_its_share_of_subscriptions() -> None:
    source, feeds = Source(), shared(per_client=2)
    held = [feeds.results("k", "ip:a", source.open, joined, fell_behind) for _ in range(2)]
    with pytest.raises(TooManySubscriptions):
        feeds.results("k", "ip:a", source.open, joined, fell_behind)
    other = feeds.results("k", "ip:b", source.open, joined, fell_behind)
    reading = [asyncio.create_task(take(results, 1)) for results in (*held, other)]
    await attached(feeds, 3)
    source.items.put_nowait("1")
    assert [await task for task in reading] == [["result 1"]] * 3
    await held[0].aclose()  # type: ignore[attr-defined]
    feeds.results("k", "ip:a", source.open, joined, fell_behind)  # a freed place is taken again
