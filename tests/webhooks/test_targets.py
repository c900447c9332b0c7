"""SSRF protection: where deliveries may go, at registration (RPC) and in the policy itself."""

from __future__ import annotations

import grpc
import pytest

from conduit.webhooks.v1 import webhooks_pb2
from conduit_server.webhooks.domain.targets import TargetPolicy, TargetRefused
from conduit_server.webhooks.repository.receivers import resolve
from tests.fixtures.users import UsersServer
from tests.support import details
from tests.webhooks.conftest import Webhooks, start_webhooks

STRICT = TargetPolicy.of(allow_http=False, allowed_networks=[])
HTTP = TargetPolicy.of(allow_http=True, allowed_networks=[])


@pytest.mark.parametrize(("url", "reason"), [
    ("http://169.254.169.254/latest/meta-data/", "link-local address 169.254.169.254"),
    ("http://10.0.0.1/hook", "private address 10.0.0.1"),
    ("http://192.168.1.20/hook", "private address 192.168.1.20"),
    ("http://127.0.0.1:8080/hook", "loopback address 127.0.0.1"),
    ("http://0.0.0.0/hook", "unspecified address 0.0.0.0"),
    ("http://224.0.0.1/hook", "multicast address 224.0.0.1"),
    ("http://100.64.0.1/hook", "non-public address 100.64.0.1"),
    ("http://[::1]/hook", "loopback address ::1"),
    ("http://[fe80::1]/hook", "link-local address fe80::1"),
    ("http://[::ffff:10.0.0.1]/hook", "private address 10.0.0.1 (embedded in IPv6 address ::ffff:a00:1)"),
    ("http://[::ffff:169.254.169.254]/", "link-local address 169.254.169.254 (embedded in IPv6 address"),
    ("http://[2002:7f00:1::]/hook", "loopback address 127.0.0.1 (embedded in IPv6 address 2002:7f00:1::)"),
    ("http://[64:ff9b::a00:1]/hook", "private address 10.0.0.1 (embedded in IPv6 address 64:ff9b::a00:1)"),
])
async def test_non_public_addresses_are_refused_in_every_form(url: str, reason: str) -> None:
    with pytest.raises(TargetRefused, match=r"not allowed") as refused:
        await HTTP.check(url, resolve)
    assert reason in str(refused.value)


async def test_a_host_resolving_to_loopback_is_refused_unless_allowed() -> None:
    with pytest.raises(TargetRefused) as refused:
        await HTTP.check("http://localhost:9/hook", resolve)  # the system resolver, for real
    assert "host localhost resolves to loopback address" in str(refused.value)
    allowed = TargetPolicy.of(allow_http=True, allowed_networks=["127.0.0.0/8", "::1/128"])
    target = await allowed.check("http://localhost:9/hook", resolve)
    assert target.address in {"127.0.0.1", "::1"}
    assert target.host == "localhost"
    assert target.port == 9


@pytest.mark.parametrize(("url", "reason"), [
    ("http://example.com/hook", "only https URLs are allowed"),
    ("ftp://example.com/hook", "only https URLs are allowed"),
    ("https:///nohost", "the URL has no host"),
    ("https://user:pw@example.com/", "credentials in the URL are not allowed"),
    ("https://example.com:99999/", "not a valid URL"),
    ("https://no-such-host.invalid/", "host no-such-host.invalid does not resolve"),
])
async def test_urls_of_the_wrong_form_are_refused(url: str, reason: str) -> None:
    with pytest.raises(TargetRefused, match=reason):
        await STRICT.check(url, resolve)


async def test_an_allowed_network_admits_exactly_its_addresses() -> None:
    policy = TargetPolicy.of(allow_http=False, allowed_networks=["10.20.0.0/16"])
    assert policy.refusal("10.20.3.4") is None
    assert policy.refusal("10.21.0.1") == "private address 10.21.0.1"
    assert policy.refusal("::ffff:10.20.3.4") is None  # the mapped form of an allowed address
    assert policy.refusal("93.184.216.34") is None  # public


@pytest.mark.parametrize(("url", "reason"), [
    ("http://169.254.169.254/latest/meta-data/",
     "the host is a link-local address 169.254.169.254, which is not allowed"),
    ("http://10.0.0.1/hook", "the host is a private address 10.0.0.1, which is not allowed"),
])
async def test_registering_an_internal_address_is_invalid_argument_naming_the_reason(
        webhooks: Webhooks, url: str, reason: str) -> None:
    owner = await webhooks.mesh.person("ssrf")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await webhooks.register(owner, url)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = details(refused.value)
    assert found["ErrorInfo"].reason == "WEBHOOK_TARGET_REFUSED"
    [violation] = found["BadRequest"].field_violations
    assert (violation.field, violation.description) == ("url", reason)
    assert list((await webhooks.stub.ListEndpoints(webhooks_pb2.ListEndpointsRequest(),
                                                   metadata=owner.auth)).endpoints) == []


async def test_without_the_allow_list_a_loopback_host_is_refused_at_registration(
        webhooks: Webhooks, postgres_url: str, redis_url: str, users_server: UsersServer) -> None:
    app, server, _, channel = await start_webhooks(postgres_url, redis_url, users_server, allowed_networks=[])
    try:
        strict = Webhooks(app, webhooks.mesh, channel, webhooks.clock)
        owner = await webhooks.mesh.person("loopback")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await strict.register(owner, "http://localhost:8080/hook")
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "host localhost resolves to loopback address" in (refused.value.details() or "")
    finally:
        await channel.close(None)
        await server.stop()
        await server.users_channel.close(None)  # type: ignore[attr-defined]


async def test_unknown_event_types_are_refused(webhooks: Webhooks) -> None:
    owner = await webhooks.mesh.person("types")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await webhooks.register(owner, "http://127.0.0.1:9/hook", ["article.created", "article.exploded"])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown event type 'article.exploded'" in (refused.value.details() or "")
