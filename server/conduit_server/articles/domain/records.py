"""Plain records shared by the layers of the articles service (no protobuf, no SQL)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

MODERATOR_ROLES = frozenset({"moderator", "admin"})


@dataclass(frozen=True)
class StoredArticle:
    """An article as stored, independent of any viewer. `body` is empty in list views."""

    id: int
    slug: str
    title: str
    description: str
    body: str
    tags: tuple[str, ...]
    author_id: int
    created_at: datetime
    updated_at: datetime
    favorites_count: int


@dataclass(frozen=True)
class NewArticleRow:
    """What the repository needs to insert one article (its slug is chosen by the caller)."""

    title: str
    description: str
    body: str
    tags: tuple[str, ...]
    author_id: int
    excerpt: str
    reading_time_minutes: int


@dataclass(frozen=True)
class StoredComment:
    """A comment as stored, independent of any viewer."""

    id: int
    article_id: int
    article_slug: str
    author_id: int
    body: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Author:
    """A user as the caller sees them (from the users service)."""

    username: str
    bio: str = ""
    image: str = ""
    following: bool = False


# Shown for an author the users service no longer knows (a deleted account).
UNKNOWN_AUTHOR = Author(username="")


@dataclass(frozen=True)
class ArticleView:
    """An article personalised for the caller."""

    article: StoredArticle
    author: Author
    favorited: bool


@dataclass(frozen=True)
class ArticlePage:
    """One page of a list and the number of matching articles in all pages."""

    articles: list[ArticleView]
    total: int


@dataclass(frozen=True)
class CommentView:
    """A comment personalised for the caller."""

    comment: StoredComment
    author: Author


@dataclass(frozen=True)
class ArticleFilter:
    """Which articles a list shows. Empty fields do not filter."""

    tag: str = ""
    author_ids: tuple[int, ...] | None = None
    favorited_by: int | None = None

    @property
    def is_public_front(self) -> bool:
        """The unfiltered list, whose first page is cached."""
        return not self.tag and self.author_ids is None and self.favorited_by is None


@dataclass(frozen=True)
class Caller:
    """Who is calling and until when (a `time.monotonic()` deadline for calls to other services)."""

    user_id: int | None
    roles: frozenset[str] = frozenset()
    is_service: bool = False
    deadline: float = field(default_factory=lambda: time.monotonic() + 5.0)

    @property
    def viewer_id(self) -> int:
        """The id the users service computes `following` for; 0 for anonymous callers."""
        return self.user_id or 0

    @property
    def is_moderator(self) -> bool:
        return bool(self.roles & MODERATOR_ROLES)
