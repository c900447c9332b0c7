"""The graphql service's composition: channels to the mesh, the schema with its limits, the ASGI app.

    /graphql            POST (or GET) a document; WebSocket (graphql-transport-ws) for subscriptions;
                        GET with `Accept: text/html`: GraphiQL, when introspection is on
    /graphql/assets/…   GraphiQL's files, from the local npm cache (never a CDN)
    /healthz            200 while serving (Envoy's health check)

Callers' tokens are verified here from the users JWKS (as every service does), for the viewer id of
the profile look-ups and to refuse a bad token at once; the called RPCs verify them again and apply
their own rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mimetypes
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import strawberry
from graphql.validation import NoSchemaIntrospectionCustomRule
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import AddValidationRules, ParserCache, ValidationCache
from strawberry.extensions.query_depth_limiter import create_validator as create_depth_rule
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.types import ExecutionResult

from conduit_server.graphql.api import MAX_PAGE, Context, Mesh, Mutation, Query
from conduit_server.graphql.domain.limits import complexity_rule, query_size_limit
from conduit_server.graphql.domain.responses import Answer, ResponseCache, key_of
from conduit_server.graphql.domain.sharing import SharedSubscriptions
from conduit_server.graphql.events import SharingSchema, Subscription
from conduit_server.runtime.errors import ConduitError
from conduit_server.runtime.settings import GraphqlSettings
from conduit_server.runtime.tokens import AccessTokenVerifier, parse_authorization_header

log = logging.getLogger("conduit.graphql")
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
PATH = "/graphql"
# On answers to anonymous POSTs: `hit` when it came from the response cache, `miss` when executed.
CACHE_HEADER = b"x-conduit-cache"
ASSETS = f"{PATH}/assets/"
# GraphiQL 3 and React 18 as npm ships them (`make graphql-clients`): the only files served from disk.
ASSET_FILES = {
    "react.production.min.js": "react/umd/react.production.min.js",
    "react-dom.production.min.js": "react-dom/umd/react-dom.production.min.js",
    "graphiql.min.js": "graphiql/graphiql.min.js",
    "graphiql.min.css": "graphiql/graphiql.min.css",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Conduit GraphQL</title>
<link rel="stylesheet" href="/graphql/assets/graphiql.min.css">
<style>body{margin:0;height:100vh}#graphiql{height:100vh}</style></head>
<body><div id="graphiql">Loading GraphiQL…</div>
<script src="/graphql/assets/react.production.min.js"></script>
<script src="/graphql/assets/react-dom.production.min.js"></script>
<script src="/graphql/assets/graphiql.min.js"></script>
<script src="/graphql/assets/start.js"></script>
</body></html>
"""
START_JS = """const fetcher = GraphiQL.createFetcher({ url: '/graphql' });
ReactDOM.createRoot(document.getElementById('graphiql')).render(React.createElement(GraphiQL, { fetcher }));
"""


def default_assets_dir() -> Path:
    return Path.home() / ".cache" / "conduit" / "graphql-clients" / "node_modules"


def build_schema(config: GraphqlSettings) -> strawberry.Schema:
    """The schema with its limits. A document is parsed and validated once per distinct text (LRU caches of
    `config.documents_cached` entries), then only executed: clients send the same few documents over and
    over. The rules are built once so that the validation cache's key (document, rules) repeats; the depth
    rule is Strawberry's own (`QueryDepthLimiter` would make a new rule class, a new key, per request)."""
    rules: list[Any] = [create_depth_rule(config.max_depth, None),
                        complexity_rule(config.max_complexity, MAX_PAGE)]
    if not config.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription, extensions=[
        query_size_limit(config.max_query_bytes),
        # Factories: Strawberry makes a fresh extension per request.
        lambda: AddValidationRules(rules), lambda: ParserCache(maxsize=config.documents_cached),
        lambda: ValidationCache(maxsize=config.documents_cached)])


