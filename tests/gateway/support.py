"""A real Envoy in front of a tiny in-test gRPC server, and the tokens to call it with."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.events
import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2_grpc

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit.realtime.v1 import realtime_pb2, realtime_pb2_grpc
from conduit.users.v1 import users_pb2, users_pb2_grpc
from conduit_server.runtime.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    RateLimited,
    StatusPayload,
    to_status,
)

REPO = Path(__file__).resolve().parents[2]
DESCRIPTOR = REPO / "gateway" / "conduit.binpb"
ENVOY = REPO / ".venv" / "bin" / "envoy"
ISSUER = "conduit-gateway-test"
Context = grpc.aio.ServicerContext[object, object]
AUDIENCE = "conduit"
KEY_ID = "gateway-test-key"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class SigningKey:
    """A throwaway Ed25519 key, its JWKS and a minting function."""

    private_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def jwk(self) -> dict[str, str]:
        raw = self.private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                         serialization.PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": KEY_ID, "use": "sig", "alg": "EdDSA"}

    def jwks_json(self) -> str:
        return json.dumps({"keys": [self.jwk()]})

    def mint(self, *, audience: str = AUDIENCE, ttl_seconds: int = 600) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": audience, "sub": "user-1", "iat": now, "exp": now + ttl_seconds}
        return jwt.encode(claims, self.private_key, algorithm="EdDSA",
                          headers={"kid": KEY_ID, "typ": "at+jwt"})


_ERRORS: dict[str, StatusPayload] = {
    "rate-limited": to_status(RateLimited("too many attempts", retry_after_seconds=6.2)),
    "invalid": to_status(InvalidArgument([FieldViolation("article.title", "can't be blank")])),
}


class Tags(articles_pb2_grpc.TagsServiceServicer):
    def __init__(self) -> None:
        self.last_metadata: dict[str, str | bytes] = {}

    async def ListTags(self, request: articles_pb2.ListTagsRequest,
                       context: Context) -> articles_pb2.ListTagsResponse:
        self.last_metadata = dict(context.invocation_metadata() or ())
        return articles_pb2.ListTagsResponse(tags=["grpc", "envoy"])


class Articles(articles_pb2_grpc.ArticlesServiceServicer):
    """Errors are made by the services' own mapping (`to_status`), as the interceptor sends them."""

    async def GetArticle(self, request: articles_pb2.GetArticleRequest,
                         context: Context) -> articles_pb2.GetArticleResponse:
        if request.slug == "plain-error":
            # No x-conduit-error-body: the gateway falls back on grpc-message.
            await context.abort(grpc.StatusCode.ABORTED, "conflict, try again")
        payload = _ERRORS.get(request.slug) or to_status(NotFound("article not found"))
        await context.abort(payload.code, payload.message, payload.trailing_metadata)

    async def DeleteArticle(self, request: articles_pb2.DeleteArticleRequest,
                            context: Context) -> articles_pb2.DeleteArticleResponse:
        return articles_pb2.DeleteArticleResponse()

    async def CreateArticle(self, request: articles_pb2.CreateArticleRequest,
                            context: Context) -> articles_pb2.CreateArticleResponse:
        new = request.article
        return articles_pb2.CreateArticleResponse(article=articles_pb2.Article(
            slug="how-to-train-your-dragon", title=new.title, description=new.description,
            body=new.body[:64], tag_list=list(new.tag_list)))


    async def FavoriteArticle(self, request: articles_pb2.FavoriteArticleRequest,
                              context: Context) -> articles_pb2.FavoriteArticleResponse:
        return articles_pb2.FavoriteArticleResponse(article=articles_pb2.Article(slug=request.slug,
                                                                                 favorited=True))


class Users(users_pb2_grpc.UsersServiceServicer):
    """Echoes the user it is given; counts the calls that reached it."""

    def __init__(self) -> None:
        self.calls = 0

    async def CreateUser(self, request: users_pb2.CreateUserRequest,
                         context: Context) -> users_pb2.CreateUserResponse:
        self.calls += 1
        new = request.user
        return users_pb2.CreateUserResponse(user=users_pb2.User(email=new.email, username=new.username))

    async def UpdateCurrentUser(self, request: users_pb2.UpdateCurrentUserRequest,
                                context: Context) -> users_pb2.UpdateCurrentUserResponse:
        self.calls += 1
        change = request.user
        return users_pb2.UpdateCurrentUserResponse(user=users_pb2.User(
            email=change.email, username=change.username, bio=change.bio, image=change.image,
            token="password-was-set" if change.password else ""))


