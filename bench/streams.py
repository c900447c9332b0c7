"""Fan-out benchmark of the realtime service: N watchers on one process, events at R/s for T seconds.

    python -m bench.streams [--watchers 1000] [--idle 0] [--rate 50] [--seconds 20] [--clients 2] [--unbatched]
                            [--through-envoy]

Everything is real and local: embedded PostgreSQL and Redis in a temporary directory, the users
service (author profiles for enrichment) and the realtime service in this process. A writer
process commits article events to an articles outbox at R/s and the real OutboxRelay publishes
them to Redis; client processes hold the N WatchArticles streams and time every event from just
before its commit (`occurred_at`) to its receipt. So latency covers commit, relay, the one
reader, enrichment, fan-out, gRPC and the client's parsing. The streams are batched, as the SDK
opens them (`--unbatched`: one event per message); deliveries and latencies count per event.

`--idle N` adds N idle watchers (WatchArticle of an article nobody writes to, as readers of an
article page hold): they cost memory and connections, not fan-out. The realtime process's RSS is
taken before any stream opens and once every stream is live: memory per watcher is the difference
over the number of streams. The bench is one anonymous client address, so it lifts the realtime
service's per-client stream cap (decision 0030) for its run.

`--through-envoy` puts the project's Envoy (the edge configuration `conduit run` writes, TLS on
its port, decision 0030's stream budget) in front of the same in-process servers, as a mesh of no
services: the clients then hold their streams over TLS to Envoy, as an SDK outside the mesh does,
and Envoy's RSS is measured too. Envoy takes at most `EdgeLimits.max_streams` (10,240) concurrent
streams to the realtime cluster, so watchers + idle may not exceed it here (9,000 idle + 1,000
active, not 10,000 + 1,000).

Prints a Markdown table row and writes bench/results/streams.json (streams-envoy.json through Envoy).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
import urllib.request
import uuid
from array import array
from collections import Counter
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
import psutil
import redis.asyncio as aioredis
import uvloop

from conduit.articles.v1 import events_pb2
from conduit.realtime.v1 import realtime_pb2, realtime_pb2_grpc
from conduit.users.v1 import users_pb2, users_pb2_grpc
from conduit_gateway.limits import EdgeLimits
from conduit_server import supervisor
from conduit_server.articles.app import MIGRATIONS as ARTICLE_MIGRATIONS
from conduit_server.articles.repository import models as article_models
from conduit_server.realtime.app import RealtimeApp
from conduit_server.realtime.domain.ids import StreamId
from conduit_server.realtime.events import decode_entries
from conduit_server.realtime.repository.history import xrange
from conduit_server.replicas import free_ports, wait_envoy_healthy
from conduit_server.runtime import channels, migrations, outbox
from conduit_server.runtime.db import Database
from conduit_server.runtime.embedded import EmbeddedPostgres, EmbeddedRedis
from conduit_server.runtime.server import GrpcServer
from conduit_server.runtime.settings import RealtimeSettings, Settings
from conduit_server.users.app import UsersApp
from conduit_server.users.client.calls import UsersClient
from conduit_server.users.domain.passwords import Argon2Parameters, PasswordHasher

RESULTS = Path(__file__).resolve().parent / "results"
INTERNAL_TOKEN = "bench-internal-token"  # noqa: S105 - a throwaway mesh secret
STREAM = outbox.stream_name("articles")
PASSWORD = "bench-password-1"  # noqa: S105 - the throwaway authors' password
STREAMS_PER_CHANNEL = 100
AUTHORS = 20
BODY = "Streaming article body. " * 40  # ~1 KB, as a short article
# Every port the edge configuration names (each service's upstream, Envoy's listeners), taken in one go.
ENVOY_PORTS = ("users_port", "articles_port", "search_port", "realtime_port", "webhooks_port",
               "gateway_tls_port", "gateway_admin_port", "gateway_jwks_port")
# How long a client waits, once the server has sent every event, for the last ones still in Envoy.
SETTLE_SECONDS = 10.0


# -- the watchers (client processes) -----------------------------------------------------------


def _run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """On uvloop, as `conduit serve` runs the services."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _client_process(address: str, count: int, batched: bool, pipe: Connection, idle: int = 0, *,
                    ca: Path | None = None) -> None:
    _run_loop(_client(address, count, batched, pipe, idle, ca=ca.read_bytes() if ca is not None else None))