def sharing_handler(shared: SharedSubscriptions[ExecutionResult]) -> type[BaseGraphQLTransportWSHandler[Context, None]]:
    """Strawberry's graphql-transport-ws handler, its subscriptions shared through `shared`."""

    class SharingHandler(BaseGraphQLTransportWSHandler[Context, None]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # The handler calls only schema.stream(), which SharingSchema answers.
            self.schema = SharingSchema(self.schema, shared)  # type: ignore[assignment,arg-type]

    return SharingHandler


class ConduitGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view with the mesh's context, local GraphiQL and the caller's token verified."""

    def __init__(self, schema: strawberry.Schema, mesh: Mesh, verifier: AccessTokenVerifier | None,
                 config: GraphqlSettings) -> None:
        super().__init__(schema, graphql_ide="graphiql" if config.introspection else None,
                         subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,), keep_alive=True,
                         keep_alive_interval=15,
                         max_subscriptions_per_connection=config.max_subscriptions_per_connection)
        self.mesh = mesh
        self.verifier = verifier
        if config.subscriptions_shared:
            self.shared = SharedSubscriptions[ExecutionResult](per_client=config.max_shared_subscriptions_per_client,
                                                              backlog=config.shared_subscription_backlog)
            self.graphql_transport_ws_handler_class = sharing_handler(self.shared)

    async def context_for(self, authorization: str, request_id: str, forwarded_for: str = "") -> Context:
        """A context carrying `authorization` on; ConduitError when the token is not valid.

        `x-forwarded-for` (as Envoy appended the caller's address to it) goes on too, so the called
        services count per-client limits (stream caps, login and write limits) per browser, not once for
        this whole process.
        """
        metadata: list[tuple[str, str]] = []
        viewer_id = 0
        if authorization:
            token = parse_authorization_header(authorization)
            if token is not None and self.verifier is not None:
                principal = await self.verifier.verify(token)
                viewer_id = principal.user_id or 0
            metadata.append(("authorization", authorization))
        if request_id:
            metadata.append(("x-request-id", request_id))
        if forwarded_for:
            metadata.append(("x-forwarded-for", forwarded_for))
        return Context(self.mesh, tuple(metadata), viewer_id)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        headers = request.headers
        forwarded_for = headers.get("x-forwarded-for", "")
        try:
            return await self.context_for(headers.get("authorization", ""), headers.get("x-request-id", ""),
                                          forwarded_for)
        except ConduitError:
            # A bad token on a WebSocket may still be replaced by connection_init's; on HTTP the
            # resolvers answer UNAUTHENTICATED through the called RPCs.
            anonymous = await self.context_for("", headers.get("x-request-id", ""), forwarded_for)
            anonymous.metadata = (("authorization", headers.get("authorization", "")), *anonymous.metadata)
            return anonymous

    async def on_ws_connect(self, context: Context) -> None:
        """`connection_init`'s payload may carry `Authorization` (browsers cannot set WebSocket headers)."""
        params = getattr(context, "connection_params", None) or {}
        authorization = params.get("Authorization") or params.get("authorization") or ""
        if not isinstance(authorization, str) or not authorization:
            return
        kept = dict(context.metadata)
        try:
            fresh = await self.context_for(authorization, kept.get("x-request-id", ""),
                                           kept.get("x-forwarded-for", ""))
        except ConduitError as error:
            raise ConnectionRejectionError({"message": str(error)}) from None
        context.metadata, context.viewer_id = fresh.metadata, fresh.viewer_id

    def decode_json(self, data: str | bytes) -> object:
        """Strawberry's, but a body that is not UTF-8 or nests past the stack is a 400 like any other body
        that is not JSON (Strawberry lets those two errors through: a 500)."""
        try:
            return super().decode_json(data)
        except (UnicodeDecodeError, RecursionError):
            raise json.JSONDecodeError("not UTF-8 JSON, or nested too deeply", "", 0) from None

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE, headers={"content-security-policy": PAGE_CSP})


class GraphqlApp:
    """The ASGI application of the service (what uvicorn serves)."""

    def __init__(self, mesh: Mesh, verifier: AccessTokenVerifier | None, config: GraphqlSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.view = ConduitGraphQL(build_schema(config), mesh, verifier, config)
        self.assets = Path(config.assets_dir) if config.assets_dir else default_assets_dir()
        self.responses = (ResponseCache(config.response_cache_seconds, config.response_cache_entries, clock)
                          if config.response_cache_seconds > 0 else None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http":
            send = _with_csp(send)
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif path == PATH:
            try:
                if self.responses is not None and _anonymous_post(scope):
                    await self.shared(scope, receive, send)
                else:
                    await self.view(scope, receive, send)
            except ClientDisconnect:
                return  # gone before its request arrived whole: nobody to answer (not a server error)
        elif scope["type"] == "http" and path == "/healthz":
            await Response("ok\n", media_type="text/plain")(scope, receive, send)
        elif scope["type"] == "http" and path.startswith(ASSETS) and self.config.introspection:
            await self.asset(path.removeprefix(ASSETS))(scope, receive, send)
        elif scope["type"] == "http":
            await Response("not found\n", 404, media_type="text/plain")(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 4404})

    async def shared(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An anonymous POST: a query's answer from the response cache (decision 0047), anything else
        executed by the view as usual."""
        assert self.responses is not None
        messages, body = await _read_body(receive, self.config.max_query_bytes * 4)
        key = None
        if body is not None:
            with contextlib.suppress(ValueError, RecursionError):  # not JSON, or nested past the stack
                request = json.loads(body)
                if isinstance(request, dict):
                    key = key_of(request, _header(scope, b"accept"))
        if body is None or key is None:
            await self.view(scope, _prefixed(messages, receive), send)
            return
        answer, hit = await self.responses.answer(key, lambda: self._execute(scope, body))
        headers = [*answer.headers, (CACHE_HEADER, b"hit" if hit else b"miss")]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def _execute(self, scope: Scope, body: bytes) -> Answer:
        """Run the view on a request body and collect what it sends."""
        started: MutableMapping[str, Any] = {}
        chunks: list[bytes] = []

        async def collect(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.view(scope, _replay(body), collect)
        headers = tuple((bytes(name), bytes(value)) for name, value in started.get("headers", ()))
        return Answer(int(started.get("status", 500)), headers, b"".join(chunks))

    def asset(self, name: str) -> Response:
        if name == "start.js":
            return Response(START_JS, media_type="text/javascript")
        relative = ASSET_FILES.get(name)
        if relative is None or not (self.assets / relative).is_file():
            return Response(f"GraphiQL asset {name!r} is not installed (make graphql-clients)\n", 404,
                            media_type="text/plain")
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response((self.assets / relative).read_bytes(), media_type=media,
                        headers={"cache-control": "public, max-age=3600"})


def _header(scope: Scope, name: bytes) -> str:
    return next((value.decode("latin-1") for key, value in scope.get("headers", ()) if key.lower() == name), "")


def _anonymous_post(scope: Scope) -> bool:
    return scope["type"] == "http" and scope.get("method") == "POST" and not _header(scope, b"authorization")


async def _read_body(receive: Receive, limit: int) -> tuple[list[MutableMapping[str, Any]], bytes | None]:
    """(the messages received, the whole body); the body is None past `limit` bytes or on a disconnect:
    then the view gets the messages again and answers unshared (a body that large is refused by the
    query size limit anyway)."""
    messages: list[MutableMapping[str, Any]] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > limit:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(part.get("body", b"") for part in messages)


def _prefixed(messages: list[MutableMapping[str, Any]], receive: Receive) -> Receive:
    """A `receive` that hands out `messages` first, then the client's own."""
    pending = list(messages)

    async def replay() -> MutableMapping[str, Any]:
        return pending.pop(0) if pending else await receive()

    return replay


def _replay(body: bytes) -> Receive:
    """A `receive` that hands the view the body already read, then waits like a quiet client."""
    sent = False
    idle = asyncio.Event()

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await idle.wait()  # never set: a view only asks again to notice a disconnect
        return {"type": "http.disconnect"}

    return receive


def _with_csp(send: Send) -> Send:
    """Every HTTP answer gets a content-security-policy (the API's strict one unless it set its own)."""

    async def sending(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if not any(name.lower() == b"content-security-policy" for name, _ in headers):
                headers.append((b"content-security-policy", API_CSP.encode()))
            message["headers"] = [*headers, (b"x-content-type-options", b"nosniff")]
        await send(message)

    return sending


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


__all__ = ["ASSET_FILES", "ConduitGraphQL", "GraphqlApp", "build_schema", "default_assets_dir"]
