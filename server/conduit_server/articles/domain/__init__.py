"""The rules of articles, comments, favorites, tags and imports. No protobuf, no SQL here."""

from conduit_server.articles.domain.articles import Articles
from conduit_server.articles.domain.comments import Comments
from conduit_server.articles.domain.importer import Importer
from conduit_server.articles.domain.records import Records
from conduit_server.articles.domain.tags import Tags

__all__ = ["Articles", "Comments", "Importer", "Records", "Tags"]
