"""The service runtime: fail-closed auth rules, validation, error mapping, health and shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit.users.v1 import users_pb2, users_pb2_grpc
from conduit_server.runtime import errors
from conduit_server.runtime.auth import MissingAuthRule
from conduit_server.runtime.server import Binding, GrpcServer
from conduit_server.runtime.tokens import AccessTokenVerifier
from tests.support import details, trailers

from .conftest import INTERNAL_TOKEN, StaticApp, serving


class Tags(articles_pb2_grpc.TagsServiceServicer):
    """Answers with a fixed list (when `held`, once released); raises what it is told to."""

    def __init__(self, *, held: bool = False, error: Exception | None = None) -> None:
        self.error = error
        self.started = asyncio.Event()
        self.released = asyncio.Event()
        if not held:
            self.released.set()

    async def ListTags(self, request: Any, context: Any) -> articles_pb2.ListTagsResponse:
        self.started.set()
        await self.released.wait()
        if self.error is not None:
            raise self.error
        return articles_pb2.ListTagsResponse(tags=["grpc", "python"])


class Articles(articles_pb2_grpc.ArticlesServiceServicer):
    """Only GetArticle (anonymous) and CreateArticle (authenticated) are answered."""

    async def GetArticle(self, request: Any, context: Any) -> articles_pb2.GetArticleResponse:
        raise errors.NotFound(f"article {request.slug!r} not found", reason="ARTICLE_NOT_FOUND")

    async def CreateArticle(self, request: Any, context: Any) -> articles_pb2.CreateArticleResponse:
        return articles_pb2.CreateArticleResponse(article=articles_pb2.Article(title=request.article.title))


class Directory(users_pb2_grpc.UserDirectoryServiceServicer):
    async def ListFolloweeIds(self, request: Any, context: Any) -> users_pb2.ListFolloweeIdsResponse:
        return users_pb2.ListFolloweeIdsResponse(followee_ids=[2, 3])


def _bindings(tags: Tags) -> list[Binding]:
    articles = articles_pb2.DESCRIPTOR.services_by_name
    return [
        Binding(articles["TagsService"], articles_pb2_grpc.add_TagsServiceServicer_to_server, tags),
        Binding(articles["ArticlesService"], articles_pb2_grpc.add_ArticlesServiceServicer_to_server,
                Articles()),  # type: ignore[abstract]
        Binding(users_pb2.DESCRIPTOR.services_by_name["UserDirectoryService"],
                users_pb2_grpc.add_UserDirectoryServiceServicer_to_server, Directory()),  # type: ignore[abstract]
    ]


def test_service_with_an_rpc_lacking_an_authorization_rule_refuses_to_start() -> None:
    pool = descriptor_pool.DescriptorPool()
    proto = descriptor_pb2.FileDescriptorProto(name="ruleless.proto", package="ruleless.v1", syntax="proto3")
    proto.message_type.add(name="Empty")
    proto.service.add(name="RulelessService").method.add(
        name="Forgotten", input_type=".ruleless.v1.Empty", output_type=".ruleless.v1.Empty")
    pool.Add(proto)
    service = pool.FindServiceByName("ruleless.v1.RulelessService")
    binding = Binding(service, lambda servicer, server: None, object())
    app = StaticApp([*_bindings(Tags()), binding])
    with pytest.raises(MissingAuthRule, match=r"/ruleless\.v1\.RulelessService/Forgotten"):
        GrpcServer(app, host="127.0.0.1", port=0, verifier=None, internal_token=INTERNAL_TOKEN)


async def test_invalid_request_returns_invalid_argument_with_bad_requestdetails(
        verifier: AccessTokenVerifier) -> None:
    async with serving(StaticApp(_bindings(Tags())), verifier) as (_, channel):
        stub = articles_pb2_grpc.ArticlesServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.GetArticle(articles_pb2.GetArticleRequest(slug=""))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = details(failure.value)["BadRequest"].field_violations
    assert [(v.field, v.description) for v in violations] == [("slug", "can't be blank")]
    assert trailers(failure.value)[errors.ERROR_BODY_KEY] == '{"errors":{"slug":["can\'t be blank"]}}'


async def test_authentication_is_checked_before_validation(verifier: AccessTokenVerifier) -> None:
    async with serving(StaticApp(_bindings(Tags())), verifier) as (_, channel):
        stub = articles_pb2_grpc.ArticlesServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.CreateArticle(articles_pb2.CreateArticleRequest(article=articles_pb2.NewArticle(
                title="t", description="", body="b")), metadata=(("authorization", "Token x.y.z"),))
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_nested_violations_name_the_realworld_field(verifier: AccessTokenVerifier,
                                                          mint: Callable[..., str]) -> None:
    async with serving(StaticApp(_bindings(Tags())), verifier) as (_, channel):
        stub = articles_pb2_grpc.ArticlesServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.CreateArticle(articles_pb2.CreateArticleRequest(article=articles_pb2.NewArticle(
                title="t" * 300, description="", body="b")),
                metadata=(("authorization", f"Token {mint()}"),))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = details(failure.value)["BadRequest"].field_violations
    assert sorted((v.field, v.description) for v in violations) == [
        ("article.description", "can't be blank"),
        ("article.title", "is too long (maximum is 256 characters)"),
    ]
    body = trailers(failure.value)[errors.ERROR_BODY_KEY]
    assert '"description":["can\'t be blank"]' in str(body)


async def test_domain_exception_maps_to_its_status_with_error_info(verifier: AccessTokenVerifier) -> None:
    async with serving(StaticApp(_bindings(Tags())), verifier) as (_, channel):
        stub = articles_pb2_grpc.ArticlesServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.GetArticle(articles_pb2.GetArticleRequest(slug="missing"))
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    info = details(failure.value)["ErrorInfo"]
    assert (info.reason, info.domain) == ("ARTICLE_NOT_FOUND", errors.ERROR_DOMAIN)


async def test_unexpected_exception_becomes_internal_without_leaking(verifier: AccessTokenVerifier) -> None:
    tags = Tags(error=RuntimeError("password=hunter2 in a stack trace"))
    async with serving(StaticApp(_bindings(tags)), verifier) as (_, channel):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await articles_pb2_grpc.TagsServiceStub(channel).ListTags(articles_pb2.ListTagsRequest())
    assert failure.value.code() == grpc.StatusCode.INTERNAL
    assert "hunter2" not in (failure.value.details() or "")


async def test_rate_limit_carries_retry_info(verifier: AccessTokenVerifier) -> None:
    tags = Tags(error=errors.RateLimited("too many attempts", 2.5))
    async with serving(StaticApp(_bindings(tags)), verifier) as (_, channel):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await articles_pb2_grpc.TagsServiceStub(channel).ListTags(articles_pb2.ListTagsRequest())
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    delay = details(failure.value)["RetryInfo"].retry_delay
    assert (delay.seconds, delay.nanos) == (2, 500_000_000)
    assert trailers(failure.value)["retry-after"] == "3"


async def test_authenticated_method_needs_a_valid_token(verifier: AccessTokenVerifier,
                                                        mint: Callable[..., str]) -> None:
    request = articles_pb2.CreateArticleRequest(article=articles_pb2.NewArticle(
        title="Hello", description="d", body="b"))
    async with serving(StaticApp(_bindings(Tags())), verifier) as (_, channel):
        stub = articles_pb2_grpc.ArticlesServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.CreateArticle(request)
        assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
        answer = await stub.CreateArticle(request, metadata=(("authorization", f"Token {mint()}"),))
        assert answer.article.title == "Hello"
        answer = await stub.CreateArticle(request, metadata=(("authorization", f"Bearer {mint()}"),))
        assert answer.article.title == "Hello"


async def test_internal_method_needs_the_internal_token(verifier: AccessTokenVerifier,
                                                        mint: Callable[..., str]) -> None:
    request = users_pb2.ListFolloweeIdsRequest(user_id=1)
    async with serving(StaticApp(_bindings(Tags())), verifier) as (_, channel):
        stub = users_pb2_grpc.UserDirectoryServiceStub(channel)
        for metadata in ((), (("authorization", f"Token {mint(roles=['admin'])}"),),
                         (("x-conduit-internal", "guess"),)):
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await stub.ListFolloweeIds(request, metadata=metadata)
            assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
        answer = await stub.ListFolloweeIds(request, metadata=(("x-conduit-internal", INTERNAL_TOKEN),))
        assert list(answer.followee_ids) == [2, 3]


async def test_health_reports_serving_then_not_serving_while_in_flight_calls_finish(
        verifier: AccessTokenVerifier) -> None:
    tags = Tags(held=True)
    async with serving(StaticApp(_bindings(tags)), verifier, drain_seconds=0.4) as (server, channel):
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "conduit.articles.v1.TagsService"):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        in_flight = asyncio.ensure_future(
            articles_pb2_grpc.TagsServiceStub(channel).ListTags(articles_pb2.ListTagsRequest()))
        await asyncio.wait_for(tags.started.wait(), 5)
        stopping = asyncio.ensure_future(server.stop())
        for _ in range(500):  # stop() turns health NOT_SERVING first, then drains
            answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
            if answer.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("health never turned NOT_SERVING")
        assert not in_flight.done()  # still held: the call in flight outlives the health change
        tags.released.set()
        assert list((await in_flight).tags) == ["grpc", "python"]
        await stopping
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
        assert failure.value.code() in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


async def test_health_watch_streams_through_the_interceptor_chain_and_sees_not_serving(
        verifier: AccessTokenVerifier) -> None:
    """grpc_health's Watch is a coroutine that writes with context.write(), not an async generator: the
    chain adapts it, so Watch answers (it failed with INTERNAL before) and follows a status change."""
    async with serving(StaticApp(_bindings(Tags())), verifier, drain_seconds=0.4) as (server, channel):
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        first = await asyncio.wait_for(watch.read(), 5)
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.ensure_future(server.stop())
        changed = await asyncio.wait_for(watch.read(), 5)
        assert changed.status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
        await stopping


async def test_health_checks_are_not_logged_at_info_but_calls_are(verifier: AccessTokenVerifier,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    async with serving(StaticApp(_bindings(Tags())), verifier) as (_, channel):
        with caplog.at_level(logging.INFO, logger="conduit.rpc"):
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            await articles_pb2_grpc.TagsServiceStub(channel).ListTags(articles_pb2.ListTagsRequest())

    logged = [getattr(record, "method", "") for record in caplog.records
              if record.name == "conduit.rpc" and record.levelno >= logging.INFO]
    assert logged == ["/conduit.articles.v1.TagsService/ListTags"]
