"""Every query of the articles tables. Callers pass the session of their unit of work."""

from conduit_server.articles.repository.articles import ArticleRepository
from conduit_server.articles.repository.comments import CommentRepository
from conduit_server.articles.repository.imports import ImportRepository, ImportRow
from conduit_server.articles.repository.tags import TagRepository

__all__ = ["ArticleRepository", "CommentRepository", "ImportRepository", "ImportRow", "TagRepository"]
