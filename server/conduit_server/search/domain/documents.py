"""What the index holds: one document per article, versioned by the articles outbox sequence.

Every change carries the outbox id (`seq`) of the event that made it; a snapshot
carries the outbox position it reflects. A backend applies a change only when
its version is above the stored one, so a replayed or late event never
overwrites a newer state, and a delete leaves a tombstone that keeps an older
create from resurrecting the article (docs/decisions/0017).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

# Private-use characters mark highlighted words between a backend and the snippet builder; stripped
# from indexed text so that no document can forge a mark. NUL is stripped too (PostgreSQL text refuses it).
MARK_OPEN = "\ue000"
MARK_CLOSE = "\ue001"
_STRIPPED = str.maketrans({MARK_OPEN: None, MARK_CLOSE: None, "\x00": None})


def clean_text(text: str) -> str:
    return text.translate(_STRIPPED)


@dataclass(frozen=True)
class Document:
    """An article as the index stores it."""

    article_id: int
    version: int
    slug: str
    title: str
    description: str
    body: str
    tags: tuple[str, ...]
    author_id: int
    created_at: datetime

    def cleaned(self) -> Document:
        return Document(self.article_id, self.version, clean_text(self.slug), clean_text(self.title),
                        clean_text(self.description), clean_text(self.body),
                        tuple(clean_text(tag) for tag in self.tags), self.author_id, self.created_at)


@dataclass(frozen=True)
class Tombstone:
    """A deleted article: kept with its version so that older events cannot bring it back."""

    article_id: int
    version: int


Change = Document | Tombstone


def latest(changes: Iterable[Change]) -> list[Change]:
    """The newest change per article, in article order (a batch writes each document once)."""
    newest: dict[int, Change] = {}
    for change in changes:
        held = newest.get(change.article_id)
        if held is None or change.version > held.version:
            newest[change.article_id] = change
    return [newest[article_id] for article_id in sorted(newest)]
