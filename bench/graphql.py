"""GraphQL rows of `make bench`: the articles-with-authors query against the REST list it mirrors, and one new
article delivered to 1,000 WebSocket subscribers (graphql-transport-ws through Envoy on the TLS port).

`python -m bench.graphql` runs these rows alone on a small mesh of its own (a few minutes); `bench.run`
calls `graphql_rows` on its seeded mesh. Every figure is printed with the load average, since the
machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.load import LoadResult, run_wrk, wrk_available
from conduit_server.replicas import free_ports
from conduit_server.runtime.settings import Settings
from conduit_server.supervisor import Mesh

ARTICLES_QUERY = ("{ articles(first: 20) { totalCount nodes { slug title description tagList createdAt updatedAt "
                  "favorited favoritesCount author { username bio image following } } } }")
WATCH = "subscription { articleEvents { eventId type article { slug title } } }"
PROTOCOL = "graphql-transport-ws"
HANDSHAKES_AT_ONCE = 32
# Subscribers per client address: the realtime service caps streams per client (100 by default) and
# counts the browser's address, which Envoy and the graphql service pass on. Like 20 browsers of
# 50 tabs each, from 127.0.0.2, 127.0.0.3, … (every 127.x.y.z is this machine's loopback).
SUBSCRIBERS_PER_ADDRESS = 50
# A subscriber that has not joined (its first HEARTBEAT) this long after subscribing counts as failed.
JOIN_SECONDS = 120.0


@dataclass
class Delivery:
    subscribers: int
    received: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    connect_seconds: float


def load_average() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def list_throughput(base: str, *, seconds: float, connections: int, token: str = "") -> tuple[LoadResult, LoadResult]:
    """(REST GET /api/articles?limit=20, POST /graphql articles(first: 20) with authors), same load; with
    `token`, both signed in: the GraphQL answer is then executed every time (decision 0047 shares only
    anonymous answers) and the REST list is personalised."""
    body = json.dumps({"query": ARTICLES_QUERY})
    for warm in (True, False):
        rest = run_wrk(base, paths=["/api/articles?limit=20&offset=0"], connections=connections, token=token,
                       seconds=2 if warm else seconds)
        graphql = run_wrk(base, paths=["/graphql"], method="POST", body=body, connections=connections,
                          token=token, seconds=2 if warm else seconds)
    return rest, graphql


class FanOut:
    """`subscribers` subscriptions to new articles; the arrival time of one article at each."""

    def __init__(self, url: str, ca: Path, subscribers: int) -> None:
        self.url = url
        self.context = ssl.create_default_context(cafile=str(ca))
        self.subscribers = subscribers
        self.settled = asyncio.Event()
        self.joined_count = 0
        self.failed = 0
        # The article to time, known before it is created: its event may arrive before the mutation's answer.
        self.title = ""
        self.arrivals: list[float] = []
        # TLS handshakes in flight at once: 1,000 together starve one client process on 2 shared cores.
        self.handshakes = asyncio.Semaphore(HANDSHAKES_AT_ONCE)

    def _settle(self, *, joined: bool) -> None:
        if joined:
            self.joined_count += 1
        else:
            self.failed += 1
        if self.joined_count + self.failed == self.subscribers:
            self.settled.set()

    async def subscriber(self, index: int) -> Any:
        source = f"127.0.0.{2 + index // SUBSCRIBERS_PER_ADDRESS}"
        try:
            async with self.handshakes:
                connection = await websockets.connect(self.url, ssl=self.context,
                                                      subprotocols=[PROTOCOL],  # type: ignore[list-item]
                                                      open_timeout=120, max_queue=None, local_addr=(source, 0))
                await connection.send(json.dumps({"type": "connection_init", "payload": {}}))
                await asyncio.wait_for(connection.recv(), 120)  # connection_ack
                await connection.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": WATCH}}))
        except (OSError, TimeoutError, websockets.WebSocketException):
            self._settle(joined=False)
            raise
        counted = False
        # Bounded: a subscriber not joined by then, or that hears nothing for this long after, has failed
        # (the server's pings alone must not keep a subscriber that never joined waiting).
        join_by = time.monotonic() + JOIN_SECONDS
        try:
            while True:
                wait = 300.0 if counted else max(0.0, join_by - time.monotonic())
                raw = await asyncio.wait_for(connection.recv(), wait)
                message = json.loads(raw)
                if message["type"] == "ping":
                    await connection.send(json.dumps({"type": "pong"}))
                    continue
                if message["type"] != "next":
                    break
                event = message["payload"]["data"]["articleEvents"]
                if event["type"] == "HEARTBEAT" and not counted:
                    counted = True
                    self._settle(joined=True)
                elif event["type"] == "ARTICLE_CREATED" and event["article"]["title"] == self.title:
                    self.arrivals.append(time.perf_counter())
                    break
        except (TimeoutError, websockets.WebSocketException):
            pass  # counted below: the row reports how many of the opened subscribers joined
        finally:
            if not counted:  # closed, refused or failed before it joined
                self._settle(joined=False)
        return connection


async def fan_out(base: str, ca: Path, token: str, subscribers: int = 1000) -> Delivery:
    """Open `subscribers` subscriptions, wait until every one has joined, publish one article, and time
    its arrival at each (from just before the mutation is sent)."""
    fan = FanOut(base.replace("https://", "wss://") + "/graphql", ca, subscribers)
    started = time.perf_counter()
    tasks = [asyncio.create_task(fan.subscriber(index)) for index in range(subscribers)]
    await asyncio.wait_for(fan.settled.wait(), 900)
    connect_seconds = time.perf_counter() - started
    async with httpx.AsyncClient(verify=fan.context, timeout=60) as client:
        fan.title = f"Fan-out {time.time_ns()}"
        mutation = {"query": "mutation($t: String!) { createArticle(article: {title: $t, description: \"d\", "
                             "body: \"b\"}) { slug } }", "variables": {"t": fan.title}}
        sent = time.perf_counter()
        answer = await client.post(f"{base}/graphql", json=mutation, headers={"Authorization": f"Token {token}"})
        answer.raise_for_status()
        if "errors" in answer.json():
            raise RuntimeError(f"the fan-out's article was not created: {answer.json()['errors']}")
    done, _ = await asyncio.wait(tasks, timeout=60)
    for task in tasks:
        task.cancel()
    # All at once: each close waits for Envoy to close the TCP connection after the closing handshake
    # (its delayed_close_timeout, 1 s), so one after the other, 1,000 of them took 17 minutes.
    await asyncio.gather(*(task.result().close() for task in done if not task.cancelled() and not task.exception()),
                         return_exceptions=True)
    delays = sorted((arrival - sent) * 1000 for arrival in fan.arrivals)

    def pick(share: float) -> float:
        return delays[min(len(delays) - 1, int(share * len(delays)))] if delays else float("nan")

    return Delivery(fan.joined_count, len(delays), pick(0.5), pick(0.99), delays[-1] if delays else float("nan"),
                    connect_seconds)


async def graphql_rows(base: str, ca: Path, token: str, *, seconds: float, connections: int = 16
                       ) -> dict[str, Any]:
    before = load_average()
    rest, graphql = await asyncio.to_thread(list_throughput, base, seconds=seconds, connections=connections)
    rest_in, graphql_in = await asyncio.to_thread(list_throughput, base, seconds=seconds, connections=connections,
                                                  token=token)
    delivery = await fan_out(base, ca, token)
    return {
        "load_average_before": before, "load_average_after": load_average(),
        "rest_list_rps": round(rest.rps), "rest_list_p99_ms": rest.p99_ms, "rest_errors": rest.errors,
        "graphql_list_rps": round(graphql.rps), "graphql_list_p99_ms": graphql.p99_ms,
        "graphql_errors": graphql.errors,
        "graphql_vs_rest": round(graphql.rps / rest.rps, 2) if rest.rps else 0.0,
        "rest_signed_in_rps": round(rest_in.rps), "rest_signed_in_p99_ms": rest_in.p99_ms,
        "rest_signed_in_errors": rest_in.errors,
        "graphql_signed_in_rps": round(graphql_in.rps), "graphql_signed_in_p99_ms": graphql_in.p99_ms,
        "graphql_signed_in_errors": graphql_in.errors,
        "graphql_vs_rest_signed_in": round(graphql_in.rps / rest_in.rps, 2) if rest_in.rps else 0.0,
        "ws_subscribers": delivery.subscribers, "ws_received": delivery.received,
        "ws_delivery_p50_ms": round(delivery.p50_ms, 1), "ws_delivery_p99_ms": round(delivery.p99_ms, 1),
        "ws_delivery_max_ms": round(delivery.max_ms, 1), "ws_connect_seconds": round(delivery.connect_seconds, 1),
    }


def markdown(rows: dict[str, Any]) -> str:
    return "\n".join([
        f"GraphQL (load average {rows['load_average_before']} before, {rows['load_average_after']} after):",
        "",
        "| row | req/s | p99 ms | errors | vs REST list |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| GET /api/articles?limit=20 (REST) | {rows['rest_list_rps']:,} | {rows['rest_list_p99_ms']:.1f} "
        f"| {rows['rest_errors']} | 1.00 |",
        f"| POST /graphql articles(first: 20) with authors (anonymous: shared answer) | {rows['graphql_list_rps']:,} "
        f"| {rows['graphql_list_p99_ms']:.1f} | {rows['graphql_errors']} | {rows['graphql_vs_rest']:.2f} |",
        f"| GET /api/articles?limit=20 (REST, signed in) | {rows['rest_signed_in_rps']:,} "
        f"| {rows['rest_signed_in_p99_ms']:.1f} | {rows['rest_signed_in_errors']} | 1.00 |",
        f"| POST /graphql articles(first: 20) with authors (signed in: executed) | {rows['graphql_signed_in_rps']:,} "
        f"| {rows['graphql_signed_in_p99_ms']:.1f} | {rows['graphql_signed_in_errors']} "
        f"| {rows['graphql_vs_rest_signed_in']:.2f} |",
        "",
        f"New article to {rows['ws_subscribers']:,} joined WebSocket subscribers (of 1,000 opened): "
        f"{rows['ws_received']:,} received, "
        f"delivery p50 {rows['ws_delivery_p50_ms']} ms, p99 {rows['ws_delivery_p99_ms']} ms, "
        f"max {rows['ws_delivery_max_ms']} ms (all joined in {rows['ws_connect_seconds']} s)",
    ])


async def _small_run(mesh: Mesh, ca: Path, seconds: float) -> dict[str, Any]:
    base = f"https://localhost:{mesh.settings.gateway_tls_port}"
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca)), timeout=60) as client:
        tokens = []
        for index in range(20):
            user = {"username": f"gbench{index}", "email": f"gbench{index}@example.com", "password": "password123"}
            answer = await client.post(f"{base}/api/users", json={"user": user})
            tokens.append(answer.json()["user"]["token"])
        for index in range(60):
            article = {"title": f"Bench {index}", "description": "d", "body": "b", "tagList": ["bench"]}
            await client.post(f"{base}/api/articles", json={"article": article},
                              headers={"Authorization": f"Token {tokens[index % 20]}"})
    return await graphql_rows(base, ca, tokens[0], seconds=seconds)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--state-dir", type=Path, default=Path(".state-bench-graphql"))
    args = parser.parse_args()
    if not wrk_available():
        raise SystemExit("wrk is required (Debian: apt-get install wrk); `make bench` installs it")
    shutil.rmtree(args.state_dir, ignore_errors=True)
    signal.signal(signal.SIGTERM, _interrupt)  # a stopped run still stops its mesh
    # Free ports: other meshes on this machine may hold the defaults.
    # Every `*_port` setting and the graphql service's, taken in one go.
    names = [name for name in Settings.model_fields if name.endswith("_port")]
    *taken, graphql_port = free_ports(len(names) + 1)
    ports: dict[str, Any] = dict(zip(names, taken, strict=True))
    settings = Settings.model_validate({"state_dir": args.state_dir, "log_level": "WARNING",
                                        "registrations_per_ip_per_hour": 1_000_000, **ports,
                                        "graphql": {"port": graphql_port}})
    mesh = Mesh(settings, with_graphql=True, log_dir=args.state_dir / "logs")
    mesh.start()
    try:
        rows = asyncio.run(_small_run(mesh, args.state_dir.resolve() / "tls" / "ca.pem", args.seconds))
    finally:
        mesh.stop()
    print(markdown(rows))


if __name__ == "__main__":
    main()