def _channel(address: str, ca: bytes | None) -> grpc.aio.Channel:
    """Plaintext straight to the realtime server; with `ca`, TLS to Envoy (server name localhost, as its
    local certificate says). Through Envoy each channel gets its own connection: Envoy takes 100 streams
    per HTTP/2 connection, and channels alike would otherwise share one (gRPC's global subchannel pool)."""
    if ca is None:
        return grpc.aio.insecure_channel(address)
    return grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(ca), options=[
        ("grpc.ssl_target_name_override", "localhost"), ("grpc.use_local_subchannel_pool", 1)])


def _events(response: Any) -> Any:
    """The events of one message: batched (`events`) or not (`event`)."""
    return response.events or (response.event,)


async def _joined(call: Any) -> None:
    """The first message says the stream is live."""
    first: Any = await call.read()
    assert [event.type for event in _events(first)] == [realtime_pb2.EVENT_TYPE_HEARTBEAT]


async def _settle(received: list[int], per_stream: int) -> None:
    """Until every active stream has `per_stream` events, or SETTLE_SECONDS: the server counts an event
    delivered once sent, and through Envoy it may still be on its way."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while min(received, default=per_stream) < per_stream and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def _client(address: str, count: int, batched: bool, pipe: Connection, idle: int = 0, *,
                  ca: bytes | None = None) -> None:
    channel_count = max(1, -(-count // STREAMS_PER_CHANNEL))
    idle_channel_count = -(-idle // STREAMS_PER_CHANNEL)
    channels_ = [_channel(address, ca) for _ in range(channel_count + idle_channel_count)]
    stubs = [realtime_pb2_grpc.RealtimeServiceStub(channel) for channel in channels_]
    request = realtime_pb2.WatchArticlesRequest(batched=batched)
    calls = [stubs[n % channel_count].WatchArticles(request) for n in range(count)]
    for call in calls:
        await _joined(call)
    tag = uuid.uuid4().hex[:8]
    idle_calls: list[Any] = []
    for start in range(0, idle, 250):  # opened in waves, so the server is not handed 10,000 at once
        wave = [stubs[channel_count + n % idle_channel_count].WatchArticle(
            realtime_pb2.WatchArticleRequest(slug=f"idle-{tag}-{n}", batched=batched))
            for n in range(start, min(idle, start + 250))]
        await asyncio.gather(*(_joined(call) for call in wave))
        idle_calls += wave
    pipe.send(("ready", count + idle))
    latencies = array("d")
    received = [0] * count
    lasts = [""] * count
    disorder = 0
    errors: Counter[str] = Counter()

    async def consume(index: int, call: Any) -> None:
        nonlocal disorder
        last = StreamId(0, 0)
        try:
            while (response := await call.read()) is not grpc.aio.EOF:  # type: ignore[attr-defined]
                now = time.time()  # every event of a message arrived with it
                event: realtime_pb2.Event
                for event in _events(response):
                    if event.type == realtime_pb2.EVENT_TYPE_HEARTBEAT:
                        continue
                    latencies.append(now - event.occurred_at.seconds - event.occurred_at.nanos / 1e9)
                    received[index] += 1
                    lasts[index] = event.event_id
                    position = StreamId.parse(event.event_id)
                    if position <= last:
                        disorder += 1
                    last = position
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                errors[error.code().name] += 1

    tasks = [asyncio.create_task(consume(n, call)) for n, call in enumerate(calls)]
    stop = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "stop", or ("stop", events)
    if isinstance(stop, tuple):
        await _settle(received, stop[1])
    for idle_call in idle_calls:  # still open: a stream the server ended would have told its code
        if idle_call.done():
            errors[f"idle:{(await idle_call.code()).name}"] += 1
        idle_call.cancel()
    for call in calls:
        call.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    pipe.send(("done", latencies.tobytes(), list(zip(received, lasts, strict=True)), disorder, dict(errors)))
    for channel in channels_:
        await channel.close(None)


# -- the writer (the articles service's side of the stream) ------------------------------------


@dataclass(frozen=True)
class Load:
    """What the writer commits: events per second for so many seconds, by these authors."""

    rate: float
    seconds: float
    authors: list[int]


def _writer_process(database_url: str, redis_url: str, load: Load, pipe: Connection) -> None:
    _run_loop(_writer(database_url, redis_url, load, pipe))


async def _writer(database_url: str, redis_url: str, load: Load, pipe: Connection) -> None:
    rate, authors = load.rate, load.authors
    database = Database(database_url, "articles")
    redis = aioredis.Redis.from_url(redis_url)
    relay = outbox.OutboxRelay(database, redis, STREAM)
    relay.start()
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "go"
    total = int(rate * load.seconds)
    started = time.monotonic()
    for n in range(total):
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        article = events_pb2.ArticleRecord(id=n + 1, slug=f"bench-{n}", title=f"Bench {n}", description="fan-out",
                                           body=BODY, tag_list=["bench", f"tag{n % 7}"],
                                           author_id=authors[n % len(authors)])
        article.created_at.GetCurrentTime()
        article.updated_at.CopyFrom(article.created_at)
        event_id = uuid.uuid4()
        event = events_pb2.ArticleEvent(event_id=str(event_id),
                                        article_created=events_pb2.ArticleCreated(article=article))
        event.occurred_at.GetCurrentTime()  # the clock starts before the commit
        async with database.transaction() as session:
            await outbox.append(session, "article_created", event, event_id=event_id)
    elapsed = time.monotonic() - started
    while await relay.pending():  # noqa: ASYNC110 - polling another process's progress
        await asyncio.sleep(0.01)
    pipe.send(("written", total, elapsed))
    await relay.stop()
    await redis.aclose()
    await database.close()


# -- the server side ---------------------------------------------------------------------------


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _register_authors(address: str, count: int, verify: Any) -> list[int]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = users_pb2_grpc.UsersServiceStub(channel)
        ids = []
        for n in range(count):
            response = await stub.CreateUser(users_pb2.CreateUserRequest(user=users_pb2.NewUser(
                username=f"author{n}", email=f"author{n}@bench.example", password=PASSWORD)))
            principal = await verify(response.user.token)
            ids.append(principal.user_id)
        return ids


@dataclass
class Mesh:
    """The services under test, on embedded PostgreSQL and Redis."""

    database_url: str
    redis_url: str
    address: str
    app: RealtimeApp
    authors: list[int]
    stops: list[Any]
    settings: Settings


async def _start(state: Path, ports: Mapping[str, int] | None = None) -> Mesh:
    """The services on kernel-chosen ports, or on `ports` (ENVOY_PORTS) when Envoy is to reach them."""
    ports = ports or {}
    postgres, redis_server = EmbeddedPostgres(state / "postgres"), EmbeddedRedis(state / "redis")
    database_url = await asyncio.to_thread(postgres.start)
    redis_url = await asyncio.to_thread(redis_server.start)
    stops: list[Any] = [lambda: asyncio.to_thread(postgres.stop), lambda: asyncio.to_thread(redis_server.stop)]
    settings = Settings(database_url=database_url, redis_url=redis_url, internal_token=INTERNAL_TOKEN,
                        key_encryption_key="bench-key-encryption-key-with-enough-entropy",
                        state_dir=state, gateway_http_port=0).model_copy(update=ports)
    articles = Database(database_url, "articles")  # the writer's outbox
    await migrations.upgrade(articles, ARTICLE_MIGRATIONS, article_models.Base.metadata)
    await articles.close()
    users_app = UsersApp(settings, Database(database_url, "users"), aioredis.Redis.from_url(redis_url),
                         hasher=PasswordHasher(Argon2Parameters(time_cost=1, memory_cost_kib=1024)))
    users = GrpcServer(users_app, host="127.0.0.1", port=ports.get("users_port", 0), verifier=users_app.verifier,
                       internal_token=INTERNAL_TOKEN)
    users_address = f"127.0.0.1:{await users.start()}"
    stops.append(users.stop)
    authors = await _register_authors(users_address, AUTHORS, users_app.verifier.verify)
    users_channel = channels.internal_channel(users_address, INTERNAL_TOKEN)
    stops.append(lambda: users_channel.close(None))
    app = RealtimeApp(aioredis.Redis.from_url(redis_url), UsersClient(users_channel, timeout_cap_seconds=5.0),
                      RealtimeSettings(articles_stream=STREAM, users_stream=outbox.stream_name("users"),
                                       metrics_log_seconds=0, max_watchers_per_client=1_000_000))
    realtime = GrpcServer(app, host="127.0.0.1", port=ports.get("realtime_port", 0), verifier=None,
                          internal_token=INTERNAL_TOKEN)
    address = f"127.0.0.1:{await realtime.start()}"
    stops.append(realtime.stop)
    return Mesh(database_url, redis_url, address, app, authors, stops, settings)


# Envoy's own counters read once every stream is live: connections and streams on the TLS listener, on
# the realtime cluster, and the circuit breakers' overflows (a stream past the budget is refused).
ENVOY_STATS = (r"http\.conduit_tls\.downstream_(cx|rq)_active|cluster\.realtime\."
               r"(upstream_cx_active|upstream_rq_active|upstream_rq_pending_overflow|upstream_cx_overflow)")


@dataclass
class Edge:
    """Envoy in front of the bench's servers, and what the bench reads of it: RSS at each mark, CPU over
    the write phase, its counters once every stream is live."""

    mesh: supervisor.Mesh
    process: psutil.Process
    rss: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)

    @classmethod
    async def start(cls, mesh: Mesh) -> Edge:
        """The project's Envoy: `conduit run`'s supervisor with no services of its own writes the edge
        configuration (TLS, routes, stream budget) and starts it. Returns once Envoy's health check
        routes to the realtime server (a cluster with no healthy host answers 503)."""
        edge = supervisor.Mesh(mesh.settings, services=(), log_dir=Path(mesh.settings.state_dir) / "logs")
        mesh.stops.append(lambda: asyncio.to_thread(edge.stop))
        # Blocking waits in a thread: Envoy's JWKS fetch and health checks need this loop's servers.
        await asyncio.to_thread(edge.start)
        await asyncio.to_thread(wait_envoy_healthy, mesh.settings.gateway_admin_port, mesh.address)
        gauge = cls(edge, psutil.Process(edge.processes["envoy"].pid))
        gauge.mark("before_streams")
        return gauge

    @property
    def target(self) -> str:
        """Envoy's TLS listener, by address: every watcher comes from 127.0.0.1."""
        return f"127.0.0.1:{self.mesh.settings.gateway_tls_port}"

    @property
    def ca(self) -> Path:
        return Path(self.mesh.settings.state_dir).resolve() / "tls" / "ca.pem"

    def mark(self, name: str) -> None:
        self.rss[name] = self.process.memory_info().rss

    def _cpu(self) -> float:
        return sum(self.process.cpu_times()[:2])

    async def ready(self) -> None:
        """Every stream is live."""
        self.mark("ready")
        await self._read_stats()
        self.cpu_seconds = self._cpu()

    def written(self) -> None:
        """The write phase is over and the server has sent every event: CPU since `ready`."""
        self.cpu_seconds = self._cpu() - self.cpu_seconds
        self.mark("end")

    async def _read_stats(self) -> None:
        url = f"http://127.0.0.1:{self.mesh.settings.gateway_admin_port}/stats?filter={ENVOY_STATS}"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
        self.stats = {name: int(value) for name, value in
                      (line.split(": ", 1) for line in text.splitlines() if ": " in line)}

    def figures(self, streams: int, wall: float) -> dict[str, Any]:
        before, ready = self.rss["before_streams"], self.rss["ready"]
        return {
            "rss_before_streams_mib": round(before / 2**20, 1), "rss_ready_mib": round(ready / 2**20, 1),
            "rss_mib": round(self.rss["end"] / 2**20, 1),
            "kib_per_watcher": round((ready - before) / 1024 / max(streams, 1), 1),
            "cpu_percent": round(self.cpu_seconds / wall * 100), "stats_when_ready": self.stats,
        }


