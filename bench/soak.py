"""`make soak`: the mesh under a steady mixed load at half its measured ceiling for SOAK_SECONDS (600 by
default), sampling the RSS and open file descriptors of every process, PostgreSQL's connections, Redis'
memory, the outbox's row count and the event stream's length. It fails when any of them grows beyond its
tolerance between the start and the end of the run (RSS: 10 %), and prints the figures either way.

The outbox retention is shortened (a quarter of the run) so that a bounded outbox and stream show as a
plateau within the run. `check_growth` is the one judgement, used by the soak and by the test that proves
it catches a leak (tests/chaos/test_soak.py, with CONDUIT_TEST_LEAK_BYTES_PER_SECOND).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil
import redis

from bench.harness import Account, ChaosMesh, Load, make_accounts
from conduit_server.runtime.outbox import stream_name

MIB = 2**20


@dataclass(frozen=True)
class Tolerance:
    """How much a figure may grow from the start to the end of a soak: the larger of a share of its
    starting value and an absolute allowance (small figures fluctuate by a few units)."""

    rss_share: float = 0.10
    rss_bytes: int = 8 * MIB
    fds: int = 16
    pg_connections: int = 10
    redis_memory_share: float = 0.5
    redis_memory_bytes: int = 16 * MIB
    # Outbox rows and stream entries: at most this many times what the retention window holds.
    bounded_factor: float = 2.0


@dataclass
class Sample:
    at: float
    rss: dict[str, int]
    fds: dict[str, int]
    pg_connections: int
    redis_memory: int
    outbox_rows: int
    stream_length: int


@dataclass
class SoakResult:
    seconds: float
    rate: float
    ceiling: float
    requests: int
    failed: int
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _phase(samples: list[Sample], first: bool) -> list[Sample]:
    """The first or the last third of the samples (at least one)."""
    third = max(1, len(samples) // 3)
    return samples[:third] if first else samples[-third:]


def _median(values: list[int]) -> float:
    return float(statistics.median(values)) if values else 0.0


def check_growth(samples: list[Sample], tolerance: Tolerance, *, bound_rows: float) -> list[str]:
    """Every figure that grew beyond its tolerance, compared as the median of the first third of the
    samples against the median of the last third (noise averages out; a leak keeps growing).
    `bound_rows`: the most outbox rows / stream entries the retention window should hold."""
    if len(samples) < 3:
        return ["too few samples to judge growth"]
    start, end = _phase(samples, True), _phase(samples, False)
    problems: list[str] = []
    names = set(start[0].rss) & set(end[-1].rss)
    for name in sorted(names):
        before = _median([s.rss[name] for s in start if name in s.rss])
        after = _median([s.rss[name] for s in end if name in s.rss])
        if after - before > max(tolerance.rss_share * before, tolerance.rss_bytes):
            problems.append(f"RSS of {name} grew {before / MIB:.0f} -> {after / MIB:.0f} MiB")
        fds_before = _median([s.fds[name] for s in start if name in s.fds])
        fds_after = _median([s.fds[name] for s in end if name in s.fds])
        if fds_after - fds_before > tolerance.fds:
            problems.append(f"open fds of {name} grew {fds_before:.0f} -> {fds_after:.0f}")
    connections = (_median([s.pg_connections for s in start]), _median([s.pg_connections for s in end]))
    if connections[1] - connections[0] > tolerance.pg_connections:
        problems.append(f"PostgreSQL connections grew {connections[0]:.0f} -> {connections[1]:.0f}")
    memory = (_median([s.redis_memory for s in start]), _median([s.redis_memory for s in end]))
    if memory[1] - memory[0] > max(tolerance.redis_memory_share * memory[0], tolerance.redis_memory_bytes):
        problems.append(f"Redis memory grew {memory[0] / MIB:.1f} -> {memory[1] / MIB:.1f} MiB")
    limit = tolerance.bounded_factor * bound_rows + 100
    for label, last in (("outbox rows", end[-1].outbox_rows), ("stream entries", end[-1].stream_length)):
        if last > limit:
            problems.append(f"{label} not bounded: {last} > {limit:.0f}")
    return problems


def sample(mesh: ChaosMesh, database_url: str) -> Sample:
    rss: dict[str, int] = {}
    fds: dict[str, int] = {}
    for name, process in mesh.processes().items():
        try:
            rss[name] = process.memory_info().rss
            fds[name] = process.num_fds()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue

    async def database() -> tuple[int, int]:
        connection = await asyncpg.connect(database_url)
        try:
            connections = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            rows = await connection.fetchval("SELECT count(*) FROM articles.outbox")
        finally:
            await connection.close()
        return int(connections) - 1, int(rows)  # not counting this one

    connections, rows = asyncio.run(database())
    assert mesh.redis is not None
    client = redis.Redis(unix_socket_path=str(mesh.redis.socket))
    try:
        memory = int(client.info("memory")["used_memory"])
        length = int(client.xlen(stream_name("articles")))
    finally:
        client.close()
    return Sample(time.monotonic(), rss, fds, connections, memory, rows, length)


async def measure_ceiling(mesh: ChaosMesh, accounts: list[Account], seconds: float = 10.0) -> float:
    """Requests per second this load mix reaches with no pacing (16 connections)."""
    load = Load(mesh.http, accounts, rate=1e6, workers=16)
    running = asyncio.create_task(load.run())
    await asyncio.sleep(seconds)  # the measuring window
    load.stop()
    await running
    return sum(o.ok for o in load.outcomes) / seconds


async def soak(state: Path, *, seconds: float, rate: float | None = None, extra_env: dict[str, str] | None = None,
               sample_every: float | None = None, tolerance: Tolerance | None = None) -> SoakResult:
    """Start a mesh, run the load for `seconds` at `rate` (None: half the measured ceiling), sample."""
    retention = max(20.0, seconds / 4)
    env = {"CONDUIT_OUTBOX_RETENTION_SECONDS": f"{retention:g}",
           "CONDUIT_OUTBOX_PRUNE_EVERY_SECONDS": f"{max(5.0, retention / 4):g}", **(extra_env or {})}
    mesh = ChaosMesh(state, replicas=int(os.environ.get("CONDUIT_REPLICAS", "1")), extra_env=env)
    await asyncio.to_thread(mesh.start)
    try:
        accounts = await make_accounts(mesh.http, 4)
        ceiling = await measure_ceiling(mesh, accounts) if rate is None else 0.0
        target = rate if rate is not None else max(1.0, ceiling / 2)
        load = Load(mesh.http, accounts, rate=target, workers=16)
        running = asyncio.create_task(load.run())
        assert mesh.postgres is not None
        every = sample_every or max(2.0, seconds / 30)
        samples: list[Sample] = []
        warm_until = time.monotonic() + min(30.0, seconds * 0.15)
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            await asyncio.sleep(every)  # the sampling period
            if time.monotonic() >= warm_until:
                samples.append(await asyncio.to_thread(sample, mesh, mesh.postgres.url))
        load.stop()
        await running
        writes = sum(o.ok for o in load.outcomes if not o.idempotent) / seconds
        result = SoakResult(seconds, target, ceiling, len(load.outcomes), sum(not o.ok for o in load.outcomes),
                            samples)
        # Every write appends at most one outbox event; the retention (plus one prune period) bounds them.
        result.problems = check_growth(samples, tolerance or Tolerance(), bound_rows=writes * retention * 1.25)
        if result.failed:
            result.problems.append(f"{result.failed} requests failed")
        return result
    finally:
        await asyncio.to_thread(mesh.stop)


def report(result: SoakResult) -> str:
    first, last = result.samples[0], result.samples[-1]
    lines = [f"soak: {result.seconds:.0f}s at {result.rate:.0f} req/s (ceiling {result.ceiling:.0f} req/s), "
             f"{result.requests} requests, {result.failed} failed, {len(result.samples)} samples",
             "| figure | start | end |", "|---|---|---|"]
    for name in sorted(first.rss):
        if name in last.rss:
            lines.append(f"| RSS {name} MiB | {first.rss[name] / MIB:.1f} | {last.rss[name] / MIB:.1f} |")
            lines.append(f"| open fds {name} | {first.fds[name]} | {last.fds[name]} |")
    lines += [f"| PostgreSQL connections | {first.pg_connections} | {last.pg_connections} |",
              f"| Redis memory MiB | {first.redis_memory / MIB:.1f} | {last.redis_memory / MIB:.1f} |",
              f"| outbox rows | {first.outbox_rows} | {last.outbox_rows} |",
              f"| stream entries | {first.stream_length} | {last.stream_length} |",
              "verdict: " + ("flat" if not result.problems else "GREW: " + "; ".join(result.problems))]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "600")))
    parser.add_argument("--rate", type=float, default=None, help="requests per second (default: half the ceiling)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="conduit-soak-") as scratch:
        result = asyncio.run(soak(Path(scratch), seconds=args.seconds, rate=args.rate))
    print(report(result))
    if result.problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
