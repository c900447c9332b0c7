"""Who may do what to articles and comments (ownership rules; the contract's rules come first)."""

from __future__ import annotations

from conduit_server.articles.domain.records import Caller
from conduit_server.runtime.errors import PermissionDenied
from conduit_server.runtime.ratelimit import WriteLimit


def require_user(caller: Caller, action: str) -> int:
    """The caller's user id; service accounts and anonymous callers may not `action`."""
    if caller.is_service or caller.user_id is None:
        raise PermissionDenied(f"only users may {action}", reason="USER_ONLY")
    return caller.user_id


def require_author(caller: Caller, author_id: int, action: str) -> None:
    """Only the author may `action` (updating an article is not a moderator's job)."""
    if caller.is_service or caller.user_id != author_id:
        raise PermissionDenied(f"only the author may {action}", reason="NOT_AUTHOR")


def require_author_or_moderator(caller: Caller, author_id: int, action: str) -> None:
    """The author, a moderator or an admin may `action`."""
    if caller.is_moderator or (not caller.is_service and caller.user_id == author_id):
        return
    raise PermissionDenied(f"only the author, a moderator or an admin may {action}", reason="NOT_AUTHOR")


async def count_write(writes: WriteLimit, caller: Caller) -> None:
    """Count a write against the signed-in user's budget (service accounts have none: their own
    limits are their scopes); raises RateLimited when it is spent."""
    if caller.user_id is not None and not caller.is_service:
        await writes.check(caller.user_id)