@dataclass
class Received:
    """What the client processes saw."""

    latencies: list[float] = field(default_factory=list)
    deliveries: int = 0
    disorder: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    # Per stream: how many events, and the id of the last one.
    streams: list[tuple[int, str]] = field(default_factory=list)

    def add(self, raw: bytes, streams: list[tuple[int, str]], disorder: int, errors: dict[str, int]) -> None:
        chunk = array("d")
        chunk.frombytes(raw)
        self.latencies.extend(chunk)
        self.streams.extend(streams)
        self.deliveries += sum(count for count, _ in streams)
        self.disorder += disorder
        self.errors.update(errors)

    def gaps(self, written: list[str]) -> int:
        """Events missing before a stream's last one: lost, not merely late (should be 0)."""
        position = {event_id: n for n, event_id in enumerate(written, start=1)}
        return sum(position.get(last, 0) - count for count, last in self.streams)


def _share(total: int, parts: int, n: int) -> int:
    return total // parts + (1 if n < total % parts else 0)


async def _start_clients(context: Any, target: tuple[str, Path | None], processes: list[Any], *,
                         watchers: int, idle: int, clients: int, batched: bool) -> list[Connection]:
    """The client processes, at `target` (an address, and the CA to trust when it is Envoy's TLS port);
    returns once every stream is live."""
    address, ca = target
    pipes = []
    for n in range(clients):
        ours, theirs = context.Pipe()
        process = context.Process(target=_client_process, daemon=True, kwargs={"ca": ca}, args=(
            address, _share(watchers, clients, n), batched, theirs, _share(idle, clients, n)))
        process.start()
        pipes.append(ours)
        processes.append(process)
    for pipe in pipes:
        await asyncio.to_thread(pipe.recv)  # ("ready", n): every stream is live
    return pipes


