"""The shipped fault kit (`conduit.client.testing`) against both clients: one suite, run sync and async.

Each scenario is written once as a coroutine over a client; `both` runs it with a blocking `Conduit`
and with an `AsyncConduit` (results awaited only when they are awaitables), so the two clients must
behave the same on retries, budgets, keys, raw responses, options, auth replay and watches.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

import grpc
import pytest
from google.rpc import error_details_pb2
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conduit.articles.v1 import articles_pb2 as a
from conduit.articles.v1 import articles_pb2_grpc
from conduit.client import (
    AsyncConduit,
    Conduit,
    DeadlineExceeded,
    PasswordCredentials,
    Reconnect,
    ResourceExhausted,
    RetryPolicy,
    Unavailable,
)
from conduit.client.errors import LastAdminError, UsersDeadlineError
from conduit.client.testing import AsyncInProcessServer, FakeServer, Fault, Stream
from conduit.realtime.v1 import realtime_pb2 as r
from conduit.search.v1 import search_pb2 as s
from conduit.users.v1 import users_pb2 as u

T = TypeVar("T")
Client = Conduit | AsyncConduit
Scenario = Callable[[Any], Awaitable[T]]
FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)
KINDS = ["sync", "async"]


async def ready(value: Any) -> Any:
    """The value of a sync call, or of an async one once awaited."""
    return await value if inspect.isawaitable(value) else value


async def drain(items: Iterable[T] | AsyncIterable[T], limit: int | None = None) -> list[T]:
    """Every item of a pager or watch (sync or async), or the first `limit`."""
    found: list[T] = []
    if isinstance(items, AsyncIterable):
        async for item in items:
            found.append(item)
            if limit is not None and len(found) == limit:
                break
    else:
        for item in items:
            found.append(item)
            if limit is not None and len(found) == limit:
                break
    return found


def run(kind: str, target: str, scenario: Scenario[T], **connect: Any) -> T:
    """Run `scenario` with a client of `kind` connected to `target` (plaintext)."""
    async def main() -> T:
        if kind == "sync":
            with Conduit.connect(target, tls=False, **connect) as client:
                return await scenario(client)
        async with await AsyncConduit.connect(target, tls=False, **connect) as aclient:
            return await scenario(aclient)
    return asyncio.run(main())


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


def _article(slug: str = "hello") -> a.Article:
    return a.Article(slug=slug, title="Hello", description="d", body="b")


def _events(*ids: str) -> list[r.WatchArticlesResponse]:
    return [r.WatchArticlesResponse(events=[r.Event(event_id=i, type=r.EVENT_TYPE_ARTICLE_CREATED)]) for i in ids]


# -- retries -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_an_idempotent_call_after_unavailable_with_retry_info_waits_at_least_the_delay(
        kind: str, fake: FakeServer) -> None:
    fake.script("ListTags", Fault.unavailable(retry_after=0.3), a.ListTagsResponse(tags=["grpc"]))

    async def scenario(client: Any) -> list[str]:
        result: list[str] = await ready(client.tags.list())
        return result

    assert run(kind, fake.target, scenario, retry=FAST) == ["grpc"]
    first, second = fake.calls("ListTags")
    assert second.received_at - first.received_at >= 0.3


@pytest.mark.parametrize("kind", KINDS)
def test_a_create_whose_answer_is_lost_is_retried_with_the_same_idempotency_key(
        kind: str, fake: FakeServer) -> None:
    created = a.CreateArticleResponse(article=_article())
    fake.script("CreateArticle", Fault.lose_answer(created), created)

    async def scenario(client: Any) -> a.Article:
        article: a.Article = await ready(client.articles.create(title="Hello", description="d", body="b"))
        return article

    assert run(kind, fake.target, scenario, retry=FAST).slug == "hello"
    first, second = fake.calls("CreateArticle")
    assert first.idempotency_key
    assert first.idempotency_key == second.idempotency_key
    assert first.request == second.request


@pytest.mark.parametrize("kind", KINDS)
def test_each_create_gets_its_own_key_and_a_caller_can_pass_one(kind: str, fake: FakeServer) -> None:
    fake.reply("CreateArticle", a.CreateArticleResponse(article=_article()))

    async def scenario(client: Any) -> None:
        await ready(client.articles.create(title="Hello", description="d", body="b"))
        await ready(client.articles.create(title="Hello", description="d", body="b"))
        await ready(client.with_options(idempotency_key="order-42").articles.create(
            title="Hello", description="d", body="b"))

    run(kind, fake.target, scenario)
    keys = [call.idempotency_key for call in fake.calls("CreateArticle")]
    assert keys[0] != keys[1]
    assert keys[2] == "order-42"


@pytest.mark.parametrize("kind", KINDS)
def test_a_reason_the_contract_marks_do_not_retry_stops_at_once(kind: str, fake: FakeServer) -> None:
    fake.script("GetArticle", Fault.status(grpc.StatusCode.UNAVAILABLE, "no time left", reason="USERS_DEADLINE"),
                a.GetArticleResponse(article=_article()))

    async def scenario(client: Any) -> None:
        await ready(client.articles.get("hello"))

    with pytest.raises(UsersDeadlineError) as raised:
        run(kind, fake.target, scenario, retry=FAST)
    assert isinstance(raised.value, Unavailable)
    assert len(fake.calls("GetArticle")) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_quota_failure_stops_retries_even_with_retry_info(kind: str, fake: FakeServer) -> None:
    quota = error_details_pb2.QuotaFailure(violations=[error_details_pb2.QuotaFailure.Violation(
        subject="user:jake", description="daily searches spent")])
    fake.script("ListTags", Fault.status(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota", retry_after=0.01,
                                         details=[quota]), a.ListTagsResponse(tags=["grpc"]))

    async def scenario(client: Any) -> None:
        await ready(client.tags.list())

    with pytest.raises(ResourceExhausted):
        run(kind, fake.target, scenario, retry=FAST)
    assert len(fake.calls("ListTags")) == 1


# -- one budget --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_pager_whose_first_page_takes_most_of_the_budget_fails_the_third_page_naming_the_budget(
        kind: str, fake: FakeServer) -> None:
    def page(*slugs: str) -> a.ListArticlesResponse:
        return a.ListArticlesResponse(articles=[a.ArticleSummary(slug=s) for s in slugs], articles_count=6)

    fake.script("ListArticles", Fault.delay(1.6, page("a1", "a2")), page("a3", "a4"), Fault.hang())
    seen: list[str] = []

    async def scenario(client: Any) -> None:
        pager = client.with_options(deadline=2.0).articles.list(page_size=2)
        if isinstance(pager, AsyncIterable):
            async for item in pager:  # one by one: the items before the failing page must land in `seen`
                seen.append(item.slug)  # noqa: PERF401
        else:
            seen.extend(item.slug for item in pager)

    with pytest.raises(DeadlineExceeded) as raised:
        run(kind, fake.target, scenario, retry=FAST)
    error = raised.value
    assert seen == ["a1", "a2", "a3", "a4"]
    assert (error.budget, error.limit) == ("operation", 2.0)
    assert error.spent is not None
    assert error.spent >= 2.0
    assert "operation budget of 2s ran out in ListArticles" in str(error)
    assert [call.request.offset for call in fake.calls("ListArticles")] == [0, 2, 4]
    third = fake.calls("ListArticles")[2].deadline
    assert third is not None
    assert third < 0.4 + 0.05  # the third page only got what the budget had left


# -- per-call options and raw responses ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_with_options_metadata_reaches_every_page_of_a_pager(kind: str, fake: FakeServer) -> None:
    fake.script("ListArticles",
                a.ListArticlesResponse(articles=[a.ArticleSummary(slug="a1")], articles_count=2),
                a.ListArticlesResponse(articles=[a.ArticleSummary(slug="a2")], articles_count=2))

    async def scenario(client: Any) -> list[Any]:
        return await drain(client.with_options(metadata={"x-tenant": "acme"}, timeout=3).articles.list(page_size=1))

    assert len(run(kind, fake.target, scenario)) == 2
    calls = fake.calls("ListArticles")
    assert [call.metadata.get("x-tenant") for call in calls] == ["acme", "acme"]
    assert all(call.deadline is not None and call.deadline <= 3.01 for call in calls)  # grpc-timeout rounds up


@pytest.mark.parametrize("kind", KINDS)
def test_raw_responses_give_the_message_metadata_and_attempts(kind: str, fake: FakeServer) -> None:
    fake.script("ListTags", Fault.unavailable(), a.ListTagsResponse(tags=["grpc"]))

    async def scenario(client: Any) -> Any:
        with client.with_raw_response() as raw:
            tags = await ready(client.tags.list())
        assert tags == ["grpc"]
        return raw

    raw = run(kind, fake.target, scenario, retry=FAST)
    assert [call.code for call in raw.calls] == [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK]
    assert raw.last.response == a.ListTagsResponse(tags=["grpc"])
    assert raw.last.attempts == 2
    assert any(key == "grpc-status-details-bin" for key, _ in raw.calls[0].trailing_metadata)


# -- auth ----------------------------------------------------------------------------------------------


def _session(n: int) -> u.Session:
    return u.Session(access_token=f"access-{n}", expires_in_seconds=900, refresh_token=f"refresh-{n}",
                     refresh_expires_in_seconds=86400)


@pytest.mark.parametrize("kind", KINDS)
def test_unauthenticated_refreshes_the_token_once_and_replays(kind: str, fake: FakeServer) -> None:
    fake.reply("CreateSession", u.CreateSessionResponse(session=_session(1)))
    fake.reply("RefreshSession", u.RefreshSessionResponse(session=_session(2)))
    fake.script("ListTags", Fault.status(grpc.StatusCode.UNAUTHENTICATED, "revoked", reason="TOKEN_REVOKED"),
                a.ListTagsResponse(tags=["grpc"]))

    async def scenario(client: Any) -> list[str]:
        result: list[str] = await ready(client.tags.list())
        return result

    assert run(kind, fake.target, scenario, credentials=PasswordCredentials("jake@example.com", "pw")) == ["grpc"]
    assert [c.metadata["authorization"] for c in fake.calls("ListTags")] == ["Bearer access-1",
                                                                              "Bearer access-2"]
    assert [c.request.refresh_token for c in fake.calls("RefreshSession")] == ["refresh-1"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_token_provider_is_asked_again_after_unauthenticated(kind: str, fake: FakeServer) -> None:
    tokens = iter(["first", "second"])
    fake.script("ListTags", Fault.status(grpc.StatusCode.UNAUTHENTICATED, "expired", reason="TOKEN_EXPIRED"),
                a.ListTagsResponse(tags=["grpc"]))

    async def scenario(client: Any) -> None:
        await ready(client.tags.list())

    run(kind, fake.target, scenario, token_provider=lambda: next(tokens))
    assert [c.metadata["authorization"] for c in fake.calls("ListTags")] == ["Bearer first", "Bearer second"]


# -- watches -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_watch_cut_after_n_messages_resumes_with_no_gap_or_duplicate_and_its_span_shows_it(
        kind: str, fake: FakeServer, spans: InMemorySpanExporter) -> None:
    fake.script("WatchArticles", Stream.cut(_events("1", "2", "3", "4"), after=2), Stream(_events("3", "4", "5")))
    hooks: list[Reconnect] = []

    async def scenario(client: Any) -> tuple[list[str], int]:
        watch = client.articles.watch_all(on_reconnect=hooks.append)
        events = await drain(watch, limit=5)
        watch.close()
        return [e.event_id for e in events], watch.reconnects

    ids, reconnects = run(kind, fake.target, scenario, retry=FAST)
    assert ids == ["1", "2", "3", "4", "5"]
    assert reconnects == 1
    assert [call.request.resume_token for call in fake.calls("WatchArticles")] == ["", "2"]
    assert [(h.count, h.resume_token) for h in hooks] == [(1, "2")]
    assert hooks[0].reason.startswith("UNAVAILABLE")
    (span,) = [s for s in spans.get_finished_spans() if s.name == "conduit.client/WatchArticles"]
    assert span.attributes is not None
    assert span.attributes["conduit.watch.reconnects"] == 1
    assert [e.name for e in span.events] == ["reconnect"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_watch_whose_server_goes_silent_reconnects_within_the_heartbeat_gap_and_misses_nothing(
        kind: str, fake: FakeServer) -> None:
    fake.script("WatchArticles", Stream.silent(_events("1", "2"), heartbeat_interval=0.1),
                Stream(_events("3"), end=Fault("silence")))
    hooks: list[Reconnect] = []

    async def scenario(client: Any) -> tuple[list[str], float]:
        watch = client.articles.watch_all(on_reconnect=hooks.append)
        events = await drain(watch, limit=3)
        gap = watch.heartbeat_gap
        watch.close()
        return [e.event_id for e in events], gap

    ids, gap = run(kind, fake.target, scenario, retry=FAST)
    assert ids == ["1", "2", "3"]
    assert gap == pytest.approx(0.3)  # 3 x the interval the server announced
    first, second = fake.calls("WatchArticles")
    assert second.request.resume_token == "2"
    assert [h.reason for h in hooks] == ["heartbeat gap"]
    waited = second.received_at - first.received_at
    assert gap <= waited < 5  # the default gap (45 s) or a hang would fail here


@pytest.mark.parametrize("kind", KINDS)
def test_a_watch_budget_ends_the_watch_with_an_operation_deadline(kind: str, fake: FakeServer) -> None:
    fake.script("WatchArticles", Stream.silent(_events("1"), heartbeat_interval=10))

    async def scenario(client: Any) -> list[Any]:
        return await drain(client.with_options(deadline=0.5).articles.watch_all())

    with pytest.raises(DeadlineExceeded) as raised:
        run(kind, fake.target, scenario, retry=FAST)
    assert raised.value.budget == "operation"
    assert len(fake.calls("WatchArticles")) == 1


# -- spans and logs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_call_has_a_span_and_each_attempt_a_child_with_its_retry_reason(
        kind: str, fake: FakeServer, spans: InMemorySpanExporter) -> None:
    fake.script("ListTags", Fault.unavailable(), a.ListTagsResponse(tags=["grpc"]))

    async def scenario(client: Any) -> None:
        await ready(client.tags.list())

    run(kind, fake.target, scenario, retry=FAST)
    finished = spans.get_finished_spans()
    (call,) = [s for s in finished if s.name == "conduit.client/ListTags"]
    attempts = [s for s in finished if s.name == "conduit.client/ListTags attempt"]
    assert all(s.parent is not None and s.parent.span_id == call.context.span_id for s in attempts)
    assert [s.attributes["conduit.attempt"] for s in attempts if s.attributes] == [1, 2]
    second = attempts[1].attributes
    assert second is not None
    assert str(second["conduit.retry_reason"]).startswith("UNAVAILABLE")
    assert float(second["conduit.backoff_seconds"]) > 0  # type: ignore[arg-type]
    traceparents = [c.metadata.get("traceparent", "") for c in fake.calls("ListTags")]
    assert all(format(call.context.trace_id, "032x") in t for t in traceparents)


def test_conduit_log_debug_logs_retries_without_secrets(fake: FakeServer, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("CONDUIT_LOG", "debug")
    fake.script("ListTags", Fault.unavailable(), a.ListTagsResponse(tags=["grpc"]))
    caplog.set_level(logging.DEBUG, logger="conduit.client")
    with Conduit.connect(fake.target, tls=False, token="secret-token-value", retry=FAST) as client:
        assert client.tags.list() == ["grpc"]
    assert logging.getLogger("conduit.client").level == logging.DEBUG
    assert any("ListTags: retrying" in record.getMessage() for record in caplog.records)
    assert not any("secret-token-value" in record.getMessage() for record in caplog.records)


# -- the whole surface ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_admin_rpcs_and_reindex_are_wrapped_with_retries_keys_and_typed_errors(kind: str, fake: FakeServer) -> None:
    account = u.ServiceAccount(client_id="svc-1", name="importer", scopes=["articles.import"])
    fake.script("ListUserRoles", Fault.unavailable(), u.ListUserRolesResponse(roles=["user", "admin"]))
    fake.reply("GrantRole", u.GrantRoleResponse(roles=["user", "moderator"]))
    fake.script("RevokeRole", Fault.status(grpc.StatusCode.FAILED_PRECONDITION, "the last admin",
                                           reason="LAST_ADMIN"))
    fake.reply("CreateServiceAccount", u.CreateServiceAccountResponse(service_account=account, client_secret="s"))
    fake.reply("ListServiceAccounts", u.ListServiceAccountsResponse(service_accounts=[account]))
    fake.reply("RevokeServiceAccount", u.RevokeServiceAccountResponse())
    fake.script("ReindexArticles", Fault.lose_answer(s.ReindexArticlesResponse(indexed_count=3)),
                s.ReindexArticlesResponse(indexed_count=3))

    async def scenario(client: Any) -> None:
        assert await ready(client.admin.roles("jake")) == ["user", "admin"]
        assert await ready(client.admin.grant_role("jake", "moderator")) == ["user", "moderator"]
        with pytest.raises(LastAdminError):
            await ready(client.admin.revoke_role("root", "admin"))
        created = await ready(client.admin.create_service_account("importer", ["articles.import"]))
        assert created.client_secret == "s"
        assert [a.client_id for a in await ready(client.admin.service_accounts())] == ["svc-1"]
        await ready(client.admin.revoke_service_account("svc-1"))
        assert await ready(client.search.reindex_articles()) == 3

    run(kind, fake.target, scenario, retry=FAST)
    assert len(fake.calls("ListUserRoles")) == 2  # a read: retried
    assert len(fake.calls("RevokeRole")) == 1  # LAST_ADMIN is final
    first, second = fake.calls("ReindexArticles")
    assert first.idempotency_key == second.idempotency_key  # never a second rebuild
    assert first.deadline is not None
    assert first.deadline > 100  # the contract's 120 s default, not the client's 10 s
    assert [c.request.client_id for c in fake.calls("RevokeServiceAccount")] == ["svc-1"]


def test_the_pytest_plugin_fixtures_serve_and_connect(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        from conduit.articles.v1 import articles_pb2
        from conduit.client.testing import Fault

        def test_uses_the_fixtures(conduit_fake_server, conduit_fake_client):
            conduit_fake_server.script("ListTags", Fault.unavailable(), articles_pb2.ListTagsResponse(tags=["x"]))
            assert conduit_fake_client.tags.list() == ["x"]
            assert len(conduit_fake_server.calls("ListTags")) == 2
    ''')
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


async def test_the_async_in_process_server_serves_async_servicers() -> None:
    class Tags(articles_pb2_grpc.TagsServiceServicer):
        async def ListTags(self, request: a.ListTagsRequest, context: Any) -> a.ListTagsResponse:
            return a.ListTagsResponse(tags=["aio"])

    server = AsyncInProcessServer().add(articles_pb2_grpc.add_TagsServiceServicer_to_server, Tags())
    async with server, await AsyncConduit.connect(server.target, tls=False) as conduit:
        assert await conduit.tags.list() == ["aio"]