class Auth(users_pb2_grpc.AuthServiceServicer):
    def __init__(self, key: SigningKey) -> None:
        self.key = key
        self.jwks_calls = 0

    async def GetJwks(self, request: users_pb2.GetJwksRequest,
                      context: Context) -> users_pb2.GetJwksResponse:
        self.jwks_calls += 1
        return users_pb2.GetJwksResponse(keys=[users_pb2.Jwk(**self.key.jwk())])

    async def CreateOAuthToken(
        self, request: users_pb2.CreateOAuthTokenRequest, context: Context
    ) -> users_pb2.CreateOAuthTokenResponse:
        # What the users service sends for OAuth2 errors: ErrorInfo domain "oauth2" and the
        # RFC 6749 body in x-conduit-oauth-error.
        code, error, message = grpc.StatusCode.INVALID_ARGUMENT, "unsupported_grant_type", "unsupported grant"
        if b"grant_type=client_credentials" in request.form.data:
            code, error = grpc.StatusCode.UNAUTHENTICATED, "invalid_client"
            message = "client authentication failed"
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=error, domain="oauth2"))
        status = status_pb2.Status(code=code.value[0], message=message, details=[info])
        await context.abort(code, message, (
            ("grpc-status-details-bin", status.SerializeToString()),
            ("x-conduit-error-body", json.dumps({"errors": {"body": [message]}})),
            ("x-conduit-oauth-error", json.dumps({"error": error, "error_description": message},
                                                 separators=(",", ":"))),
        ))