async def _stop_clients(pipes: list[Connection], stop: Any, received: Received) -> None:
    """Every client at once (each may wait a while for late events), then what each saw."""
    for pipe in pipes:
        pipe.send(stop)
    for pipe in pipes:
        _, *figures = await asyncio.to_thread(pipe.recv)
        received.add(*figures)


async def run(watchers: int, rate: float, seconds: float, clients: int, state: Path, *,
              batched: bool = True, idle: int = 0, through_envoy: bool = False) -> dict[str, Any]:
    ports = dict(zip(ENVOY_PORTS, free_ports(len(ENVOY_PORTS)), strict=True)) if through_envoy else None
    mesh = await _start(state, ports)
    me = psutil.Process(os.getpid())
    context = multiprocessing.get_context("spawn")
    processes: list[Any] = []
    received = Received()
    edge: Edge | None = None
    try:
        if through_envoy:
            edge = await Edge.start(mesh)
        rss_before = me.memory_info().rss
        target = (edge.target, edge.ca) if edge else (mesh.address, None)
        pipes = await _start_clients(context, target, processes, watchers=watchers, idle=idle,
                                     clients=clients, batched=batched)
        rss_ready = me.memory_info().rss
        open_streams = mesh.app.metrics()["watchers"]
        if edge:
            await edge.ready()
        ours, theirs = context.Pipe()
        writer = context.Process(target=_writer_process, daemon=True, args=(
            mesh.database_url, mesh.redis_url, Load(rate, seconds, mesh.authors), theirs))
        processes.append(writer)
        writer.start()
        cpu_before, wall_before = sum(me.cpu_times()[:2]), time.perf_counter()
        ours.send("go")
        _, written, write_seconds = await asyncio.to_thread(ours.recv)
        expected = written * watchers
        drain_deadline = time.monotonic() + 30
        while mesh.app.metrics()["events_delivered"] < expected and time.monotonic() < drain_deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        wall = time.perf_counter() - wall_before
        cpu_percent = (sum(me.cpu_times()[:2]) - cpu_before) / wall * 100
        rss_mib = me.memory_info().rss / 2**20
        if edge:
            edge.written()
        metrics = mesh.app.metrics()
        # Through Envoy, each client first waits (bounded) for events still on their way.
        await _stop_clients(pipes, ("stop", written) if edge else "stop", received)
        written_ids = [str(entry.id) for entry in decode_entries(await xrange(mesh.app.redis, STREAM, "-", "+",
                                                                             count=written + 1))[0]]
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
        for stop in reversed(mesh.stops):
            await stop()
    latencies = sorted(received.latencies)
    result = {
        "watchers": watchers, "idle_watchers": idle, "open_streams_when_ready": open_streams,
        # (RSS once every stream is live - RSS before any) / streams; the process also runs users.
        "kib_per_watcher": round((rss_ready - rss_before) / 1024 / max(watchers + idle, 1), 1),
        "rss_before_streams_mib": round(rss_before / 2**20, 1),
        "rate_per_second": rate, "seconds": seconds, "client_processes": clients,
        "batched": batched,
        "events_written": written, "write_seconds": round(write_seconds, 2),
        "deliveries_expected": expected, "deliveries": received.deliveries,
        # Not received when the run stopped (write phase + up to 30 s of drain): late or lost.
        "misses": expected - received.deliveries,
        # Of those, missing before a stream's last received event: lost for good.
        "lost": received.gaps(written_ids), "duplicates_or_out_of_order": received.disorder,
        "deliveries_per_second": round(received.deliveries / wall),
        "offered_deliveries_per_second": round(rate * watchers),
        # Events per gRPC message (1 unbatched; more when batched streams fall behind).
        "events_per_message": round(metrics["events_delivered"] / max(metrics["event_messages_sent"], 1), 2),
        "latency_ms": {name: round(value * 1000, 1) for name, value in (
            ("p50", _percentile(latencies, 0.50)), ("p90", _percentile(latencies, 0.90)),
            ("p99", _percentile(latencies, 0.99)), ("max", latencies[-1] if latencies else float("nan")),
            ("mean", statistics.fmean(latencies) if latencies else float("nan")))},
        "slow_consumer_disconnects": metrics["slow_consumer_disconnects"], "stream_errors": dict(received.errors),
        "redis_reads_failed": metrics["read_failures"],
        "realtime_process": {"cpu_percent": round(cpu_percent), "rss_mib": round(rss_mib, 1)},
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "memory_gib": round(psutil.virtual_memory().total / 2**30)},
    }
    if edge:
        result["realtime_process"]["rss_ready_mib"] = round(rss_ready / 2**20, 1)
        result["envoy"] = {**edge.figures(watchers + idle, wall), "stream_budget": EdgeLimits().max_streams,
                           "client_address": "127.0.0.1",
                           "max_watchers_per_client": mesh.app.config.max_watchers_per_client}
    return result


