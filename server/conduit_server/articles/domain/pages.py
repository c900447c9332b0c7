"""Page sizes: the default a RealWorld client gets, and the maximum any client gets.

A page of the largest possible items (every string at its contract maximum, each character
printed in its longest JSON form) must stay well inside every transport limit on its way out:
the services' gRPC message limit and the gateway's transcoder buffer (4 MiB each). "Well
inside" is at most half: tests/contract/test_page_bounds.py computes the largest item from the
contract's validation rules and checks each maximum below against it, so growing a field's
`max_len` cannot silently break a page. A client asking for more than the maximum gets the
maximum (the RealWorld spec sets no maximum); below 1 stays a 422.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSize:
    default: int
    maximum: int


# ListArticles, ListFeedArticles: the largest ArticleSummary is ~53 KB of JSON (its author's bio
# alone can be 24 KB).
ARTICLES_PAGE = PageSize(default=20, maximum=20)
# ListComments: the largest Comment is ~157 KB of JSON (a 20,000-character body, its author).
COMMENTS_PAGE = PageSize(default=10, maximum=10)


def page_size(requested: int, size: PageSize) -> int:
    """The page size to serve: the default for 0 (absent), else at most the maximum."""
    return min(requested or size.default, size.maximum)


__all__ = ["ARTICLES_PAGE", "COMMENTS_PAGE", "PageSize", "page_size"]
