"""gRPC servicers of conduit.users.v1: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from conduit.users.v1 import users_pb2, users_pb2_grpc
from conduit_server.runtime.auth import client_ip, current_principal, require_principal
from conduit_server.runtime.errors import OAuthError, PermissionDenied
from conduit_server.users.domain.accounts import Accounts, Changes, Directory, Profile, Profiles, SignedIn
from conduit_server.users.domain.admin import Roles, ServiceAccountInfo, ServiceAccounts
from conduit_server.users.domain.oauth import ClientCredentials, token_request
from conduit_server.users.domain.oidc import OidcLogin
from conduit_server.users.domain.sessions import Session, Sessions
from conduit_server.users.domain.signer import Signer

_FORM_TYPE = "application/x-www-form-urlencoded"
# The browser binding of an OpenID Connect sign-in: __Host- (Secure, Path=/, no Domain); Lax so that
# the provider's top-level redirect back brings it.
OIDC_COOKIE = "__Host-conduit-oidc"
_BEARER = "Bearer"


def _metadata(context: Any) -> dict[str, str]:
    return {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}


def oidc_cookie(value: str, max_age_seconds: int) -> str:
    """The Set-Cookie value carrying (or, with max age 0, clearing) the sign-in binding."""
    return f"{OIDC_COOKIE}={value}; Path=/; Max-Age={max_age_seconds}; HttpOnly; Secure; SameSite=Lax"


def cookie_value(header: str, name: str) -> str:
    """The value of cookie `name` in a Cookie header; "" when absent."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def _user_id() -> int:
    principal = require_principal()
    if principal.user_id is None:
        raise PermissionDenied("service accounts have no user account", reason="USER_ONLY")
    return principal.user_id


def _viewer_id() -> int | None:
    principal = current_principal()
    return principal.user_id if principal is not None else None


def _seconds_until(moment: datetime) -> int:
    return max(0, round((moment - datetime.now(UTC)).total_seconds()))


def _user(signed_in: SignedIn) -> users_pb2.User:
    account = signed_in.account
    return users_pb2.User(email=account.email, token=signed_in.access_token, username=account.username,
                          bio=account.bio, image=account.image)


def _profile(profile: Profile) -> users_pb2.Profile:
    return users_pb2.Profile(username=profile.username, bio=profile.bio, image=profile.image,
                             following=profile.following)


def _session(session: Session) -> users_pb2.Session:
    return users_pb2.Session(access_token=session.signed_in.access_token,
                             expires_in_seconds=_seconds_until(session.signed_in.expires_at),
                             refresh_token=session.refresh_token,
                             refresh_expires_in_seconds=_seconds_until(session.refresh_expires_at))


def _service_account(info: ServiceAccountInfo) -> users_pb2.ServiceAccount:
    return users_pb2.ServiceAccount(client_id=info.client_id, name=info.name, scopes=info.scopes,
                                    revoked=info.revoked)


class UsersApi(users_pb2_grpc.UsersServiceServicer):
    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    async def CreateUser(self, request: users_pb2.CreateUserRequest, context: Any
                         ) -> users_pb2.CreateUserResponse:
        new = request.user
        signed_in = await self._accounts.register(username=new.username, email=new.email,
                                                  password=new.password, client_ip=client_ip(context))
        return users_pb2.CreateUserResponse(user=_user(signed_in))

    async def Login(self, request: users_pb2.LoginRequest, context: Any) -> users_pb2.LoginResponse:
        signed_in = await self._accounts.login(email=request.user.email, password=request.user.password,
                                               client_ip=client_ip(context))
        return users_pb2.LoginResponse(user=_user(signed_in))

    async def GetCurrentUser(self, request: users_pb2.GetCurrentUserRequest, context: Any
                             ) -> users_pb2.GetCurrentUserResponse:
        return users_pb2.GetCurrentUserResponse(user=_user(await self._accounts.current(_user_id())))

    async def UpdateCurrentUser(self, request: users_pb2.UpdateCurrentUserRequest, context: Any
                                ) -> users_pb2.UpdateCurrentUserResponse:
        user = request.user
        # proto3 cannot tell "" from absent; RealWorld frontends send "" for untouched fields.
        changes = Changes(email=user.email or None, username=user.username or None,
                          password=user.password or None, bio=user.bio or None, image=user.image or None)
        signed_in = await self._accounts.update(_user_id(), changes)
        return users_pb2.UpdateCurrentUserResponse(user=_user(signed_in))