class Realtime(realtime_pb2_grpc.RealtimeServiceServicer):
    """One heartbeat, then waits for the test to `release` the second one: proves streaming."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def WatchArticles(self, request: realtime_pb2.WatchArticlesRequest,
                            context: Context) -> AsyncIterator[realtime_pb2.WatchArticlesResponse]:
        heartbeat = realtime_pb2.Event(event_id="1", type=realtime_pb2.EVENT_TYPE_HEARTBEAT)
        yield realtime_pb2.WatchArticlesResponse(event=heartbeat)
        await self.release.wait()
        heartbeat.event_id = "2"
        yield realtime_pb2.WatchArticlesResponse(event=heartbeat)


class Directory(users_pb2_grpc.UserDirectoryServiceServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def BatchGetProfiles(
        self, request: users_pb2.BatchGetProfilesRequest, context: Context
    ) -> users_pb2.BatchGetProfilesResponse:
        self.calls += 1
        return users_pb2.BatchGetProfilesResponse()


@dataclass
class TinyServices:
    """The servicers of the in-test upstream, for assertions on what reached it."""

    tags: Tags
    auth: Auth
    directory: Directory
    realtime: Realtime
    users: Users
    port: int


@contextlib.asynccontextmanager
async def tiny_upstream(key: SigningKey) -> AsyncIterator[TinyServices]:
    server = grpc.aio.server()
    # The servicers implement only what the gateway tests call; the rest answer UNIMPLEMENTED.
    services = TinyServices(tags=Tags(), auth=Auth(key),  # type: ignore[abstract]
                            directory=Directory(), realtime=Realtime(),  # type: ignore[abstract]
                            users=Users(), port=0)  # type: ignore[abstract]
    realtime_pb2_grpc.add_RealtimeServiceServicer_to_server(services.realtime, server)
    articles_pb2_grpc.add_TagsServiceServicer_to_server(services.tags, server)
    articles_pb2_grpc.add_ArticlesServiceServicer_to_server(Articles(), server)  # type: ignore[abstract]
    users_pb2_grpc.add_AuthServiceServicer_to_server(services.auth, server)
    users_pb2_grpc.add_UsersServiceServicer_to_server(services.users, server)
    users_pb2_grpc.add_UserDirectoryServiceServicer_to_server(services.directory, server)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)  # type: ignore[attr-defined]
    services.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield services
    finally:
        await server.stop(grace=None)


class EnvoyProcess:
    """One Envoy running a config file; its output goes to a log file next to it."""

    def __init__(self, config_path: Path, admin_port: int) -> None:
        self.config_path = config_path
        self.admin_port = admin_port
        self.log_path = config_path.with_suffix(".log")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [str(ENVOY), "-c", str(self.config_path), "--concurrency", "1", "--disable-hot-restart",
             "--log-level", "warning", "--file-flush-interval-msec", "100"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
        )
        log.close()

    async def wait_ready(self, probes: Sequence[tuple[str, dict[str, str]]],
                         within_seconds: float = 20) -> None:
        """Wait until the admin says LIVE and every `(url, headers)` probe answers 2xx."""
        deadline = time.monotonic() + within_seconds
        pending = [(f"http://127.0.0.1:{self.admin_port}/ready", {}), *probes]
        async with httpx.AsyncClient(timeout=2, verify=False) as client:  # noqa: S501 - readiness only
            while pending:
                if self._process is not None and self._process.poll() is not None:
                    raise RuntimeError(f"envoy exited: {self.log_path.read_text(errors='replace')[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"envoy not ready: {pending[0][0]}\n"
                                       f"{self.log_path.read_text(errors='replace')[-3000:]}")
                url, headers = pending[0]
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url, headers=headers)).is_success:
                        pending.pop(0)
                        continue
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def access_log(self) -> list[dict[str, object]]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


def validate_config(config_path: Path, log_level: str = "error") -> subprocess.CompletedProcess[str]:
    """Run `envoy --mode validate` on a config file."""
    return subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(config_path), "--log-level", log_level],
        capture_output=True, text=True, timeout=60, check=False,
    )


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def h2_request(host: str, port: int, *, ca_cert: Path, method: str, path: str,
                     headers: dict[str, str], body: bytes) -> RawResponse:
    """One HTTP/2 request that reads the response while still sending, as browsers do.

    httpx finishes sending before it reads, so an early reply (413 to a large body, followed by
    RST_STREAM(NO_ERROR)) leaves it waiting for flow-control window that never comes.
    """
    context = ssl.create_default_context(cafile=str(ca_cert))
    context.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    stream_id = connection.get_next_available_stream_id()
    connection.send_headers(stream_id, [(":method", method), (":path", path), (":scheme", "https"),
                                        (":authority", f"{host}:{port}"), *headers.items()])
    response = RawResponse(status=0, headers={}, body=b"")
    sent, done = 0, False
    try:
        while not done:
            while sent < len(body) and connection.local_flow_control_window(stream_id) > 0:
                window = connection.local_flow_control_window(stream_id)
                size = min(window, connection.max_outbound_frame_size, len(body) - sent)
                connection.send_data(stream_id, body[sent:sent + size], end_stream=sent + size == len(body))
                sent += size
            writer.write(connection.data_to_send())
            await writer.drain()
            data = await asyncio.wait_for(reader.read(65536), timeout=10)
            if not data:
                break
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    response.headers = {k.decode(): v.decode() for k, v in event.headers}
                    response.status = int(response.headers[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    response.body += event.data
                    connection.acknowledge_received_data(event.flow_controlled_length, stream_id)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    done = True
    finally:
        writer.close()
    return response


async def raw_http1_request(host: str, port: int, *, ca_cert: Path, request_line: str,
                            headers: dict[str, str]) -> RawResponse:
    """One HTTP/1.1 request whose request line is sent exactly as given (clients normalise paths).

    Reads the response by its content-length: waiting for Envoy to close the connection would
    cost its delayed-close timeout (1 s).
    """
    context = ssl.create_default_context(cafile=str(ca_cert))
    context.set_alpn_protocols(["http/1.1"])
    reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    lines = [request_line, f"host: {host}:{port}", *(f"{name}: {value}" for name, value in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    try:
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        status_line, *header_lines = head.decode("latin-1").strip().split("\r\n")
        parsed = (line.split(":", 1) for line in header_lines)
        response_headers = {name.strip().lower(): value.strip() for name, value in parsed}
        length = int(response_headers.get("content-length", "0"))
        body = await asyncio.wait_for(reader.readexactly(length), timeout=10)
    finally:
        writer.close()
    return RawResponse(status=int(status_line.split()[1]), headers=response_headers, body=body)
