"""OAuth2 client credentials (RFC 6749 §4.4) for service accounts, and RFC 6749 §5.2 errors."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit.users.v1 import users_pb2
from conduit_server.runtime import errors
from conduit_server.runtime.auth import rules_for
from conduit_server.runtime.server import Binding, GrpcServer
from conduit_server.users import cli
from tests.fixtures.users import INTERNAL_TOKEN, UsersServer, settings_for, unique_name
from tests.support import details, trailers

from .support import fails

FORM = "application/x-www-form-urlencoded"
IMPORT = "/conduit.articles.v1.ArticlesService/ImportArticles"


async def create_account(users_server: UsersServer, scopes: list[str]) -> tuple[str, str]:
    info, secret = await users_server.app.service_accounts.create(unique_name("svc"), scopes)
    return info.client_id, secret


def token_request(**fields: str) -> users_pb2.CreateOAuthTokenRequest:
    return users_pb2.CreateOAuthTokenRequest(**fields)


def oauth_error(error: grpc.aio.AioRpcError) -> dict[str, str]:
    body: dict[str, str] = json.loads(trailers(error)[errors.OAUTH_ERROR_KEY])
    info = details(error)["ErrorInfo"]
    assert (info.domain, info.reason) == (errors.OAUTH_ERROR_DOMAIN, body["error"])
    return body


async def test_valid_client_gets_a_service_token_with_only_the_requested_granted_scopes(
        users_server: UsersServer) -> None:
    client_id, secret = await create_account(users_server, ["articles.import", "profiles.read"])
    response = await users_server.auth_service.CreateOAuthToken(token_request(
        grant_type="client_credentials", client_id=client_id, client_secret=secret, scope="articles.import"))
    assert (response.token_type, response.scope) == ("Bearer", "articles.import")
    assert response.expires_in == users_server.app.settings.access_token_ttl_seconds
    principal = await users_server.app.verifier.verify(response.access_token)
    assert principal.is_service
    assert principal.subject == f"sa:{client_id}"
    assert principal.scopes == frozenset({"articles.import"})
    assert principal.roles == frozenset()
    everything = await users_server.auth_service.CreateOAuthToken(token_request(
        grant_type="client_credentials", client_id=client_id, client_secret=secret))
    assert everything.scope == "articles.import profiles.read"  # no scope asked: all it holds


async def test_wrong_secret_unknown_client_and_revoked_client_are_invalid_client(
        users_server: UsersServer) -> None:
    client_id, secret = await create_account(users_server, ["articles.import"])
    cases = [(client_id, secret + "x"), ("sa_unknown", secret)]
    await users_server.app.service_accounts.revoke((revoked := await create_account(users_server, []))[0])
    cases.append(revoked)
    for attempt_id, attempt_secret in cases:
        error = await fails(users_server.auth_service.CreateOAuthToken(token_request(
            grant_type="client_credentials", client_id=attempt_id, client_secret=attempt_secret)),
            grpc.StatusCode.UNAUTHENTICATED)
        assert oauth_error(error) == {"error": "invalid_client",
                                      "error_description": "client authentication failed"}


async def test_a_scope_the_client_does_not_hold_is_invalid_scope(users_server: UsersServer) -> None:
    client_id, secret = await create_account(users_server, ["profiles.read"])
    error = await fails(users_server.auth_service.CreateOAuthToken(token_request(
        grant_type="client_credentials", client_id=client_id, client_secret=secret,
        scope="profiles.read articles.import")), grpc.StatusCode.INVALID_ARGUMENT)
    assert oauth_error(error)["error"] == "invalid_scope"


async def test_the_rest_form_body_and_http_basic_credentials_are_accepted(users_server: UsersServer) -> None:
    client_id, secret = await create_account(users_server, ["profiles.read"])
    form = httpbody_pb2.HttpBody(content_type=FORM, data=b"grant_type=client_credentials&scope=profiles.read")
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    response = await users_server.auth_service.CreateOAuthToken(
        users_pb2.CreateOAuthTokenRequest(form=form), metadata=(("authorization", f"Basic {basic}"),))
    assert response.scope == "profiles.read"
    form.data = f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}".encode()
    call = users_server.auth_service.CreateOAuthToken(users_pb2.CreateOAuthTokenRequest(form=form))
    assert (await call).token_type == "Bearer"
    assert ("cache-control", "no-store") in list(await call.initial_metadata())


@pytest.mark.parametrize(("form", "authorization", "expected"), [
    (b"grant_type=password&client_id=a&client_secret=b", "", "unsupported_grant_type"),
    (b"client_id=a&client_secret=b", "", "invalid_request"),
    (b"grant_type=client_credentials&grant_type=client_credentials&client_id=a&client_secret=b", "",
     "invalid_request"),
    (b"grant_type=client_credentials", "", "invalid_client"),
    (b"grant_type=client_credentials&client_secret=b", "Basic YTpi", "invalid_request"),
    (b"grant_type=client_credentials", "Basic !!!", "invalid_client"),
])
async def test_malformed_token_requests_get_rfc6749_errors(users_server: UsersServer, form: bytes,
                                                           authorization: str, expected: str) -> None:
    metadata = (("authorization", authorization),) if authorization else ()
    code = (grpc.StatusCode.UNAUTHENTICATED if expected == "invalid_client"
            else grpc.StatusCode.INVALID_ARGUMENT)
    error = await fails(users_server.auth_service.CreateOAuthToken(users_pb2.CreateOAuthTokenRequest(
        form=httpbody_pb2.HttpBody(content_type=FORM, data=form)), metadata=metadata), code)
    assert oauth_error(error)["error"] == expected


def test_oauth_error_maps_to_its_code_with_the_rfc_body_in_trailing_metadata() -> None:
    for error, code in ((errors.OAuthError("invalid_client", "client authentication failed"),
                         grpc.StatusCode.UNAUTHENTICATED),
                        (errors.OAuthError("invalid_scope", "no"), grpc.StatusCode.INVALID_ARGUMENT)):
        payload = errors.to_status(error)
        assert payload.code == code
        metadata = dict(payload.trailing_metadata)
        assert json.loads(str(metadata[errors.OAUTH_ERROR_KEY])) == {
            "error": error.error, "error_description": error.message}
        assert str(metadata[errors.OAUTH_ERROR_KEY]).startswith(f'{{"error":"{error.error}"')
        info = details(payload.trailing_metadata)["ErrorInfo"]
        assert (info.domain, info.reason) == ("oauth2", error.error)
    assert errors.OAUTH_ERROR_KEY not in dict(errors.to_status(errors.NotFound("x")).trailing_metadata)


async def test_scope_guarded_rule_rejects_a_service_token_without_the_scope(users_server: UsersServer
                                                                            ) -> None:
    rule = rules_for([articles_pb2.DESCRIPTOR.services_by_name["ArticlesService"]])[IMPORT]
    client_id, secret = await create_account(users_server, ["articles.import", "profiles.read"])
    principals = {}
    for scope in ("profiles.read", "articles.import"):
        response = await users_server.auth_service.CreateOAuthToken(token_request(
            grant_type="client_credentials", client_id=client_id, client_secret=secret, scope=scope))
        principals[scope] = await users_server.app.verifier.verify(response.access_token)
    with pytest.raises(errors.PermissionDenied, match=r"articles\.import"):
        rule.check(principals["profiles.read"])
    rule.check(principals["articles.import"])


class Importer(articles_pb2_grpc.ArticlesServiceServicer):
    """Answers ImportArticles only, so the rule is exercised through a real server."""

    async def ImportArticles(self, request_iterator: Any, context: Any
                             ) -> articles_pb2.ImportArticlesResponse:
        return articles_pb2.ImportArticlesResponse()


class _ImporterApp:
    name = "importer"

    def bindings(self) -> list[Binding]:
        return [Binding(articles_pb2.DESCRIPTOR.services_by_name["ArticlesService"],
                        articles_pb2_grpc.add_ArticlesServiceServicer_to_server, Importer())]  # type: ignore[abstract]

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.fixture
async def importer(users_server: UsersServer) -> AsyncIterator[articles_pb2_grpc.ArticlesServiceAsyncStub]:
    server = GrpcServer(_ImporterApp(), host="127.0.0.1", port=0, verifier=users_server.app.verifier,
                        internal_token=INTERNAL_TOKEN, grace_seconds=0.5)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield articles_pb2_grpc.ArticlesServiceStub(channel)
    await channel.close(None)
    await server.stop()


async def test_scope_guarded_rpc_answers_permission_denied_without_the_scope(
        users_server: UsersServer, importer: articles_pb2_grpc.ArticlesServiceAsyncStub) -> None:
    client_id, secret = await create_account(users_server, ["articles.import", "profiles.read"])
    tokens = {}
    for scope in ("profiles.read", "articles.import"):
        response = await users_server.auth_service.CreateOAuthToken(token_request(
            grant_type="client_credentials", client_id=client_id, client_secret=secret, scope=scope))
        tokens[scope] = response.access_token

    async def items() -> AsyncIterator[articles_pb2.ImportArticlesRequest]:
        yield articles_pb2.ImportArticlesRequest()

    await fails(importer.ImportArticles(items(), metadata=users_server.auth(tokens["profiles.read"])),
                grpc.StatusCode.PERMISSION_DENIED)
    bearer = f"Bearer {tokens['articles.import']}"
    await importer.ImportArticles(items(), metadata=(("authorization", bearer),))


async def test_cli_creates_lists_and_revokes_service_accounts_showing_the_secret_once(
        users_server: UsersServer, postgres_url: str, redis_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    settings = settings_for(postgres_url, redis_url)

    async def run(*argv: str) -> str:
        args = parser.parse_args(list(argv))
        await asyncio.to_thread(args.handler, args, settings)
        return capsys.readouterr().out

    name = unique_name("indexer")
    created = await run("service-accounts", "create", "--name", name, "--scope", "articles.import")
    fields = dict(line.split(":", 1) for line in created.splitlines() if line.startswith("client_"))
    client_id, secret = fields["client_id"].strip(), fields["client_secret"].strip()
    assert secret.startswith("cst_")
    listing = await run("service-accounts", "list")
    assert f"{client_id}  active" in listing
    assert secret not in listing
    response = await users_server.auth_service.CreateOAuthToken(token_request(
        grant_type="client_credentials", client_id=client_id, client_secret=secret))
    assert response.scope == "articles.import"
    await run("service-accounts", "revoke", client_id)
    assert f"{client_id}  revoked" in await run("service-accounts", "list")
    await fails(users_server.auth_service.CreateOAuthToken(token_request(
        grant_type="client_credentials", client_id=client_id, client_secret=secret)),
        grpc.StatusCode.UNAUTHENTICATED)


async def test_secrets_in_the_url_next_to_a_form_body_are_refused(users_server: UsersServer) -> None:
    client_id, secret = await create_account(users_server, ["articles.import"])
    form = f"grant_type=client_credentials&client_id={client_id}".encode()
    # What the transcoder makes of `POST /api/oauth/token?client_secret=...` with a form body.
    request = users_pb2.CreateOAuthTokenRequest(form=httpbody_pb2.HttpBody(content_type=FORM, data=form),
                                                client_secret=secret)
    error = await fails(users_server.auth_service.CreateOAuthToken(request), grpc.StatusCode.INVALID_ARGUMENT)
    assert oauth_error(error)["error"] == "invalid_request"