class ProfilesApi(users_pb2_grpc.ProfilesServiceServicer):
    def __init__(self, profiles: Profiles) -> None:
        self._profiles = profiles

    async def GetProfile(self, request: users_pb2.GetProfileRequest, context: Any
                         ) -> users_pb2.GetProfileResponse:
        profile = await self._profiles.get(request.username, _viewer_id())
        return users_pb2.GetProfileResponse(profile=_profile(profile))

    async def FollowProfile(self, request: users_pb2.FollowProfileRequest, context: Any
                            ) -> users_pb2.FollowProfileResponse:
        profile = await self._profiles.follow(_user_id(), request.username)
        return users_pb2.FollowProfileResponse(profile=_profile(profile))

    async def UnfollowProfile(self, request: users_pb2.UnfollowProfileRequest, context: Any
                              ) -> users_pb2.UnfollowProfileResponse:
        profile = await self._profiles.unfollow(_user_id(), request.username)
        return users_pb2.UnfollowProfileResponse(profile=_profile(profile))


class AuthApi(users_pb2_grpc.AuthServiceServicer):
    def __init__(self, sessions: Sessions, client_credentials: ClientCredentials, signer: Signer,
                 oidc: OidcLogin) -> None:
        self._sessions = sessions
        self._client_credentials = client_credentials
        self._signer = signer
        self._oidc = oidc

    async def CreateSession(self, request: users_pb2.CreateSessionRequest, context: Any
                            ) -> users_pb2.CreateSessionResponse:
        session = await self._sessions.create(email=request.user.email, password=request.user.password,
                                              client_ip=client_ip(context))
        return users_pb2.CreateSessionResponse(user=_user(session.signed_in), session=_session(session))

    async def RefreshSession(self, request: users_pb2.RefreshSessionRequest, context: Any
                             ) -> users_pb2.RefreshSessionResponse:
        session = await self._sessions.refresh(request.refresh_token)
        return users_pb2.RefreshSessionResponse(session=_session(session))

    async def RevokeSession(self, request: users_pb2.RevokeSessionRequest, context: Any
                            ) -> users_pb2.RevokeSessionResponse:
        await self._sessions.revoke(request.refresh_token)
        return users_pb2.RevokeSessionResponse()

    async def RevokeAllSessions(self, request: users_pb2.RevokeAllSessionsRequest, context: Any
                                ) -> users_pb2.RevokeAllSessionsResponse:
        await self._sessions.revoke_all(_user_id())
        return users_pb2.RevokeAllSessionsResponse()

    async def CreateOAuthToken(self, request: users_pb2.CreateOAuthTokenRequest, context: Any
                               ) -> users_pb2.CreateOAuthTokenResponse:
        form = request.form if request.HasField("form") else None
        if form is not None and form.content_type and not form.content_type.startswith(_FORM_TYPE):
            raise OAuthError("invalid_request", f"the body must be {_FORM_TYPE}")
        parsed = token_request(
            form=form.data if form is not None else b"",
            fields={"grant_type": request.grant_type, "client_id": request.client_id,
                    "client_secret": request.client_secret, "scope": request.scope},
            authorization=_metadata(context).get("authorization", ""))
        token = await self._client_credentials.issue(parsed)
        # RFC 6749 §5.1: token responses must not be cached.
        await context.send_initial_metadata((("cache-control", "no-store"), ("pragma", "no-cache")))
        return users_pb2.CreateOAuthTokenResponse(access_token=token.access_token, token_type=_BEARER,
                                                  expires_in=token.expires_in_seconds,
                                                  scope=" ".join(token.scopes))

    async def GetJwks(self, request: users_pb2.GetJwksRequest, context: Any) -> users_pb2.GetJwksResponse:
        return users_pb2.GetJwksResponse(keys=[users_pb2.Jwk(**key) for key in self._signer.jwks()["keys"]])

    async def StartOidcLogin(self, request: users_pb2.StartOidcLoginRequest, context: Any
                             ) -> users_pb2.StartOidcLoginResponse:
        started = await self._oidc.start()
        # The gateway answers REST callers 302 (http_success_status) with these two headers.
        await context.send_initial_metadata((
            ("location", started.authorization_url),
            ("set-cookie", oidc_cookie(started.binding, self._oidc.state_ttl_seconds))))
        return users_pb2.StartOidcLoginResponse(authorization_url=started.authorization_url)

    async def CompleteOidcLogin(self, request: users_pb2.CompleteOidcLoginRequest, context: Any
                                ) -> users_pb2.CompleteOidcLoginResponse:
        signed_in = await self._oidc.complete(
            code=request.code, state=request.state, issuer=request.iss, error=request.error,
            error_description=request.error_description,
            binding=cookie_value(_metadata(context).get("cookie", ""), OIDC_COOKIE))
        await context.send_initial_metadata((("set-cookie", oidc_cookie("", 0)),))
        return users_pb2.CompleteOidcLoginResponse(user=_user(signed_in))


