"""`make bench`: start the mesh, seed it, drive each row at concurrency 16, print the table.

Every figure is shown beside the ceiling measured in the same run (the cheapest RPC, Ping,
through the same Envoy over the same TLS listener, and over gRPC direct), because timings on
a shared 2-core machine only mean something relative to each other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench import search
from bench.graphql import graphql_rows
from bench.graphql import markdown as graphql_markdown
from bench.load import LoadResult, run_async, run_wrk, wrk_available
from bench.seed import PASSWORD, Seeded, SeedSize, seed
from conduit.client import AsyncConduit, AsyncPager
from conduit_server.runtime.settings import Settings
from conduit_server.supervisor import Mesh
from conduit_server.users.domain.passwords import PasswordHasher

RESULTS = Path(__file__).resolve().parent / "results"
CONCURRENCY = 16


@dataclass
class Row:
    name: str
    interface: str
    result: LoadResult
    cpu_percent: dict[str, float] = field(default_factory=dict)
    rss_mib: dict[str, float] = field(default_factory=dict)
    ratio: float = 0.0
    note: str = ""


class Probe:
    """CPU and RSS of every mesh process over one row."""

    def __init__(self, mesh: Mesh) -> None:
        self.processes = {name: psutil.Process(p.pid) for name, p in mesh.processes.items()}
        self._before: dict[str, float] = {}
        self._started = 0.0

    def start(self) -> None:
        self._started = time.perf_counter()
        self._before = {name: sum(p.cpu_times()[:2]) for name, p in self.processes.items()}

    def stop(self, row: Row) -> Row:
        elapsed = time.perf_counter() - self._started
        for name, process in self.processes.items():
            row.cpu_percent[name] = round((sum(process.cpu_times()[:2]) - self._before[name]) / elapsed * 100)
            row.rss_mib[name] = round(process.memory_info().rss / 2**20, 1)
        return row


class Bench:
    def __init__(self, mesh: Mesh, seeded: Seeded, seconds: float) -> None:
        self.mesh = mesh
        self.seeded = seeded
        self.seconds = seconds
        self.settings = mesh.settings
        self.base = f"https://localhost:{self.settings.gateway_tls_port}"
        self.ca = str(Path(self.settings.state_dir).resolve() / "tls" / "ca.pem")
        self.probe = Probe(mesh)
        self.rows: list[Row] = []

    def rest(self, name: str, paths: list[str], *, method: str = "GET", body: str = "", token: str = "",
             toggle: str = "", users: int = 1, seconds: float | None = None) -> Row:
        shape = {"paths": paths, "method": method, "body": body, "token": token, "toggle": toggle,
                 "users": users}
        run_wrk(self.base, **shape, seconds=2)  # type: ignore[arg-type]
        self.probe.start()
        result = run_wrk(self.base, **shape, connections=CONCURRENCY,  # type: ignore[arg-type]
                         seconds=seconds or self.seconds)
        row = self.probe.stop(Row(name, "REST/Envoy/TLS", result))
        self.rows.append(row)
        return row

    async def grpc(self, name: str, call: Callable[[AsyncConduit, int], Awaitable[object]], *,
                   target: str | None = None, tls: bool = True, token: str = "") -> Row:
        client = await AsyncConduit.connect(target or f"localhost:{self.settings.gateway_tls_port}", tls=tls,
                                            ca_file=self.ca if tls else None, token=token or None)
        try:
            await run_async(lambda n: call(client, n), concurrency=CONCURRENCY, seconds=2)
            self.probe.start()
            result = await run_async(lambda n: call(client, n), concurrency=CONCURRENCY, seconds=self.seconds)
        finally:
            await client.close()
        row = self.probe.stop(Row(name, "gRPC/SDK" + ("/Envoy/TLS" if tls else "/direct"), result))
        self.rows.append(row)
        return row


def write_rows(bench: Bench, token: str) -> None:
    """The write path (decision 0028): create, favorite/unfavorite, comment, by one user."""
    slugs = bench.seeded.slugs
    bench.rest("POST /api/articles", ["/api/articles"], method="POST", token=token,
               body='{"article":{"title":"Bench write {n}","description":"d","body":"b",'
                    '"tagList":["bench"]}}')
    bench.rest("POST /api/articles/{slug}/favorite",
               [f"/api/articles/{slug}/favorite" for slug in slugs[:500]],
               method="POST", toggle="DELETE", token=token, body="{}")
    bench.rest("POST /api/articles/{slug}/comments",
               [f"/api/articles/{slug}/comments" for slug in slugs[:500]],
               method="POST", token=token, body='{"comment":{"body":"Bench comment {n}"}}')


def ratios(bench: Bench, ceiling_rest: float, ceiling_grpc: float) -> None:
    for row in bench.rows:
        ceiling = ceiling_rest if row.interface.startswith("REST") else ceiling_grpc
        row.ratio = row.result.rps / ceiling if ceiling else 0.0


async def run_write_rows(bench: Bench) -> dict[str, Any]:
    """`--only writes`: the REST ceiling and the write rows, nothing else."""
    ceiling_rest = bench.rest("ceiling: GET /api/ping", ["/api/ping"]).result.rps
    write_rows(bench, bench.seeded.tokens[0])
    ratios(bench, ceiling_rest, 0.0)
    return {"load_average": os.getloadavg()}


async def run_rows(bench: Bench) -> dict[str, Any]:
    seeded, slugs = bench.seeded, bench.seeded.slugs
    token = seeded.tokens[0]
    extra: dict[str, Any] = {}
    ceiling_rest = bench.rest("ceiling: GET /api/ping", ["/api/ping"]).result.rps
    ceiling_grpc = (await bench.grpc("ceiling: Ping", lambda c, _: c.ping())).result.rps
    await bench.grpc("ceiling: Ping", lambda c, _: c.ping(), target=bench.settings.address_of("articles"),
                     tls=False)
    bench.rest("GET /api/articles (anonymous)", ["/api/articles?limit=20&offset=0"])
    bench.rest("GET /api/articles (authenticated)", ["/api/articles?limit=20&offset=0"], token=token)
    bench.rest("GET /api/articles (uncached: offset)",
               [f"/api/articles?limit=20&offset={20 * (n + 1)}" for n in range(200)])
    bench.rest("GET /api/articles/feed", ["/api/articles/feed?limit=20&offset=0"], token=token)
    bench.rest("GET /api/articles/{slug}", [f"/api/articles/{slug}" for slug in slugs[:500]])
    bench.rest("GET /api/articles/{slug}/comments",
               [f"/api/articles/{slug}/comments" for slug in slugs[:500]])
    bench.rest("GET /api/tags", ["/api/tags"])
    bench.rest("GET /api/profiles/{username}",
               [f"/api/profiles/{name}" for name in seeded.usernames[:500]])
    write_rows(bench, token)
    login = json.dumps({"user": {"email": "bench{u}@example.com", "password": PASSWORD}})
    bench.rest("POST /api/users/login", ["/api/users/login"], method="POST", body=login,
               users=len(seeded.usernames))
    some_slugs, some_users = slugs[:500], seeded.usernames[:500]
    await bench.grpc("articles.get(slug)", lambda c, n: c.articles.get(some_slugs[n % len(some_slugs)]))
    await bench.grpc("articles.list() first page", lambda c, _: first_page(c.articles.list(page_size=20)))
    await bench.grpc("articles.feed() first page", lambda c, _: first_page(c.articles.feed(page_size=20)),
                     token=token)
    await bench.grpc("comments.list(slug)", lambda c, n: c.comments.list(some_slugs[n % len(some_slugs)]))
    await bench.grpc("tags.list()", lambda c, _: c.tags.list())
    await bench.grpc("profiles.get(username)",
                     lambda c, n: c.profiles.get(some_users[n % len(some_users)]))
    extra["search"] = await search.search_rows(bench)
    extra["graphql"] = await graphql_rows(bench.base, Path(bench.ca), token, seconds=bench.seconds)
    ratios(bench, ceiling_rest, ceiling_grpc)
    extra["argon2_hashes_per_second"] = await argon2_rate()
    extra["login_interference"] = login_interference(bench, slugs)
    extra["memory"] = memory_soak(bench, slugs, token)
    return extra


async def first_page(pager: AsyncPager[Any, Any]) -> object:
    """One page of a list call: what a client showing page one pays."""
    async for page in pager.pages():
        return page
    return None


async def argon2_rate(samples: int = 24) -> float:
    hasher = PasswordHasher()
    try:
        started = time.perf_counter()
        await asyncio.gather(*(hasher.hash(f"password-{n}") for n in range(samples)))
        return samples / (time.perf_counter() - started)
    finally:
        hasher.close()


def login_interference(bench: Bench, slugs: list[str]) -> dict[str, float]:
    """p99 of GET article alone, then while logins run at the same time."""
    paths = [f"/api/articles/{slug}" for slug in slugs[:500]]
    alone = run_wrk(bench.base, paths=paths, connections=8, seconds=bench.seconds)
    login = json.dumps({"user": {"email": "bench{u}@example.com", "password": PASSWORD}})
    env = {**os.environ}
    with subprocess.Popen([sys.executable, "-c", (  # noqa: S603 - our own interpreter
            "from bench.load import run_wrk; import sys; "
            f"run_wrk({bench.base!r}, paths=['/api/users/login'], method='POST', body={login!r}, "
            f"users={len(bench.seeded.usernames)}, connections=8, seconds={bench.seconds + 2})")],
            env=env) as logins:
        time.sleep(1)
        together = run_wrk(bench.base, paths=paths, connections=8, seconds=bench.seconds)
        logins.wait()
    return {"p99_alone_ms": alone.p99_ms, "p99_with_logins_ms": together.p99_ms,
            "ratio": together.p99_ms / alone.p99_ms if alone.p99_ms else 0.0}


def memory_soak(bench: Bench, slugs: list[str], token: str, seconds: float = 60.0) -> dict[str, Any]:
    """RSS per process after one 60 s mixed load, and growth over a second one."""
    reads = [f"/api/articles/{slug}" for slug in slugs[:500]]
    reads += ["/api/articles?limit=20&offset=0", "/api/tags"]
    rss: list[dict[str, float]] = []
    for _ in range(2):
        run_wrk(bench.base, paths=reads, connections=CONCURRENCY, seconds=seconds, token=token)
        rss.append({name: round(p.memory_info().rss / 2**20, 1) for name, p in bench.probe.processes.items()})
    growth = {name: round((rss[1][name] - rss[0][name]) / rss[0][name] * 100, 1) for name in rss[0]}
    return {"after_first_mib": rss[0], "after_second_mib": rss[1], "growth_percent": growth}


def markdown(rows: list[Row], extra: dict[str, Any], seconds: float) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [
        f"Machine: {os.cpu_count()} cores ({cpu}), {round(psutil.virtual_memory().total / 2**30)} GiB; "
        f"Python {platform.python_version()}; {seconds:.0f} s per row at concurrency {CONCURRENCY}.",
        "",
        "| row | interface | req/s | p50 ms | p99 ms | errors | x ceiling | CPU % users/articles/envoy "
        "| RSS MiB users/articles |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        cpu_cells = "/".join(str(row.cpu_percent.get(n, "-")) for n in ("users", "articles", "envoy"))
        rss_cells = "/".join(str(row.rss_mib.get(n, "-")) for n in ("users", "articles"))
        lines.append(f"| {row.name} | {row.interface} | {row.result.rps:,.0f} | {row.result.p50_ms:.1f} "
                     f"| {row.result.p99_ms:.1f} | {row.result.errors} | {row.ratio:.2f} | {cpu_cells} "
                     f"| {rss_cells} |")
    lines.append("")
    if "load_average" in extra:
        lines.append("Load average (1/5/15 min) at the end: "
                     + "/".join(f"{value:.1f}" for value in extra["load_average"]))
    if "argon2_hashes_per_second" in extra:
        lines.append(f"argon2id hashes/s (production parameters): {extra['argon2_hashes_per_second']:.1f}")
    if "login_interference" in extra:
        interference = extra["login_interference"]
        lines.append(f"GET article p99 alone {interference['p99_alone_ms']:.1f} ms, with logins running "
                     f"{interference['p99_with_logins_ms']:.1f} ms ({interference['ratio']:.2f}x)")
    if "memory" in extra:
        memory = extra["memory"]
        lines.append(f"RSS after 60 s load (MiB): {memory['after_first_mib']}; growth over a second 60 s: "
                     f"{memory['growth_percent']} %")
    if "search" in extra:
        lines += ["", search.markdown(rows, [extra["search"], extra.get("search_elasticsearch", {})])]
    if "streams" in extra:
        lines.append(f"Streams: {extra['streams']}")
    if "graphql" in extra:
        lines += ["", graphql_markdown(extra["graphql"])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "10")))
    parser.add_argument("--state-dir", type=Path, default=Path(".state-bench"))
    parser.add_argument("--small", action="store_true", help="a small data set, for trying the harness")
    parser.add_argument("--only", choices=["writes"], help="only the REST ceiling and the write rows "
                        "(results go to bench/results/writes.md, the full table is left alone)")
    args = parser.parse_args()
    if not wrk_available():
        sys.exit("wrk is required (Debian: apt-get install wrk); `make bench` installs it")
    if os.environ.get("BENCH_ROWS") == "search":  # only the search rows (bench/search.py)
        search.main()
        return
    if os.environ.get("BENCH_ROWS") == "streams-envoy":  # 10,000 watchers through Envoy (bench/streams.py)
        subprocess.run([sys.executable, "-m", "bench.streams", "--through-envoy", "--watchers", "1000",
                        "--idle", "9000"], check=True)
        return
    shutil.rmtree(args.state_dir, ignore_errors=True)
    # One load generator on loopback is one client IP, and every write row is one user at hundreds of
    # writes a second: lift the per-IP and per-user limits for the run (decision 0029).
    settings = Settings(state_dir=args.state_dir, log_level="WARNING",
                        registrations_per_ip_per_hour=1_000_000, logins_per_ip_per_quarter_hour=10_000_000,
                        writes_per_user_per_minute=100_000_000)
    mesh = Mesh(settings, with_graphql=True, log_dir=args.state_dir / "logs")
    mesh.start()
    try:
        size = SeedSize(users=60, articles=600, favorites=200, comments=200) if args.small else SeedSize()
        started = time.perf_counter()
        seeded = asyncio.run(seed(f"localhost:{settings.gateway_tls_port}",
                                  str(args.state_dir.resolve() / "tls" / "ca.pem"), mesh.env, size))
        print(f"seeded {size} in {time.perf_counter() - started:.0f} s", flush=True)
        bench = Bench(mesh, seeded, args.seconds)
        extra = asyncio.run(run_write_rows(bench) if args.only else run_rows(bench))
        extra.setdefault("load_average", os.getloadavg())
        streams = Path(__file__).resolve().parent / "streams.py"
        if streams.exists() and not args.only:
            done = subprocess.run([sys.executable, "-m", "bench.streams"],
                                  capture_output=True, text=True, check=False)
            output = done.stdout.strip().splitlines()
            extra["streams"] = output[-1] if done.returncode == 0 and output else done.stderr[-300:]
    finally:
        mesh.stop()
    es_rows, extra["search_elasticsearch"] = search.elasticsearch_rows(args.seconds,
                                                                        args.state_dir / "search-elasticsearch")
    bench.rows += es_rows
    table = markdown(bench.rows, extra, args.seconds)
    RESULTS.mkdir(exist_ok=True)
    if args.only:
        (RESULTS / f"{args.only}.md").write_text(table + "\n")
        print(table)
        return
    (RESULTS / "latest.md").write_text(table + "\n")
    (RESULTS / "latest.json").write_text(json.dumps(
        {"rows": [asdict(row) | {"rps": row.result.rps} for row in bench.rows], **extra},
        indent=2, default=str))
    print(table)


if __name__ == "__main__":
    main()
