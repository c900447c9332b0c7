"""OAuth2 client-credentials grant (RFC 6749 §4.4) for service accounts.

`token_request` reads the request the way RFC 6749 allows it to arrive:
form-encoded body or gRPC fields, client credentials in the body or as HTTP
Basic (§2.3.1), never both. `ClientCredentials.issue` authenticates the client
and mints a token with the granted scopes. Errors are RFC 6749 §5.2 codes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote_plus

from conduit_server.runtime.db import Database
from conduit_server.runtime.errors import OAuthError
from conduit_server.users.domain import refresh
from conduit_server.users.domain.signer import Signer
from conduit_server.users.repository import ServiceAccountRepository

GRANT_CLIENT_CREDENTIALS = "client_credentials"
_FORM_FIELDS = ("grant_type", "client_id", "client_secret", "scope")
# RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`.
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")
_MAX_FORM_BYTES = 4096
# Compared against when the client id is unknown, so both paths cost the same.
_DUMMY_SECRET_HASH = refresh.hash_client_secret("conduit-no-such-client")


@dataclass(frozen=True)
class TokenRequest:
    grant_type: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str


@dataclass(frozen=True)
class ServiceToken:
    access_token: str = field(repr=False)
    expires_in_seconds: int
    scopes: tuple[str, ...]


def _parse_form(data: bytes) -> dict[str, str]:
    if len(data) > _MAX_FORM_BYTES:
        raise OAuthError("invalid_request", "request body is too large")
    try:
        pairs = parse_qsl(data.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "request body is not a valid form") from None
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:  # RFC 6749 §3.2: parameters MUST NOT be included more than once
            raise OAuthError("invalid_request", f"parameter {name} is repeated")
        values[name] = value
    return values


def _basic_credentials(authorization: str) -> tuple[str, str] | None:
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credential.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "malformed HTTP Basic credentials") from None
    client_id, separator, secret = decoded.partition(":")
    if not separator:
        raise OAuthError("invalid_client", "malformed HTTP Basic credentials")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


def token_request(*, form: bytes, fields: Mapping[str, str], authorization: str) -> TokenRequest:
    """The token request from a form body (REST) or fields (gRPC), plus optional HTTP Basic."""
    if form and any(fields.get(name) for name in _FORM_FIELDS):
        # With a form body, field values can only have come from the URL's query string, where
        # access logs and proxies would keep the secret: refuse instead of ignoring them.
        raise OAuthError("invalid_request", "send token parameters in the form body, not the URL")
    values = _parse_form(form) if form else {name: fields.get(name, "") for name in _FORM_FIELDS}
    basic = _basic_credentials(authorization) if authorization else None
    client_id, secret = values.get("client_id", ""), values.get("client_secret", "")
    if basic is not None:
        if secret or (client_id and client_id != basic[0]):
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        client_id, secret = basic
    grant_type = values.get("grant_type", "")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type != GRANT_CLIENT_CREDENTIALS:
        raise OAuthError("unsupported_grant_type", "only the client_credentials grant is supported")
    if not client_id or not secret:
        raise OAuthError("invalid_client", "client authentication is required")
    return TokenRequest(grant_type, client_id, secret, values.get("scope", ""))


def parse_scopes(scope: str) -> tuple[str, ...]:
    """The scope tokens of a space-separated scope string (RFC 6749 §3.3)."""
    tokens = scope.split()
    if any(not SCOPE_TOKEN.match(token) for token in tokens):
        raise OAuthError("invalid_scope", "scope is malformed")
    return tuple(dict.fromkeys(tokens))


class ClientCredentials:
    def __init__(self, database: Database, accounts: ServiceAccountRepository, signer: Signer) -> None:
        self._database = database
        self._accounts = accounts
        self._signer = signer

    async def issue(self, request: TokenRequest) -> ServiceToken:
        """A service-account token for an authenticated client, with the requested scopes it holds."""
        async with self._database.read() as session:
            account = await self._accounts.by_client_id(session, request.client_id[:128])
        stored = account.secret_hash if account is not None else _DUMMY_SECRET_HASH
        if (not refresh.verify_client_secret(request.client_secret, stored) or account is None
                or account.revoked_at is not None):
            raise OAuthError("invalid_client", "client authentication failed")
        allowed = set(account.scopes)
        requested = parse_scopes(request.scope)
        if not requested:
            granted = tuple(sorted(allowed))
        elif set(requested) <= allowed:
            granted = tuple(sorted(requested))
        else:
            raise OAuthError("invalid_scope", "a requested scope is not granted to this client")
        token, _ = self._signer.mint_for_service(account.client_id, granted)
        return ServiceToken(token, self._signer.policy.access_ttl_seconds, granted)


__all__ = ["GRANT_CLIENT_CREDENTIALS", "SCOPE_TOKEN", "ClientCredentials", "ServiceToken", "TokenRequest",
           "parse_scopes", "token_request"]
