"""The search rows of `make bench` (issue 16 budgets), on PostgreSQL and on a real Elasticsearch node.

Per backend, on a mesh holding 10,000 articles:
- search through Envoy (REST/TLS, wrk) at concurrency 16 and at concurrency 1: selective, broad
  (every article matches) and misspelt queries;
- indexing lag while 100 articles/s are written through the SDK: for each article, the time from
  its create being acknowledged to a search finding it (a poller asks every 50 ms for the words
  of each second's batch, which fit one page);
- a full reindex: its time, and the search process's RSS sampled every 50 ms throughout.
On PostgreSQL it also keeps `EXPLAIN (ANALYZE, BUFFERS)` of the search statement (results/search-explain.txt).

`BENCH_ROWS=search make bench` runs only these (both backends, a 100-user seed without follows,
favorites or comments: search reads articles only); `make bench` runs them within the whole table.
The Elasticsearch half needs Java (and Maven for the node's first fetch); without it the row says
"skipped: <reason>".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from bench.load import LoadResult, run_wrk
from bench.seed import PASSWORD, SeedSize, seed
from conduit.client import AsyncConduit, AsyncPager
from conduit.search.v1.search_pb2 import SearchArticlesResponse

if TYPE_CHECKING:
    from bench.run import Bench

RESULTS = Path(__file__).resolve().parent / "results"
SEARCH_SEED = SeedSize(users=100, follows_per_user=0, articles=10_000, favorites=0, comments=0)
LAG_RATE = 100  # articles written per second
LAG_SECONDS = 20.0
LAG_POLL_SECONDS = 0.05
# Selective: 4,000 distinct queries (one article each) in a fixed shuffled order, each asked once per
# turn: at this machine's rates a turn takes longer than 4 s, so none is answered from the shared
# answers (CONDUIT_SEARCH_ANSWERS_SHARED_SECONDS, decision 0048): the row measures the index every
# time. Broad and misspelt repeat one query: they measure the shared path.
SELECTIVE = [f"/api/search/articles?q={n}+{tag}" for n in range(2_000) for tag in ("grpc", "python")]
random.Random(16).shuffle(SELECTIVE)  # noqa: S311 - a fixed order, not a secret
QUERIES = {
    "selective": SELECTIVE,
    "broad: every article": ["/api/search/articles?q=mesh+latency"],
    "misspelt": ["/api/search/articles?q=latncy+envoi"],
}


def load_average() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


async def admin_client(bench: Bench) -> AsyncConduit:
    """A client of the first seeded user, made admin with the operator CLI."""
    username = bench.seeded.usernames[0]
    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "conduit_server", "users", "grant-role",
                                             "--username", username, "--role", "admin"],
                            env=bench.mesh.env, capture_output=True, check=True)
    target = f"localhost:{bench.settings.gateway_tls_port}"
    async with await AsyncConduit.connect(target, ca_file=bench.ca) as login:
        token = (await login.users.login(email=f"{username}@example.com", password=PASSWORD)).token
    return await AsyncConduit.connect(target, ca_file=bench.ca, token=token, timeout=600)


async def caught_up(admin: AsyncConduit, documents: int, *, seconds: float = 900) -> float:
    """Seconds until the index holds `documents` and nothing is waiting to be indexed."""
    started = time.perf_counter()
    while (status := await admin.search.status()).indexing_lag_seconds > 0 or status.documents_count < documents:
        if time.perf_counter() - started > seconds:
            raise RuntimeError(f"the index did not catch up: {status}")
        await asyncio.sleep(0.5)
    return time.perf_counter() - started


def query_rows(bench: Bench, backend: str) -> dict[str, Any]:
    """Each query kind at concurrency 16 (a table row) and at concurrency 1."""
    from bench.run import Row

    figures: dict[str, Any] = {}
    for kind, paths in QUERIES.items():
        row = bench.rest(f"search {backend}: GET /api/search/articles ({kind})", paths)
        row.note = f"load {load_average()}"
        single = run_wrk(bench.base, paths=paths, connections=1, seconds=bench.seconds)
        bench.rows.append(Row(f"search {backend}: ({kind}) single client", "REST/Envoy/TLS c=1", single,
                              note=f"load {load_average()}"))
        figures[kind] = {"c16": _figures(row.result), "c1": _figures(single), "load_average": load_average()}
    return figures


def _figures(result: LoadResult) -> dict[str, float]:
    return {"rps": round(result.rps), "p50_ms": round(result.p50_ms, 1), "p99_ms": round(result.p99_ms, 1),
            "errors": result.errors}


async def first_page(pager: AsyncPager[SearchArticlesResponse, Any]) -> SearchArticlesResponse:
    async for page in pager.pages():
        return page
    return SearchArticlesResponse()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


async def indexing_lag(bench: Bench, token: str, admin: AsyncConduit) -> dict[str, Any]:
    """p50/p99/max of (found by a search - create acknowledged) while LAG_RATE articles/s are written."""
    total, run = int(LAG_RATE * LAG_SECONDS), uuid.uuid4().hex[:8]
    acknowledged, found = dict[str, float](), dict[str, float]()  # slug -> when acknowledged / first found
    batch_of: dict[str, int] = {}
    settled = [0] * (total // LAG_RATE + 1)  # writes of each batch answered (acknowledged or failed)
    word_of_batch = [f"lag{run}b{batch}" for batch in range(total // LAG_RATE + 1)]
    batches_started = 0
    errors = {"writes": 0, "polls": 0}
    stream_lags: list[float] = []
    async with await AsyncConduit.connect(f"localhost:{bench.settings.gateway_tls_port}", ca_file=bench.ca,
                                          token=token, timeout=30) as client:

        async def write(k: int) -> None:
            word = word_of_batch[k // LAG_RATE]
            try:
                article = await client.articles.create(title=f"Lag probe {run} {k}", description=word,
                                                       body=f"Written by the lag bench: {word}.", tags=["lagprobe"])
            except Exception:  # noqa: BLE001 - a failed write is counted, the run goes on
                errors["writes"] += 1
            else:
                acknowledged[article.slug] = time.perf_counter()
                batch_of[article.slug] = k // LAG_RATE
            settled[k // LAG_RATE] += 1

        async def writer() -> float:
            nonlocal batches_started
            started = time.perf_counter()
            tasks: list[asyncio.Task[None]] = []
            for k in range(total):
                await asyncio.sleep(max(0.0, started + k / LAG_RATE - time.perf_counter()))
                batches_started = k // LAG_RATE + 1
                tasks.append(asyncio.create_task(write(k)))
            await asyncio.gather(*tasks)
            return total / (time.perf_counter() - started)

        def complete(batch: int) -> bool:
            written = min(LAG_RATE, total - batch * LAG_RATE)
            return settled[batch] == written and all(slug in found for slug, b in batch_of.items() if b == batch)

        async def poll(batch: int) -> None:
            try:
                page = await first_page(client.search.articles(word_of_batch[batch], page_size=LAG_RATE,
                                                               timeout=10))
            except Exception:  # noqa: BLE001 - counted; the next round asks again
                errors["polls"] += 1
                return
            now = time.perf_counter()
            for hit in page.hits:
                found.setdefault(hit.slug, now)

        async def poller(deadline: float) -> None:
            done: set[int] = set()
            while time.perf_counter() < deadline:
                done |= {batch for batch in range(batches_started) if batch not in done and complete(batch)}
                # Every open batch at once: a round lasts one search, however far behind indexing is.
                await asyncio.gather(*(poll(batch) for batch in set(range(batches_started)) - done))
                if writing.done() and len(found.keys() & acknowledged.keys()) >= len(acknowledged):
                    return
                await asyncio.sleep(LAG_POLL_SECONDS)

        writing = asyncio.create_task(writer())
        polling = asyncio.create_task(poller(time.perf_counter() + LAG_SECONDS + 60))
        sampling = asyncio.create_task(sample_gauge(admin, polling, stream_lags))
        rate = await writing
        await polling
        await sampling
    return _lag_figures(acknowledged, found, rate, errors, stream_lags)


async def sample_gauge(admin: AsyncConduit, until: asyncio.Task[None], into: list[float]) -> None:
    """The search service's own gauge (age of the oldest event not yet indexed) every 0.5 s until
    `until` is done: tells the indexer's share of the lag from the articles relay's."""
    while not until.done():
        with contextlib.suppress(Exception):
            into.append((await admin.search.status(timeout=10)).indexing_lag_seconds)
        await asyncio.sleep(0.5)


def _lag_figures(acknowledged: dict[str, float], found: dict[str, float], rate: float, errors: dict[str, int],
                 gauge: list[float]) -> dict[str, Any]:
    lags = [max(0.0, found[slug] - at) for slug, at in acknowledged.items() if slug in found]
    return {"written": len(acknowledged), "write_failures": errors["writes"], "write_rate_per_s": round(rate, 1),
            "never_found": len(acknowledged) - len(lags), "poll_errors": errors["polls"],
            "indexer_gauge_p99_s": round(_percentile(gauge, 0.99), 3),
            "indexer_gauge_max_s": round(max(gauge, default=0.0), 3),
            "p50_s": round(_percentile(lags, 0.5), 3), "p99_s": round(_percentile(lags, 0.99), 3),
            "max_s": round(max(lags, default=0.0), 3), "poll_interval_s": LAG_POLL_SECONDS,
            "load_average": load_average()}


async def reindex(bench: Bench, admin: AsyncConduit) -> dict[str, Any]:
    """A full reindex: its time, and the search process's RSS sampled every 50 ms meanwhile."""
    process = psutil.Process(bench.mesh.processes["search"].pid)
    samples: list[int] = [process.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            samples.append(process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        indexed = await admin.search.reindex()
    finally:
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
    samples.append(process.memory_info().rss)
    mib = [value / 2**20 for value in samples]
    return {"indexed": indexed, "seconds": round(seconds, 1), "rss_mib_before": round(mib[0], 1),
            "rss_mib_peak": round(max(mib), 1), "rss_mib_after": round(mib[-1], 1),
            "rss_growth_mib": round(max(mib) - mib[0], 1), "samples": len(mib), "load_average": load_average()}


async def explain(bench: Bench) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the PostgreSQL search statement, broad and selective."""
    import asyncpg

    from conduit_server.runtime.db import asyncpg_url
    from conduit_server.search.repository import postgres

    url = asyncpg_url(bench.mesh.env["CONDUIT_DATABASE_URL"]).replace("postgresql+asyncpg", "postgresql")
    connection = await asyncpg.connect(url, server_settings={"search_path": "search"})
    out: list[str] = []
    try:
        await connection.execute("SET plan_cache_mode = force_custom_plan")
        statement = postgres.search_sql()
        for query in ("mesh latency", "7 grpc"):
            values = {"q": query, "limit": 20, "offset": 0, "window": postgres.SEARCH_WINDOW}
            names: list[str] = []

            def number(match: re.Match[str], names: list[str] = names) -> str:
                if match.group(1) not in names:
                    names.append(match.group(1))
                return f"${names.index(match.group(1)) + 1}"

            sql = re.sub(r"(?<!:):([a-z_]+)", number, statement)
            rows = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *[values[n] for n in names])
            out += [f"-- q={query!r}, load {load_average()}", *(row[0] for row in rows), ""]
    finally:
        await connection.close()
    return "\n".join(out)


async def settle(bench: Bench) -> float:
    """`VACUUM (ANALYZE)` of the whole database, then a checkpoint, after the seed's bulk import, as an
    operator does after a bulk load: otherwise autovacuum visits every seeded table during the first
    rows and takes its CPU from them. (The search index does not need it to be fast: decision 0051.)"""
    import asyncpg

    from conduit_server.runtime.db import asyncpg_url

    url = asyncpg_url(bench.mesh.env["CONDUIT_DATABASE_URL"]).replace("postgresql+asyncpg", "postgresql")
    connection = await asyncpg.connect(url)
    started = time.perf_counter()
    try:
        await connection.execute("VACUUM (ANALYZE)")
        await connection.execute("CHECKPOINT")  # the pages it dirtied are written now, not during the rows
    finally:
        await connection.close()
    return time.perf_counter() - started


async def search_rows(bench: Bench) -> dict[str, Any]:
    """Every search row on the mesh `bench` drives, once the index has caught up with the seed."""
    admin = await admin_client(bench)
    try:
        backend = (await admin.search.status()).backend
        caught_up_seconds = await caught_up(admin, len(bench.seeded.slugs))
        settle_seconds = await settle(bench)
        extra: dict[str, Any] = {"backend": backend, "articles": len(bench.seeded.slugs),
                                 "caught_up_after_seed_s": round(caught_up_seconds, 1),
                                 "vacuum_analyze_after_seed_s": round(settle_seconds, 1)}
        extra["queries"] = query_rows(bench, backend)
        if backend == "postgresql":
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / "search-explain.txt").write_text(await explain(bench))
        measures: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
            ("indexing_lag", lambda: indexing_lag(bench, bench.seeded.tokens[-1], admin)),
            ("reindex", lambda: reindex(bench, admin))]
        for name, measure in measures:
            try:
                extra[name] = await measure()
            except Exception as error:  # noqa: BLE001 - reported in the table; the other rows stand
                extra[name] = {"failed": repr(error)[:300], "load_average": load_average()}
    finally:
        await admin.close()
    return extra


def run_mesh(state_dir: Path, seconds: float, **settings: Any) -> tuple[list[Any], dict[str, Any]]:
    """Start a mesh on free ports, seed it, run the search rows; the rows and figures."""
    from bench.run import Bench
    from conduit_server.replicas import free_ports
    from conduit_server.runtime.settings import Settings
    from conduit_server.supervisor import Mesh

    # Every listener on a free port (other meshes may run on this machine): each `*_port` setting.
    names = [name for name in Settings.model_fields if name.endswith("_port")]
    ports: dict[str, Any] = dict(zip(names, free_ports(len(names)), strict=True))
    shutil.rmtree(state_dir, ignore_errors=True)
    mesh = Mesh(Settings(state_dir=state_dir, log_level="WARNING", registrations_per_ip_per_hour=1_000_000,
                         logins_per_ip_per_quarter_hour=10_000_000, **ports, **settings),
                log_dir=state_dir / "logs")
    mesh.start()
    try:
        started = time.perf_counter()
        seeded = asyncio.run(seed(f"localhost:{mesh.settings.gateway_tls_port}",
                                  str(state_dir.resolve() / "tls" / "ca.pem"), mesh.env, SEARCH_SEED))
        print(f"seeded {SEARCH_SEED} in {time.perf_counter() - started:.0f} s", flush=True)
        bench = Bench(mesh, seeded, seconds)
        extra = asyncio.run(search_rows(bench))
    finally:
        mesh.stop()
    return bench.rows, extra


def elasticsearch_rows(seconds: float, state_dir: Path) -> tuple[list[Any], dict[str, Any]]:
    """The same rows with the search service on a genuine Elasticsearch node, or why not."""
    from search_node.node import NodeUnavailable, SearchNode

    if shutil.which("java") is None:
        return [], {"backend": "elasticsearch", "skipped": "no Java on this machine"}
    node = SearchNode(Path(tempfile.mkdtemp(prefix="conduit-bench-node-")))
    try:
        url = node.start()
    except NodeUnavailable as error:
        return [], {"backend": "elasticsearch", "skipped": f"the node did not start: {error}"}
    try:
        return run_mesh(state_dir, seconds, elasticsearch_url=url)
    finally:
        node.stop()


def markdown(rows: list[Any], backends: list[dict[str, Any]]) -> str:
    lines = ["| row | interface | req/s | p50 ms | p99 ms | errors | CPU % search/articles/envoy | load avg |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for row in rows:
        if not row.name.startswith("search "):
            continue
        cpu = "/".join(str(row.cpu_percent.get(n, "-")) for n in ("search", "articles", "envoy"))
        lines.append(f"| {row.name} | {row.interface} | {row.result.rps:,.0f} | {row.result.p50_ms:.1f} "
                     f"| {row.result.p99_ms:.1f} | {row.result.errors} | {cpu} | {row.note.removeprefix('load ')} |")
    lines.append("")
    for figures in backends:
        backend = figures.get("backend", "?")
        if "skipped" in figures:
            lines.append(f"- {backend}: skipped: {figures['skipped']}")
            continue
        lag, full = figures["indexing_lag"], figures["reindex"]
        for name, measured in (("indexing lag", lag), ("reindex", full)):
            if "failed" in measured:
                lines.append(f"- {backend}: {name} failed: {measured['failed']} (load {measured['load_average']})")
        if "failed" not in lag:
            lines.append(f"- {backend}: indexing lag at {lag['write_rate_per_s']} articles/s written: p50 "
                         f"{lag['p50_s']} s, p99 {lag['p99_s']} s, max {lag['max_s']} s ({lag['written']} written, "
                         f"{lag['never_found']} never found; the indexer's own gauge, stream to index: p99 "
                         f"{lag.get('indexer_gauge_p99_s', '-')} s; load {lag['load_average']})")
        if "failed" not in full:
            lines.append(f"- {backend}: full reindex of {full['indexed']} articles in {full['seconds']} s; search "
                         f"RSS {full['rss_mib_before']} → peak {full['rss_mib_peak']} → {full['rss_mib_after']} "
                         f"MiB ({full['samples']} samples, load {full['load_average']})")
    return "\n".join(lines)


def main() -> None:
    """`BENCH_ROWS=search`: the search rows alone, PostgreSQL then Elasticsearch (results written after each)."""
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    rows, postgres = run_mesh(Path(".state-bench/search-postgresql"), seconds)
    write_results(rows, [postgres])
    if os.environ.get("BENCH_SEARCH_BACKENDS", "postgresql,elasticsearch") == "postgresql":
        return
    es_rows, elastic = elasticsearch_rows(seconds, Path(".state-bench/search-elasticsearch"))
    print(write_results(rows + es_rows, [postgres, elastic]))


def write_results(rows: list[Any], backends: list[dict[str, Any]]) -> str:
    table = markdown(rows, backends)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "search.md").write_text(table + "\n")
    (RESULTS / "search.json").write_text(json.dumps({figures.get("backend", "?"): figures for figures in backends},
                                                    indent=2))
    return table


if __name__ == "__main__":
    main()