def _row_name(result: dict[str, Any]) -> str:
    mode = f"batched, {result['events_per_message']:g} events/message" if result["batched"] else "unbatched"
    idle = f" + {result['idle_watchers']:,} idle" if result.get("idle_watchers") else ""
    return (f"{result['watchers']:,} watchers{idle} x {result['rate_per_second']:g} events/s x "
            f"{result['seconds']:g} s ({mode})")


def markdown(result: dict[str, Any]) -> str:
    if "envoy" in result:
        return markdown_envoy(result)
    latency = result["latency_ms"]
    header = ("| row | deliveries/s | p50 ms | p99 ms | misses (lost) | slow-consumer cut-offs | "
              "CPU % realtime (+users) | RSS MiB |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    row = (f"| streams: {_row_name(result)} | {result['deliveries_per_second']:,} | {latency['p50']} | "
           f"{latency['p99']} | "
           f"{result['misses']:,} ({result['lost']:,}) | {result['slow_consumer_disconnects']} | "
           f"{result['realtime_process']['cpu_percent']} | {result['realtime_process']['rss_mib']} |")
    table = f"{header}\n{row}"
    if result["deliveries_per_second"] < 0.9 * result["offered_deliveries_per_second"]:
        table += (f"\n\nSaturated: {result['offered_deliveries_per_second']:,} deliveries/s offered, "
                  f"{result['deliveries_per_second']:,}/s delivered; the backlog waits in the streams' queues "
                  "and HTTP/2 buffers (see latency).")
    table += (f"\nMemory per watcher: {result['kib_per_watcher']} KiB (RSS {result['rss_before_streams_mib']} MiB "
              f"before any stream, {result['realtime_process']['rss_mib']} MiB at the end; "
              f"{result['open_streams_when_ready']:,} streams open).")
    table += (f"\n{result['machine']['cores']} cores shared by the realtime process, "
              f"{result['client_processes']} client processes and the writer.")
    return table


