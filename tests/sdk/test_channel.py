"""Channels: TLS by default trusting the local CA (`ca_file` or `CONDUIT_CA_FILE`), plaintext on request,
caller interceptors, and `testing.from_env` as the examples use it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
import pytest

from conduit.articles.v1 import articles_pb2_grpc
from conduit.client import AsyncConduit, Conduit, RetryPolicy, Unavailable, testing
from conduit_gateway.tls import TlsMaterial, ensure_local_tls
from tests.sdk.conftest import Serve
from tests.sdk.support import ScriptedTags

NO_RETRY = RetryPolicy(max_attempts=1)


class TlsServer:
    def __init__(self, material: TlsMaterial) -> None:
        self.tags = ScriptedTags()
        self.server = grpc.server(ThreadPoolExecutor(max_workers=4))
        articles_pb2_grpc.add_TagsServiceServicer_to_server(self.tags, self.server)
        credentials = grpc.ssl_server_credentials(
            [(material.server_key.read_bytes(), material.server_cert.read_bytes())])
        self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
        self.target = f"localhost:{self.port}"  # the name the local certificate carries
        self.ca = material.ca_cert


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return ensure_local_tls(tmp_path_factory.mktemp("tls"))  # what `make run` generates


@pytest.fixture
def tls_server(tls_material: TlsMaterial) -> Iterator[TlsServer]:
    server = TlsServer(tls_material)
    server.server.start()
    yield server
    server.server.stop(None).wait()


def test_tls_trusting_the_local_ca_file(tls_server: TlsServer) -> None:
    with Conduit.connect(tls_server.target, ca_file=tls_server.ca) as conduit:
        assert conduit.tags.list() == ["grpc", "python"]


def test_the_ca_file_can_come_from_the_environment(tls_server: TlsServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_CA_FILE", str(tls_server.ca))
    with Conduit.connect(tls_server.target) as conduit:
        assert conduit.tags.list() == ["grpc", "python"]


def test_tls_is_on_by_default_and_refuses_an_untrusted_server(tls_server: TlsServer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONDUIT_CA_FILE", raising=False)
    with Conduit.connect(tls_server.target, retry=NO_RETRY, timeout=3) as conduit, pytest.raises(Unavailable):
        conduit.tags.list()
    assert tls_server.tags.calls == 0


def test_plaintext_is_explicit(serve: Serve, tls_server: TlsServer) -> None:
    with pytest.raises(ValueError, match="tls=True"):
        Conduit.connect(tls_server.target, tls=False, ca_file=tls_server.ca)
    with Conduit.connect(tls_server.target, tls=False, retry=NO_RETRY, timeout=3) as conduit, \
            pytest.raises(Unavailable):
        conduit.tags.list()
    plain = serve((articles_pb2_grpc.add_TagsServiceServicer_to_server, ScriptedTags()))
    with Conduit.connect(plain.target, tls=False) as conduit:
        assert conduit.tags.list() == ["grpc", "python"]


async def test_the_async_client_uses_tls_the_same_way(tls_server: TlsServer) -> None:
    async with await AsyncConduit.connect(tls_server.target, ca_file=str(tls_server.ca)) as conduit:
        assert await conduit.tags.list() == ["grpc", "python"]


def test_from_env_reads_target_ca_file_and_token(tls_server: TlsServer) -> None:
    environ = {"CONDUIT_TARGET": tls_server.target, "CONDUIT_CA_FILE": str(tls_server.ca),
               "CONDUIT_TOKEN": "jwt-env"}
    with testing.from_env(environ=environ) as conduit:
        assert conduit.tags.list() == ["grpc", "python"]
    assert tls_server.tags.authorization == ["Bearer jwt-env"]


async def test_async_from_env_supports_plaintext(serve: Serve) -> None:
    tags = ScriptedTags()
    plain = serve((articles_pb2_grpc.add_TagsServiceServicer_to_server, tags))
    conduit = await testing.async_from_env(environ={"CONDUIT_TARGET": plain.target, "CONDUIT_TLS": "0"})
    async with conduit:
        assert await conduit.tags.list() == ["grpc", "python"]


if TYPE_CHECKING:  # generic only in the stubs
    _Interceptor = grpc.UnaryUnaryClientInterceptor[Any, Any]
    _AsyncInterceptor = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
else:
    _Interceptor = grpc.UnaryUnaryClientInterceptor
    _AsyncInterceptor = grpc.aio.UnaryUnaryClientInterceptor


class _Stamp(_Interceptor):
    """Adds a header to every call, as a caller's tracing interceptor would."""

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), ("x-stamp", "sync")]
        return continuation(details._replace(metadata=metadata), request)


class _AsyncStamp(_AsyncInterceptor):
    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any,
                                    request: Any) -> Any:
        details.metadata.add("x-stamp", "async")
        return await continuation(details, request)


class _Headers(articles_pb2_grpc.TagsServiceServicer):
    def __init__(self) -> None:
        self.seen: list[dict[str, str | bytes]] = []

    def ListTags(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.seen.append(dict(context.invocation_metadata()))
        return ScriptedTags().ListTags(request, context)


async def test_caller_interceptors_see_every_call_with_the_token(serve: Serve) -> None:
    headers = _Headers()
    server = serve((articles_pb2_grpc.add_TagsServiceServicer_to_server, headers))
    with Conduit.connect(server.target, tls=False, token="t", interceptors=[_Stamp()]) as conduit:
        conduit.tags.list()
    async with await AsyncConduit.connect(server.target, tls=False, token="t",
                                          interceptors=[_AsyncStamp()]) as aconduit:
        await aconduit.tags.list()
    assert [(h["x-stamp"], h["authorization"]) for h in headers.seen] == [("sync", "Bearer t"),
                                                                          ("async", "Bearer t")]
    assert all("conduit-client-python/" in str(h["user-agent"]) for h in headers.seen)


def test_ca_file_paths_may_be_path_objects(tls_server: TlsServer) -> None:
    with Conduit.connect(tls_server.target, ca_file=Path(tls_server.ca)) as conduit:
        assert conduit.tags.list()
