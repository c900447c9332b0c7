"""Requests built from keyword arguments, shared by the sync and async clients.

`None` means "not given": the field stays at its proto default, which the
services read as "no filter" or "leave unchanged".
"""

from __future__ import annotations

from collections.abc import Iterable

from conduit.articles.v1 import articles_pb2 as a
from conduit.realtime.v1 import realtime_pb2 as r
from conduit.search.v1 import search_pb2 as s
from conduit.users.v1 import users_pb2 as u


def update_user(*, email: str | None, username: str | None, password: str | None, bio: str | None,
                image: str | None) -> u.UpdateCurrentUserRequest:
    return u.UpdateCurrentUserRequest(user=u.UpdateUser(
        email=email or "", username=username or "", password=password or "", bio=bio or "",
        image=image or ""))


def list_articles(*, tag: str | None, author: str | None, favorited: str | None, limit: int,
                  offset: int) -> a.ListArticlesRequest:
    return a.ListArticlesRequest(tag=tag or "", author=author or "", favorited=favorited or "",
                                 limit=limit, offset=offset)


def create_article(*, title: str, description: str, body: str,
                   tags: Iterable[str]) -> a.CreateArticleRequest:
    return a.CreateArticleRequest(article=a.NewArticle(title=title, description=description, body=body,
                                                       tag_list=list(tags)))


def update_article(slug: str, *, title: str | None, description: str | None,
                   body: str | None) -> a.UpdateArticleRequest:
    return a.UpdateArticleRequest(slug=slug, article=a.UpdateArticle(
        title=title or "", description=description or "", body=body or ""))


def search_articles(query: str, *, tag: str | None, author: str | None, limit: int,
                    offset: int) -> s.SearchArticlesRequest:
    return s.SearchArticlesRequest(query=query, tag=tag or "", author=author or "", limit=limit,
                                   offset=offset)


def oauth_token(*, client_id: str, client_secret: str, scopes: Iterable[str]) -> u.CreateOAuthTokenRequest:
    return u.CreateOAuthTokenRequest(grant_type="client_credentials", client_id=client_id,
                                     client_secret=client_secret, scope=" ".join(scopes))


# Watches always ask for batches: the watch iterators hand the events over one by one.


def watch_article(slug: str, *, resume_token: str) -> r.WatchArticleRequest:
    return r.WatchArticleRequest(slug=slug, resume_token=resume_token, batched=True)


def watch_articles(*, tag: str | None, author: str | None, resume_token: str) -> r.WatchArticlesRequest:
    return r.WatchArticlesRequest(tag=tag or "", author=author or "", resume_token=resume_token, batched=True)


def watch_feed(*, resume_token: str) -> r.WatchFeedRequest:
    return r.WatchFeedRequest(resume_token=resume_token, batched=True)
