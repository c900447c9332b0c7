"""Author profiles: cached in process for anonymous readers, evicted by the users stream, never stale
for the caller's own follows (docs/decisions/0010-author-profiles.md)."""

from __future__ import annotations

from conduit.articles.v1 import articles_pb2
from conduit.users.v1 import users_pb2
from tests.articles.conftest import Mesh
from tests.support import eventually


async def _anonymous_get(mesh: Mesh, slug: str) -> articles_pb2.Article:
    return (await mesh.articles.GetArticle(articles_pb2.GetArticleRequest(slug=slug))).article


async def test_anonymous_reads_ask_the_users_service_once_per_author(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    slug = (await mesh.create(alice, f"Cached author {alice.username}")).slug
    await _anonymous_get(mesh, slug)
    calls = mesh.app.users.calls["BatchGetProfiles"]
    for _ in range(5):
        assert (await _anonymous_get(mesh, slug)).author.username == alice.username
    assert mesh.app.users.calls["BatchGetProfiles"] == calls


async def test_a_profile_change_reaches_anonymous_readers_through_the_users_stream(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    slug = (await mesh.create(alice, f"Changing author {alice.username}")).slug
    assert (await _anonymous_get(mesh, slug)).author.bio == ""
    evictions = mesh.app.authors.profiles.evictions
    await mesh.users.users.UpdateCurrentUser(users_pb2.UpdateCurrentUserRequest(
        user=users_pb2.UpdateUser(bio="Now with a bio", username=f"{alice.username}-x")), metadata=alice.auth)
    # The users relay publishes at commit; the articles service's tail reads it within milliseconds.
    await eventually(lambda: mesh.app.authors.profiles.evictions > evictions)
    author = (await _anonymous_get(mesh, slug)).author
    assert (author.bio, author.username) == ("Now with a bio", f"{alice.username}-x")


async def test_signed_in_readers_always_see_their_own_follow_at_once(mesh: Mesh) -> None:
    alice, bob = await mesh.person("alice"), await mesh.person("bob")
    slug = (await mesh.create(alice, f"Followed author {alice.username}")).slug
    await _anonymous_get(mesh, slug)  # alice's profile is cached now
    request = articles_pb2.GetArticleRequest(slug=slug)
    assert (await mesh.articles.GetArticle(request, metadata=bob.auth)).article.author.following is False
    await mesh.follow(bob, alice)
    assert (await mesh.articles.GetArticle(request, metadata=bob.auth)).article.author.following is True
    assert (await _anonymous_get(mesh, slug)).author.following is False


async def test_signed_in_reads_come_from_the_users_directory_and_stay_exact(mesh: Mesh) -> None:
    alice, bob = await mesh.person("alice"), await mesh.person("bob")
    slug = (await mesh.create(alice, f"Directory author {alice.username}")).slug
    request = articles_pb2.GetArticleRequest(slug=slug)
    await mesh.articles.GetArticle(request, metadata=bob.auth)  # the users service fills its directory
    calls, hits = mesh.app.users.calls["BatchGetProfiles"], mesh.app.authors.directory_hits
    for following in (True, False, True):
        if following:
            await mesh.follow(bob, alice)
        else:
            await mesh.profiles.UnfollowProfile(users_pb2.UnfollowProfileRequest(username=alice.username),
                                                metadata=bob.auth)
        await mesh.articles.GetArticle(request, metadata=bob.auth)  # refills bob's followees after the change
        for _ in range(3):
            seen = (await mesh.articles.GetArticle(request, metadata=bob.auth)).article.author.following
            assert seen is following  # at once: the users service dropped bob's set before answering
    # One call after each change (the directory entry was dropped), none for the reads in between.
    assert mesh.app.users.calls["BatchGetProfiles"] - calls == 3
    assert mesh.app.authors.directory_hits - hits == 9


async def test_an_author_sees_their_own_profile_edit_at_once(mesh: Mesh) -> None:
    alice = await mesh.person("alice")
    slug = (await mesh.create(alice, f"Own edit {alice.username}")).slug
    request = articles_pb2.GetArticleRequest(slug=slug)
    assert (await mesh.articles.GetArticle(request, metadata=alice.auth)).article.author.bio == ""
    await mesh.users.users.UpdateCurrentUser(users_pb2.UpdateCurrentUserRequest(
        user=users_pb2.UpdateUser(bio="Edited")), metadata=alice.auth)
    assert (await mesh.articles.GetArticle(request, metadata=alice.auth)).article.author.bio == "Edited"


async def test_the_feed_follows_a_new_follow_at_once(mesh: Mesh) -> None:
    alice, bob = await mesh.person("alice"), await mesh.person("bob")
    slug = (await mesh.create(alice, f"Feed author {alice.username}")).slug
    feed = articles_pb2.ListFeedArticlesRequest(limit=5)
    assert list((await mesh.articles.ListFeedArticles(feed, metadata=bob.auth)).articles) == []
    await mesh.follow(bob, alice)
    assert [a.slug for a in (await mesh.articles.ListFeedArticles(feed, metadata=bob.auth)).articles] == [slug]
    await mesh.profiles.UnfollowProfile(users_pb2.UnfollowProfileRequest(username=alice.username),
                                        metadata=bob.auth)
    assert list((await mesh.articles.ListFeedArticles(feed, metadata=bob.auth)).articles) == []
