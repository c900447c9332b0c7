"""Load generators: wrk for REST through Envoy, a tight asyncio loop for gRPC (SDK or stubs)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

WRK_DIR = Path(__file__).resolve().parent / "wrk"


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, *, paths: Sequence[str], method: str = "GET", body: str = "", token: str = "",
            toggle: str = "", users: int = 1, connections: int = 16, threads: int = 1,
            seconds: float = 10.0) -> LoadResult:
    """Drive `url` + paths with wrk (HTTP/1.1 keep-alive over TLS) and parse its JSON summary.

    The paths go round-robin, each once per turn (twice with `toggle`: do, then undo); they are handed
    over in a file, so a row may cycle through thousands of distinct requests."""
    with tempfile.NamedTemporaryFile("w", prefix="conduit-wrk-paths-", suffix=".txt") as listing:
        listing.write("\n".join(paths) + "\n")
        listing.flush()
        env = {**os.environ, "BENCH_WRK_DIR": str(WRK_DIR), "BENCH_METHOD": method,
               "BENCH_PATHS_FILE": listing.name, "BENCH_BODY": body, "BENCH_TOKEN": token,
               "BENCH_TOGGLE": toggle, "BENCH_USERS": str(users)}
        command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:.0f}s",
                   "--timeout", "5s", "-s", str(WRK_DIR / "request.lua"), url]
        output = subprocess.run(command, env=env, capture_output=True, text=True,  # noqa: S603
                                check=True).stdout
    summary = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    errors = sum(summary[key] for key in
                 ("non_2xx", "connect_errors", "read_errors", "write_errors", "timeouts"))
    return LoadResult(summary["requests"], summary["duration_us"] / 1e6, summary["p50_us"] / 1000,
                      summary["p99_us"] / 1000, errors)


async def run_async(call: Callable[[int], Awaitable[object]], *, concurrency: int = 16,
                    seconds: float = 10.0) -> LoadResult:
    """`concurrency` workers calling `call(n)` back to back for `seconds`; latency per call."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    counter = 0

    async def worker() -> None:
        nonlocal errors, counter
        while time.perf_counter() < deadline:
            counter += 1
            started = time.perf_counter()
            try:
                await call(counter)
            except Exception:  # noqa: BLE001 - a failed call is counted, the run goes on
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if not latencies:
        return LoadResult(0, elapsed, 0.0, 0.0, errors)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return LoadResult(len(latencies), elapsed, statistics.median(latencies) * 1000, p99 * 1000, errors)
