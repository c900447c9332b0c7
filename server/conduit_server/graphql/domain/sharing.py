"""Identical live subscriptions share one upstream stream and one execution (decision 0050).

A feed reads one source of results (one realtime watch stream, executed once per event) and offers
every result, in order, to each subscriber attached to it. Subscribers are identical by construction
(the caller keys feeds by document, variables and credentials), so each one gets exactly what its own
stream would have given it, bar one thing: a subscriber that attaches to a feed already under way has
missed what came before. It therefore starts with a heartbeat made for it at the feed's position (the
event id of the last result offered), from which it receives every later result: the same promise a
stream's first heartbeat makes. The position only moves while the feed pulls its source, and attaching
reads it between pulls, so no result is both before the heartbeat and delivered after it.

A subscriber whose backlog passes `backlog` (a client reading slower than events arrive) gets one
"fell behind" result and ends; it resumes with its last event id, as after any lost stream. The last
subscriber to leave closes the feed's source, which ends the upstream call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")

# A source of results, and a function that tells the event id of the last result it produced.
Opened = tuple[AsyncIterator[R], Callable[[], str | None]]


@dataclass(frozen=True)
class _End:
    error: BaseException | None = None


_FELL_BEHIND = object()


class TooManySubscriptions(Exception):
    """One client (a user, else an address) holds the most shared subscriptions it may."""


class _Subscriber:
    def __init__(self, backlog: int) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self._backlog = backlog
        self._overflowed = False

    def offer(self, item: object) -> None:
        if self._overflowed:
            return
        if self.queue.qsize() >= self._backlog:
            self._overflowed = True
            item = _FELL_BEHIND
        self.queue.put_nowait(item)

    def end(self, error: BaseException | None) -> None:
        self.queue.put_nowait(_End(error))  # past the backlog too: it must be seen


class Feed(Generic[R]):
    """One source, pulled by one task, offered to every attached subscriber in the same order."""

    def __init__(self, open_source: Callable[[], Awaitable[Opened[R]]], on_end: Callable[[], None],
                 backlog: int) -> None:
        self.subscribers: set[_Subscriber] = set()
        # The event id of the last result offered; None until the source has produced one.
        self.position: str | None = None
        self.ended = False
        self._on_end = on_end
        self._backlog = backlog
        self._task = asyncio.create_task(self._pump(open_source), name="graphql-shared-feed")

    async def _pump(self, open_source: Callable[[], Awaitable[Opened[R]]]) -> None:
        error: BaseException | None = None
        source: AsyncIterator[R] | None = None
        try:
            source, position_of = await open_source()
            async for item in source:
                self.position = position_of()
                for subscriber in self.subscribers:
                    subscriber.offer(item)
        except Exception as failure:  # noqa: BLE001 - handed to every subscriber, raised there as its own
            error = failure
        finally:
            self._finish(error)
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def _finish(self, error: BaseException | None) -> None:
        if not self.ended:
            self.ended = True
            self._on_end()
        for subscriber in self.subscribers:
            subscriber.end(error)

    def close(self) -> None:
        """No one is left: stop pulling (closing the source ends the upstream call)."""
        self._finish(None)
        self._task.cancel()

    async def results(self, joined: Callable[[str], Awaitable[R]], fell_behind: Callable[[], R]) -> AsyncIterator[R]:
        """This subscriber's results: a heartbeat at the feed's position when it joins one under way, then
        every result offered after that."""
        subscriber = _Subscriber(self._backlog)
        position = self.position
        self.subscribers.add(subscriber)
        try:
            if position is not None:
                yield await joined(position)
            while True:
                item = await subscriber.queue.get()
                if item is _FELL_BEHIND:
                    yield fell_behind()
                    return
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                yield item  # type: ignore[misc]  # anything else is a result of the source
        finally:
            self.subscribers.discard(subscriber)
            if not self.subscribers and not self.ended:
                self.close()


class SharedSubscriptions(Generic[R]):
    """Feeds by key; at most `per_client` shared subscriptions per client at once."""

    def __init__(self, *, per_client: int, backlog: int) -> None:
        self._feeds: dict[Hashable, Feed[R]] = {}
        self._per_client = per_client
        self._backlog = backlog
        self.clients: Counter[str] = Counter()

    @property
    def feeds(self) -> int:
        return len(self._feeds)

    def attached(self, key: Hashable) -> int:
        """Subscribers reading the feed of `key` now (0 when there is none)."""
        feed = self._feeds.get(key)
        return len(feed.subscribers) if feed is not None else 0

    def results(self, key: Hashable, client: str, open_source: Callable[[], Awaitable[Opened[R]]],
                joined: Callable[[str], Awaitable[R]], fell_behind: Callable[[], R]) -> AsyncIterator[R]:
        """The results of the feed for `key` (opened with `open_source` when there is none). Raises
        TooManySubscriptions when `client` already holds `per_client` of them."""
        if self.clients[client] >= self._per_client:
            raise TooManySubscriptions(f"at most {self._per_client} live subscriptions per client")
        feed = self._feeds.get(key)
        if feed is None:
            feed = Feed(open_source, lambda: self._forget(key, feed), self._backlog)
            self._feeds[key] = feed
        self.clients[client] += 1
        return self._counted(client, feed.results(joined, fell_behind))

    async def _counted(self, client: str, results: AsyncIterator[R]) -> AsyncIterator[R]:
        try:
            async for result in results:
                yield result
        finally:
            aclose = getattr(results, "aclose", None)
            if aclose is not None:
                await aclose()
            self.clients[client] -= 1
            if self.clients[client] <= 0:
                del self.clients[client]

    def _forget(self, key: Hashable, feed: Feed[R] | None) -> None:
        if self._feeds.get(key) is feed:
            del self._feeds[key]


__all__ = ["Feed", "Opened", "SharedSubscriptions", "TooManySubscriptions"]
