"""A full reindex that loses nothing while writes go on (docs/decisions/0017).

1. Note the newest entry of the event stream.
2. Fill a new index from one consistent snapshot of the articles service; every
   document carries the outbox position the snapshot reflects as its version.
3. Apply the events published after the noted entry to the new index (versions
   make the ones the snapshot already holds no-ops).
4. Swap: the new index goes live atomically.
5. Apply the events published since step 3 again: the live indexer may have
   written some of them to the old index just before the swap.

Any event committed after the snapshot was published after step 1 (the relay
publishes after commit), so steps 3 and 5 see all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from conduit_server.search.domain.documents import latest
from conduit_server.search.domain.ports import ArticleSource, EventLog, SearchBackend

log = logging.getLogger("conduit.search.reindex")


@dataclass(frozen=True)
class Progress:
    indexed: int
    total: int
    phase: str
    done: bool = False


ProgressCallback = Callable[[Progress], Awaitable[None]]


async def _ignore(_: Progress) -> None:
    return None


class Reindexer:
    def __init__(self, backend: SearchBackend, articles: ArticleSource, events: EventLog) -> None:
        self._backend = backend
        self._articles = articles
        self._events = events

    async def run(self, progress: ProgressCallback = _ignore) -> int:
        """Rebuild the index; returns how many articles the snapshot held."""
        mark = await self._events.position()
        target = await self._backend.begin_rebuild()
        indexed = total = 0
        try:
            async for batch in self._articles.snapshot():
                total = batch.total
                if batch.documents:
                    await self._backend.apply(batch.documents, target)
                indexed += len(batch.documents)
                await progress(Progress(indexed, total, "snapshot"))
            await progress(Progress(indexed, total, "catch-up"))
            mark = await self._catch_up(target, mark)
            await progress(Progress(indexed, total, "swap"))
            await self._backend.swap(target)
        except BaseException:
            await self._backend.discard(target)
            raise
        await self._catch_up(target, mark)
        await self._backend.refresh()
        log.info("reindexed %d articles into %s", indexed, target)
        await progress(Progress(indexed, total, "done", done=True))
        return indexed

    async def _catch_up(self, target: str, mark: str) -> str:
        async for last_id, changes in self._events.changes_after(mark):
            if changes:
                await self._backend.apply(latest(changes), target)
            mark = last_id
        return mark