class AdminApi(users_pb2_grpc.AdminServiceServicer):
    def __init__(self, roles: Roles, service_accounts: ServiceAccounts) -> None:
        self._roles = roles
        self._service_accounts = service_accounts

    async def ListUserRoles(self, request: users_pb2.ListUserRolesRequest, context: Any
                            ) -> users_pb2.ListUserRolesResponse:
        return users_pb2.ListUserRolesResponse(roles=await self._roles.held(request.username))

    async def GrantRole(self, request: users_pb2.GrantRoleRequest, context: Any
                        ) -> users_pb2.GrantRoleResponse:
        return users_pb2.GrantRoleResponse(roles=await self._roles.grant(request.username, request.role))

    async def RevokeRole(self, request: users_pb2.RevokeRoleRequest, context: Any
                         ) -> users_pb2.RevokeRoleResponse:
        return users_pb2.RevokeRoleResponse(roles=await self._roles.revoke(request.username, request.role))

    async def CreateServiceAccount(self, request: users_pb2.CreateServiceAccountRequest, context: Any
                                   ) -> users_pb2.CreateServiceAccountResponse:
        info, secret = await self._service_accounts.create(request.name, list(request.scopes))
        return users_pb2.CreateServiceAccountResponse(service_account=_service_account(info),
                                                      client_secret=secret)

    async def ListServiceAccounts(self, request: users_pb2.ListServiceAccountsRequest, context: Any
                                  ) -> users_pb2.ListServiceAccountsResponse:
        return users_pb2.ListServiceAccountsResponse(
            service_accounts=[_service_account(info) for info in await self._service_accounts.all()])

    async def RevokeServiceAccount(self, request: users_pb2.RevokeServiceAccountRequest, context: Any
                                   ) -> users_pb2.RevokeServiceAccountResponse:
        await self._service_accounts.revoke(request.client_id)
        return users_pb2.RevokeServiceAccountResponse()


class DirectoryApi(users_pb2_grpc.UserDirectoryServiceServicer):
    def __init__(self, directory: Directory) -> None:
        self._directory = directory

    async def BatchGetProfiles(self, request: users_pb2.BatchGetProfilesRequest, context: Any
                               ) -> users_pb2.BatchGetProfilesResponse:
        profiles = await self._directory.profiles(list(request.user_ids), request.viewer_id or None)
        response = users_pb2.BatchGetProfilesResponse()
        for user_id, profile in profiles.items():
            response.profiles[user_id].CopyFrom(_profile(profile))
        return response

    async def ResolveUsernames(self, request: users_pb2.ResolveUsernamesRequest, context: Any
                               ) -> users_pb2.ResolveUsernamesResponse:
        return users_pb2.ResolveUsernamesResponse(
            user_ids=await self._directory.resolve(list(request.usernames)))

    async def ListFolloweeIds(self, request: users_pb2.ListFolloweeIdsRequest, context: Any
                              ) -> users_pb2.ListFolloweeIdsResponse:
        return users_pb2.ListFolloweeIdsResponse(
            followee_ids=await self._directory.followee_ids(request.user_id))


__all__ = ["AdminApi", "AuthApi", "DirectoryApi", "ProfilesApi", "UsersApi", "client_ip"]