def markdown_envoy(result: dict[str, Any]) -> str:
    """The row through Envoy: delivery, errors by code, and the memory of both processes per watcher."""
    latency, envoy, realtime = result["latency_ms"], result["envoy"], result["realtime_process"]
    errors = ", ".join(f"{code} {count:,}" for code, count in sorted(result["stream_errors"].items())) or "none"
    header = ("| row | deliveries/s | p50 ms | p99 ms | delivered / expected (lost) | errors | "
              "RSS MiB realtime (+users) | KiB/watcher realtime | RSS MiB Envoy | KiB/watcher Envoy | "
              "CPU % realtime / Envoy |\n"
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    row = (f"| streams through Envoy (TLS): {_row_name(result)} | {result['deliveries_per_second']:,} | "
           f"{latency['p50']} | {latency['p99']} | {result['deliveries']:,} / {result['deliveries_expected']:,} "
           f"({result['lost']:,}) | {errors} | {realtime['rss_ready_mib']} | {result['kib_per_watcher']} | "
           f"{envoy['rss_ready_mib']} | {envoy['kib_per_watcher']} | {realtime['cpu_percent']} / "
           f"{envoy['cpu_percent']} |")
    streams = result["watchers"] + result["idle_watchers"]
    notes = [
        f"RSS with every stream live; per watcher: (that - RSS before any stream) / {streams:,} streams. "
        f"Before: realtime (+users) {result['rss_before_streams_mib']} MiB, Envoy {envoy['rss_before_streams_mib']}"
        f" MiB; at the end: {realtime['rss_mib']} and {envoy['rss_mib']} MiB. "
        f"{result['open_streams_when_ready']:,} streams open at the realtime service.",
        f"Every watcher connects from {envoy['client_address']}: the realtime per-client cap "
        f"(max_watchers_per_client, 100 by default) is lifted to {envoy['max_watchers_per_client']:,} for "
        f"this bench. Envoy's stream budget on the realtime cluster: {envoy['stream_budget']:,} "
        f"(decision 0030).",
        "Envoy when every stream was live: " + ", ".join(f"{name} {value:,}" for name, value in
                                                          sorted(envoy["stats_when_ready"].items())) + ".",
        f"{result['machine']['cores']} cores shared by the realtime process, Envoy, "
        f"{result['client_processes']} client processes and the writer.",
    ]
    if result["deliveries_per_second"] < 0.9 * result["offered_deliveries_per_second"]:
        notes.insert(0, f"Saturated: {result['offered_deliveries_per_second']:,} deliveries/s offered, "
                        f"{result['deliveries_per_second']:,}/s delivered (see latency).")
    return "\n".join([header, row, "", *notes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--idle", type=int, default=0, help="idle watchers besides the active ones")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=2, help="client processes holding the streams")
    parser.add_argument("--unbatched", action="store_true", help="one event per message, as before batching")
    parser.add_argument("--through-envoy", action="store_true",
                        help="the watchers connect to the project's Envoy over TLS, not to the server")
    parser.add_argument("--out", type=Path, help="default: bench/results/streams.json (streams-envoy.json)")
    args = parser.parse_args()
    budget = EdgeLimits().max_streams
    if args.through_envoy and args.watchers + args.idle > budget:
        parser.error(f"through Envoy at most {budget:,} streams (EdgeLimits.max_streams, decision 0030) reach "
                     f"the realtime cluster; {args.watchers + args.idle:,} asked "
                     f"(try --idle {budget // 1000 * 1000 - args.watchers})")
    out = args.out or RESULTS / ("streams-envoy.json" if args.through_envoy else "streams.json")
    with tempfile.TemporaryDirectory(prefix="conduit-bench-streams-") as state:
        result = _run_loop(run(args.watchers, args.rate, args.seconds, args.clients, Path(state),
                               batched=not args.unbatched, idle=args.idle, through_envoy=args.through_envoy))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\n(all figures: {json.dumps(result)})")


if __name__ == "__main__":
    main()
