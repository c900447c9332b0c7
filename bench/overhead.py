"""`make bench-observe`: the cost of observability — bench rows with tracing (10 % sampled at Envoy)
and metrics on (Prometheus scraping, Jaeger receiving) against the same rows with both off.

Modes alternate (off, on, off, on) on fresh meshes with the same small seed, so drift of a shared
machine falls on both; the table shows each row's median req/s per mode and the change.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
from pathlib import Path

from bench.load import run_wrk, wrk_available
from bench.run import CONCURRENCY, RESULTS
from bench.seed import SeedSize, seed
from conduit_server.observe import ObservedMesh, StackPorts
from conduit_server.replicas import free_ports
from conduit_server.runtime.settings import Settings
from conduit_server.supervisor import Mesh

ROWS = ("GET /api/articles", "GET /api/articles/{slug}", "GET /api/profiles/{username}", "POST /api/articles")


def run_mode(observed: bool, state_dir: Path, seconds: float) -> dict[str, float]:
    shutil.rmtree(state_dir, ignore_errors=True)
    # Free ports throughout: other meshes may run on this machine.
    # Taken in one go, the stack's five too (ports probed one after another may come back twice).
    names = ("users", "articles", "search", "realtime", "webhooks", "gateway_tls", "gateway_http", "gateway_admin",
             "gateway_jwks", "users_metrics", "articles_metrics", "search_metrics", "realtime_metrics",
             "webhooks_metrics")
    taken = free_ports(len(names) + 5)
    ports = {f"{name}_port": port for name, port in zip(names, taken, strict=False)}
    settings = Settings(state_dir=state_dir, log_level="WARNING", trace_sample_percent=10.0,
                        registrations_per_ip_per_hour=1_000_000, logins_per_ip_per_quarter_hour=10_000_000,
                        **ports)  # type: ignore[arg-type]
    stack_ports = StackPorts(*taken[len(names):])
    stack = ObservedMesh(settings, ports=stack_ports, log_dir=state_dir / "logs") if observed else None
    mesh = Mesh(settings, log_dir=state_dir / "logs") if stack is None else None
    (stack or mesh).start()  # type: ignore[union-attr]
    try:
        running = stack.mesh if stack is not None else mesh
        assert running is not None
        base = f"https://localhost:{running.settings.gateway_tls_port}"
        seeded = asyncio.run(seed(f"localhost:{running.settings.gateway_tls_port}",
                                  str(state_dir.resolve() / "tls" / "ca.pem"), running.env,
                                  SeedSize(users=60, articles=600, favorites=200, comments=200)))
        token = seeded.tokens[0]
        shapes = {
            "GET /api/articles": {"paths": ["/api/articles?limit=20&offset=0"]},
            "GET /api/articles/{slug}": {"paths": [f"/api/articles/{s}" for s in seeded.slugs[:500]]},
            "GET /api/profiles/{username}": {"paths": [f"/api/profiles/{u}" for u in seeded.usernames[:500]]},
            "POST /api/articles": {"paths": ["/api/articles"], "method": "POST", "token": token,
                                   "body": '{"article":{"title":"Overhead {n}","description":"d","body":"b",'
                                           '"tagList":["bench"]}}'},
        }
        rps = {}
        for row in ROWS:
            run_wrk(base, **shapes[row], seconds=2)  # type: ignore[arg-type]
            rps[row] = run_wrk(base, **shapes[row], connections=CONCURRENCY,  # type: ignore[arg-type]
                               seconds=seconds).rps
        return rps
    finally:
        (stack or mesh).stop()  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--state-dir", type=Path, default=Path(".state-bench-observe"))
    args = parser.parse_args()
    if not wrk_available():
        raise SystemExit("wrk is required (Debian: apt-get install wrk); `make bench` installs it")
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for observed in (False, True):
            runs[observed].append(run_mode(observed, args.state_dir, args.seconds))
            print(f"{'on ' if observed else 'off'}: {runs[observed][-1]}", flush=True)
    lines = [f"{args.rounds} rounds of {args.seconds:.0f} s per row at concurrency {CONCURRENCY}; median req/s.",
             "", "| row | off req/s | tracing 10 % + metrics req/s | change |", "| --- | ---: | ---: | ---: |"]
    for row in ROWS:
        off = statistics.median(run[row] for run in runs[False])
        on = statistics.median(run[row] for run in runs[True])
        lines.append(f"| {row} | {off:,.0f} | {on:,.0f} | {(on - off) / off * 100:+.1f} % |")
    table = "\n".join(lines)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "overhead.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
