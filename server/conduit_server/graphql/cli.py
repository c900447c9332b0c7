"""`conduit graphql serve`: the graphql service in the foreground (what `conduit run` starts)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

import redis.asyncio as aioredis
import uvicorn
import uvloop

from conduit_server.graphql.api import Mesh
from conduit_server.graphql.app import GraphqlApp
from conduit_server.process import build_verifier
from conduit_server.runtime import channels
from conduit_server.runtime.logs import configure_logging
from conduit_server.runtime.resources import Resources
from conduit_server.runtime.secrets import with_local_secrets
from conduit_server.runtime.settings import ServiceName, Settings


def register(commands: Any) -> None:
    graphql = commands.add_parser("graphql", help="the GraphQL endpoint").add_subparsers(
        dest="graphql_command", required=True)
    serve = graphql.add_parser("serve", help="serve /graphql (HTTP and WebSocket) until SIGTERM")
    serve.set_defaults(handler=_serve)


def _serve(_: argparse.Namespace, settings: Settings) -> None:
    configure_logging("graphql", settings.log_level)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings))


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT (uvicorn's own handlers), then close the channels."""
    settings = with_local_secrets(settings)
    if not settings.redis_url:
        raise SystemExit("conduit graphql serve needs CONDUIT_REDIS_URL (token revocations); `conduit run` sets it")
    token = settings.internal_token.get_secret_value()
    names: tuple[ServiceName, ...] = ("articles", "users", "search", "realtime")
    opened = {name: channels.internal_channel(settings.grpc_target(name), token) for name in names}
    redis = aioredis.Redis.from_url(settings.redis_url, max_connections=16)
    resources = Resources(settings, "", redis, opened["users"])
    mesh = Mesh(articles=opened["articles"], users=opened["users"], search=opened["search"],
                realtime=opened["realtime"], timeout_seconds=settings.internal_call_timeout_seconds)
    app = GraphqlApp(mesh, build_verifier(settings, resources), settings.graphql)
    server = uvicorn.Server(uvicorn.Config(
        app, host=settings.host, port=settings.graphql.port, log_level="warning", access_log=False,
        lifespan="on", http="httptools", ws="websockets-sansio", ws_max_size=settings.graphql.max_query_bytes * 4,
        # A peer that leaves a WebSocket ping unanswered this long is gone (20 s, uvicorn's default, cut off
        # live subscribers of a starved client process in the 1,000-subscriber bench).
        ws_ping_interval=30, ws_ping_timeout=120,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds)))
    try:
        await server.serve()
    finally:
        for channel in opened.values():
            with contextlib.suppress(Exception):
                await channel.close(None)
        await redis.aclose()
