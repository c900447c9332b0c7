"""What the search domain needs from the outside world, as small protocols.

`SearchBackend` is the one interface both index implementations (PostgreSQL,
Elasticsearch) provide; the contract test suite runs against each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from conduit_server.search.domain.documents import Change, Document
from conduit_server.search.domain.query import BackendPage, SearchQuery


@dataclass(frozen=True)
class IndexStats:
    backend: str
    documents: int
    tombstones: int
    newest_version: int


@dataclass(frozen=True)
class IndexStatus:
    """What operators and metrics see (`conduit search status`, GetIndexStatus)."""

    stats: IndexStats
    lag_seconds: float
    documents_indexed: int


class SearchBackend(Protocol):
    """An index of article documents. `target` names an index being rebuilt; None is the live one."""

    name: str

    async def prepare(self) -> None:
        """Create what the index needs (idempotent; safe with many replicas)."""

    async def apply(self, changes: Sequence[Change], target: str | None = None) -> int:
        """Write each change whose version is above the stored one; returns how many were written."""

    async def search(self, query: SearchQuery, *, fuzzy: bool) -> BackendPage:
        """Matches best first; `fuzzy` tolerates misspelt words."""

    async def begin_rebuild(self) -> str:
        """A new, empty index to fill while the live one keeps serving; returns its target name."""

    async def swap(self, target: str) -> None:
        """Make `target` the live index atomically and drop the old one."""

    async def discard(self, target: str) -> None:
        """Drop an unfinished rebuild."""

    async def documents(self) -> dict[int, Document]:
        """Every live (not deleted) document by article id: for status checks and tests."""

    async def refresh(self) -> None:
        """Make every write so far visible to searches (near-real-time backends)."""

    async def stats(self) -> IndexStats: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class SnapshotBatch:
    """Articles of one consistent snapshot, as documents versioned by the outbox position it reflects."""

    documents: list[Document]
    total: int


class ArticleSource(Protocol):
    """The articles service, seen from search."""

    def snapshot(self) -> AsyncIterator[SnapshotBatch]:
        """Every article from one consistent snapshot."""

    async def views(self, article_ids: Sequence[int], viewer_id: int) -> Mapping[int, Any]:
        """The articles in the list shape as `viewer_id` sees them, in ONE call."""


class Directory(Protocol):
    async def user_id(self, username: str) -> int | None: ...


class EventLog(Protocol):
    """The articles event stream, read from a position (not as a consumer group)."""

    async def position(self) -> str:
        """The id of the newest entry now."""

    def changes_after(self, position: str) -> AsyncIterator[tuple[str, list[Change]]]:
        """Changes of the entries after `position`, in pages, each with its last entry id."""
