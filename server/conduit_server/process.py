"""Run one service process until SIGTERM/SIGINT, then shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis

from conduit_server.composition import build_app
from conduit_server.runtime import channels, metrics, telemetry
from conduit_server.runtime.embedded import EmbeddedPostgres, EmbeddedRedis
from conduit_server.runtime.idempotency import IdempotencyStore
from conduit_server.runtime.logs import configure_logging
from conduit_server.runtime.resources import Resources
from conduit_server.runtime.revocations import Revocations, revocations_prefix
from conduit_server.runtime.secrets import with_local_secrets
from conduit_server.runtime.server import GrpcServer
from conduit_server.runtime.settings import ServiceName, Settings
from conduit_server.runtime.tokens import AccessTokenVerifier, JwksCache
from conduit_server.users.client.calls import UsersClient

log = logging.getLogger("conduit.serve")


def build_verifier(settings: Settings, resources: Resources) -> AccessTokenVerifier:
    """Verifies with the users service's JWKS (through the one users client), and its revocations
    (runtime.revocations)."""
    users = UsersClient(resources.users_channel, timeout_cap_seconds=settings.internal_call_timeout_seconds)
    longest = max(settings.access_token_ttl_seconds, settings.browser_session_ttl_seconds)
    revocations = Revocations(resources.redis, prefix=revocations_prefix(), ttl_seconds=longest)
    return AccessTokenVerifier(JwksCache(users.jwks), settings.jwt_issuer, settings.jwt_audience,
                               max_lifetime_seconds=longest, revoked=revocations.is_revoked)


async def serve(settings: Settings, name: ServiceName, *, port: int | None = None) -> None:
    """Serve `name` until a termination signal; embedded PostgreSQL/Redis when no URL is set."""
    settings = with_local_secrets(settings)
    embedded: list[EmbeddedPostgres | EmbeddedRedis] = []
    database_url, redis_url = settings.database_url, settings.redis_url
    if not database_url:
        postgres = EmbeddedPostgres(Path(settings.state_dir) / "postgres")
        database_url = await asyncio.to_thread(postgres.start)
        embedded.append(postgres)
    if not redis_url:
        redis_server = EmbeddedRedis(Path(settings.state_dir) / "redis")
        redis_url = await asyncio.to_thread(redis_server.start)
        embedded.append(redis_server)
    internal_token = settings.internal_token.get_secret_value()
    # Bytes in, bytes out: callers decide on encodings.
    redis = aioredis.Redis.from_url(redis_url, max_connections=64, health_check_interval=30)
    resources = Resources(settings, database_url, redis,
                          channels.internal_channel(settings.users_address(), internal_token))
    app = build_app(name, resources)
    # The users process verifies with its own keys; asking itself for its JWKS would be circular.
    own_verifier = getattr(app, "verifier", None)
    verifier = own_verifier if isinstance(own_verifier, AccessTokenVerifier) else build_verifier(settings,
                                                                                                 resources)
    server = GrpcServer(app, host=settings.host, port=settings.port_of(name) if port is None else port,
                        verifier=verifier, internal_token=internal_token,
                        grace_seconds=settings.shutdown_grace_seconds,
                        drain_seconds=settings.shutdown_drain_seconds,
                        observers=[*telemetry.server_interceptors(),
                                   *metrics.server_interceptors(name, settings.metrics_enabled)],
                        idempotency=IdempotencyStore(redis, window_seconds=settings.idempotency_window_seconds,
                                                     pending_seconds=settings.idempotency_pending_seconds))
    if settings.metrics_enabled:
        app_metrics = getattr(app, "metrics", None)
        if callable(app_metrics):
            metrics.track_app(app_metrics, getattr(app, "metric_counters", ()))
        metrics.serve_metrics(name, settings.host, settings.metrics_port_of(name))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
        # Everything built at start (modules, descriptors, pools) lives as long as the process: move it
        # out of the collector's view, so the collections that run under load only scan request garbage.
        gc.collect()
        gc.freeze()
        await stop.wait()
        log.info("shutting down")
    finally:
        await server.stop()
        await resources.users_channel.close(None)
        for process in reversed(embedded):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(process.stop)


def main(name: ServiceName, settings: Settings | None = None) -> None:
    settings = settings or Settings()
    configure_logging(name, settings.log_level)
    # Before anything builds engines, Redis clients or channels: they pick up the instrumentation.
    telemetry.configure_tracing(name, settings.tracing)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(settings, name))
    finally:
        telemetry.shutdown_tracing()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return None
    return uvloop.new_event_loop
