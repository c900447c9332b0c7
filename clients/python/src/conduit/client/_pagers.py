"""Pagers over limit/offset lists: items lazily across pages, or whole pages with `.pages()`.

A pager fetches nothing until iterated, then one page at a time. It stops at an
empty page or once the offset reaches the total the server reports; a short page
does not end it (the services serve at most their maximum page, whatever was asked). Each
iteration starts again from the first page. Offsets are positions, so rows
inserted or deleted while paging can shift items between pages (a duplicate
or a miss at the boundary): re-list, or watch for changes, when that matters.

Every iteration is one operation with one budget (`with_options(deadline=...)`
on the client that made the pager): all pages, and their retries, spend it
together, so a slow first page leaves less for the others and the page that
finds it spent raises `DeadlineExceeded` with `budget == "operation"`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Generic, TypeVar

from conduit.client._retry import Budget

P = TypeVar("P")
T = TypeVar("T")

#: The largest page a pager asks for (the services may serve fewer: article lists serve 20).
MAX_PAGE_SIZE = 100


def check_page(page_size: int, offset: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    if offset < 0:
        raise ValueError("offset must not be negative")


class _Paging(Generic[P, T]):
    def __init__(self, items: Callable[[P], Sequence[T]], total: Callable[[P], int], *,
                 page_size: int, offset: int) -> None:
        check_page(page_size, offset)
        self._items = items
        self._total_of = total
        self.page_size = page_size
        self.offset = offset
        self.total: int | None = None
        """The total the server reported with the last page fetched; None before the first."""

    def _next_offset(self, page: P, offset: int) -> int | None:
        """The offset of the page after `page`, or None when `page` was the last."""
        count = len(self._items(page))
        self.total = self._total_of(page)
        offset += count
        if count == 0 or offset >= self.total:
            return None
        return offset


class Pager(_Paging[P, T]):
    """Iterate the items of a list call across pages; `pages()` yields the page responses."""

    def __init__(self, fetch: Callable[[int, int, Budget], P], items: Callable[[P], Sequence[T]],
                 total: Callable[[P], int], *, page_size: int, offset: int = 0,
                 budget: Callable[[], Budget] | None = None) -> None:
        super().__init__(items, total, page_size=page_size, offset=offset)
        self._fetch = fetch
        self._budget = budget or (lambda: Budget(None))

    def pages(self) -> Iterator[P]:
        """Each page response (e.g. `ListArticlesResponse`), fetched when reached."""
        offset: int | None = self.offset
        budget = self._budget()
        while offset is not None:
            page = self._fetch(offset, self.page_size, budget)
            yield page
            offset = self._next_offset(page, offset)

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from self._items(page)


class AsyncPager(_Paging[P, T]):
    """`async for` over the items of a list call across pages; `pages()` yields the page responses."""

    def __init__(self, fetch: Callable[[int, int, Budget], Awaitable[P]], items: Callable[[P], Sequence[T]],
                 total: Callable[[P], int], *, page_size: int, offset: int = 0,
                 budget: Callable[[], Budget] | None = None) -> None:
        super().__init__(items, total, page_size=page_size, offset=offset)
        self._fetch = fetch
        self._budget = budget or (lambda: Budget(None))

    async def pages(self) -> AsyncIterator[P]:
        """Each page response (e.g. `ListArticlesResponse`), fetched when reached."""
        offset: int | None = self.offset
        budget = self._budget()
        while offset is not None:
            page = await self._fetch(offset, self.page_size, budget)
            yield page
            offset = self._next_offset(page, offset)

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in self._items(page):
                yield item
