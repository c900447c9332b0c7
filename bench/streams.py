"""Fan-out benchmark of the realtime service: N watchers on one process, events at R/s for T seconds.

    python -m bench.streams [--watchers 1000] [--idle 0] [--rate 50] [--seconds 20] [--clients 2] [--unbatched]

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

Prints a Markdown table row and writes bench/results/streams.json.
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
import uuid
from array import array
from collections import Counter
from collections.abc import Coroutine
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
from conduit_server.articles.app import MIGRATIONS as ARTICLE_MIGRATIONS
from conduit_server.articles.repository import models as article_models
from conduit_server.realtime.app import RealtimeApp
from conduit_server.realtime.domain.ids import StreamId
from conduit_server.realtime.events import decode_entries
from conduit_server.realtime.repository.history import xrange
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


# -- the watchers (client processes) -----------------------------------------------------------


def _run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """On uvloop, as `conduit serve` runs the services."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _client_process(address: str, count: int, batched: bool, pipe: Connection, idle: int = 0) -> None:
    _run_loop(_client(address, count, batched, pipe, idle))


def _events(response: Any) -> Any:
    """The events of one message: batched (`events`) or not (`event`)."""
    return response.events or (response.event,)


async def _joined(call: Any) -> None:
    """The first message says the stream is live."""
    first: Any = await call.read()
    assert [event.type for event in _events(first)] == [realtime_pb2.EVENT_TYPE_HEARTBEAT]


async def _client(address: str, count: int, batched: bool, pipe: Connection, idle: int = 0) -> None:
    channel_count = max(1, -(-count // STREAMS_PER_CHANNEL))
    idle_channel_count = -(-idle // STREAMS_PER_CHANNEL)
    channels_ = [grpc.aio.insecure_channel(address) for _ in range(channel_count + idle_channel_count)]
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
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # "stop"
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


async def _start(state: Path) -> Mesh:
    postgres, redis_server = EmbeddedPostgres(state / "postgres"), EmbeddedRedis(state / "redis")
    database_url = await asyncio.to_thread(postgres.start)
    redis_url = await asyncio.to_thread(redis_server.start)
    stops: list[Any] = [lambda: asyncio.to_thread(postgres.stop), lambda: asyncio.to_thread(redis_server.stop)]
    settings = Settings(database_url=database_url, redis_url=redis_url, internal_token=INTERNAL_TOKEN,
                        key_encryption_key="bench-key-encryption-key-with-enough-entropy")
    articles = Database(database_url, "articles")  # the writer's outbox
    await migrations.upgrade(articles, ARTICLE_MIGRATIONS, article_models.Base.metadata)
    await articles.close()
    users_app = UsersApp(settings, Database(database_url, "users"), aioredis.Redis.from_url(redis_url),
                         hasher=PasswordHasher(Argon2Parameters(time_cost=1, memory_cost_kib=1024)))
    users = GrpcServer(users_app, host="127.0.0.1", port=0, verifier=users_app.verifier,
                       internal_token=INTERNAL_TOKEN)
    users_address = f"127.0.0.1:{await users.start()}"
    stops.append(users.stop)
    authors = await _register_authors(users_address, AUTHORS, users_app.verifier.verify)
    users_channel = channels.internal_channel(users_address, INTERNAL_TOKEN)
    stops.append(lambda: users_channel.close(None))
    app = RealtimeApp(aioredis.Redis.from_url(redis_url), UsersClient(users_channel, timeout_cap_seconds=5.0),
                      RealtimeSettings(articles_stream=STREAM, users_stream=outbox.stream_name("users"),
                                       metrics_log_seconds=0, max_watchers_per_client=1_000_000))
    realtime = GrpcServer(app, host="127.0.0.1", port=0, verifier=None, internal_token=INTERNAL_TOKEN)
    address = f"127.0.0.1:{await realtime.start()}"
    stops.append(realtime.stop)
    return Mesh(database_url, redis_url, address, app, authors, stops)


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


async def run(watchers: int, rate: float, seconds: float, clients: int, state: Path, *,
              batched: bool = True, idle: int = 0) -> dict[str, Any]:
    mesh = await _start(state)
    me = psutil.Process(os.getpid())
    rss_before = me.memory_info().rss
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    received = Received()
    try:
        for n in range(clients):
            ours, theirs = context.Pipe()
            process = context.Process(target=_client_process, daemon=True, args=(
                mesh.address, _share(watchers, clients, n), batched, theirs, _share(idle, clients, n)))
            process.start()
            pipes.append(ours)
            processes.append(process)
        for pipe in pipes:
            await asyncio.to_thread(pipe.recv)  # ("ready", n): every stream is live
        rss_ready = me.memory_info().rss
        open_streams = mesh.app.metrics()["watchers"]
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
        metrics = mesh.app.metrics()
        for pipe in pipes:
            pipe.send("stop")
            _, *figures = await asyncio.to_thread(pipe.recv)
            received.add(*figures)
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
    return {
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


def markdown(result: dict[str, Any]) -> str:
    latency = result["latency_ms"]
    header = ("| row | deliveries/s | p50 ms | p99 ms | misses (lost) | slow-consumer cut-offs | "
              "CPU % realtime (+users) | RSS MiB |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    mode = f"batched, {result['events_per_message']:g} events/message" if result["batched"] else "unbatched"
    idle = f" + {result['idle_watchers']:,} idle" if result.get("idle_watchers") else ""
    row = (f"| streams: {result['watchers']:,} watchers{idle} x {result['rate_per_second']:g} events/s x "
           f"{result['seconds']:g} s ({mode}) | {result['deliveries_per_second']:,} | {latency['p50']} | "
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--idle", type=int, default=0, help="idle watchers besides the active ones")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=2, help="client processes holding the streams")
    parser.add_argument("--unbatched", action="store_true", help="one event per message, as before batching")
    parser.add_argument("--out", type=Path, default=RESULTS / "streams.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="conduit-bench-streams-") as state:
        result = _run_loop(run(args.watchers, args.rate, args.seconds, args.clients, Path(state),
                               batched=not args.unbatched, idle=args.idle))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\n(all figures: {json.dumps(result)})")


if __name__ == "__main__":
    main()
