"""`conduit run`: the whole mesh on one machine — PostgreSQL, Redis, every service and Envoy.

Services and Envoy run as child processes in their own sessions, so Ctrl-C
reaches only this supervisor, which stops them in order (Envoy first, then the
services with a grace period, then Redis and PostgreSQL) and leaves nothing
running. Children also get SIGTERM if the supervisor itself dies (PDEATHSIG).
A child that exits on its own is restarted with backoff while the rest keeps
serving (Envoy's health checks route around it meanwhile); a crash loop is
reported, not hidden.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from conduit_server import with_parent
from conduit_server.edge import envoy_binary, gateway_spec, health_name
from conduit_server.replicas import (
    ChildRecord,
    Replica,
    RestartPolicy,
    plan_replicas,
    reach_host,
    status_path,
    wait_envoy_healthy,
    wait_envoy_ready,
    wait_http_ok,
    wait_serving,
)
from conduit_server.runtime.embedded import EmbeddedPostgres, EmbeddedRedis
from conduit_server.runtime.secrets import with_local_secrets
from conduit_server.runtime.settings import SERVICES, ServiceName, Settings

log = logging.getLogger("conduit.mesh")


@dataclass
class Mesh:
    """Starts and stops every part of the mesh; usable from `conduit run` and from tests."""

    settings: Settings
    services: tuple[ServiceName, ...] = SERVICES
    with_gateway: bool = True
    # The graphql service (`conduit run` starts it; tests of the gRPC mesh alone do not).
    with_graphql: bool = False
    log_dir: Path | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _embedded: list[EmbeddedPostgres | EmbeddedRedis] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    children: dict[str, ChildRecord] = field(default_factory=dict)
    replicas: dict[ServiceName, list[Replica]] = field(default_factory=dict)
    rolling_restarts: int = 0
    rolling_restart_error: str = ""
    # supervise() (the main loop, or a test's thread) and rolling_restart() share the children.
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.settings = with_local_secrets(self.settings)
        self.replicas, self.settings = plan_replicas(self.settings, self.services)
        if self.settings.shutdown_drain_seconds < self.settings.gateway_health_check_interval_seconds:
            log.warning("CONDUIT_SHUTDOWN_DRAIN_SECONDS (%.1f) is shorter than Envoy's health-check interval "
                        "(%.1f): a stopping service may refuse calls Envoy still sends it",
                        self.settings.shutdown_drain_seconds, self.settings.gateway_health_check_interval_seconds)
        state = Path(self.settings.state_dir).resolve()
        database_url, redis_url = self.settings.database_url, self.settings.redis_url
        if not database_url:
            postgres = EmbeddedPostgres(state / "postgres")
            self._embedded.append(postgres)
            database_url = postgres.start()
        if not redis_url:
            redis_server = EmbeddedRedis(state / "redis")
            self._embedded.append(redis_server)
            redis_url = redis_server.start()
        # Children get every setting of this process (local secrets and replica targets included)
        # through the environment, with the database and Redis this supervisor started.
        self.env = {**os.environ, **self.settings.as_environment(), "CONDUIT_STATE_DIR": str(state),
                    "CONDUIT_DATABASE_URL": database_url, "CONDUIT_REDIS_URL": redis_url}
        if self.settings.tracing:  # the services' OTLP exporters read the standard variable
            self.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.settings.otlp_endpoint
        # users first (the others fetch its JWKS), then the others together.
        first: list[ServiceName] = [name for name in self.services if name == "users"]
        for group in (first, [name for name in self.services if name not in first]):
            self.start_services(group)
        if self.with_graphql:
            self._spawn("graphql", [sys.executable, "-m", "conduit_server", "graphql", "serve"])
            wait_http_ok(f"http://{self.settings.host}:{self.settings.graphql.port}/healthz", self.processes["graphql"])
        if self.with_gateway:
            self._start_gateway(state)
        self.write_status()

    def _start_gateway(self, state: Path) -> None:
        from conduit_gateway.config import write_config

        config_path = state / "envoy.yaml"
        write_config(gateway_spec(self.settings, state, graphql=self.with_graphql), config_path)
        self._spawn("envoy", [envoy_binary(), "-c", str(config_path), "--log-level", "warn",
                              "--disable-hot-restart", "--drain-time-s", "1",
                              "--file-flush-interval-msec", "500"])
        wait_envoy_ready(self.settings.gateway_admin_port, self.processes["envoy"])

    def _replicas_of(self, name: ServiceName) -> list[Replica]:
        return self.replicas.get(name) or plan_replicas(self.settings, (name,))[0][name]

    def _address(self, replica: Replica) -> str:
        return f"{reach_host(self.settings)}:{replica.port}"

    def start_service(self, name: ServiceName) -> None:
        """Start every replica of one service and wait until each one's health says SERVING."""
        self.start_services([name])

    def start_services(self, names: list[ServiceName]) -> None:
        """Start every replica of these services at once, then wait until each one says SERVING."""
        replicas = [replica for name in names for replica in self._replicas_of(name)]
        with self._lock:
            for replica in replicas:
                self._spawn(replica.name, [sys.executable, "-m", "conduit_server", "serve", replica.service],
                            {**self.env, **replica.environment()})
        for replica in replicas:
            wait_serving(self._address(replica), process=self.processes[replica.name],
                         service=health_name(replica.service))

    def stop_service(self, name: ServiceName) -> None:
        """Stop every replica of one service gracefully (fault tests restart it with `start_service`)."""
        self.stop_processes([replica.name for replica in self._replicas_of(name)])

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        output = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and envoy
            with_parent.command(os.getpid(), command), env=env or self.env, start_new_session=True,
            stdout=output, stderr=output)
        previous = self.children.get(name)
        self.children[name] = ChildRecord(command, time.monotonic(), env,
                                          previous.quick_exits if previous is not None else 0)

    def supervise(self, policy: RestartPolicy, now: float | None = None) -> list[str]:
        """Restart children that exited on their own, each after its backoff delay.

        Returns the names started by this call. Never waits for a child to become healthy:
        the rest of the mesh keeps serving while one child comes back.
        """
        now = time.monotonic() if now is None else now
        started: list[str] = []
        with self._lock:
            for name, record in list(self.children.items()):
                process = self.processes.get(name)
                if process is None:  # stopped on purpose (stop_service, shutdown): not ours to restart
                    continue
                if record.restart_at is None:
                    code = process.poll()
                    if code is None:
                        continue
                    quick = now - record.started_at < policy.quick_exit_seconds
                    record.quick_exits = record.quick_exits + 1 if quick else 0
                    delay = policy.delay(record.quick_exits)
                    record.restart_at = now + delay
                    if record.quick_exits >= policy.crash_loop_exits:
                        log.error("%s is crash-looping: %d exits within %.0fs of starting (last code %s); "
                                  "next start in %.1fs", name, record.quick_exits, policy.quick_exit_seconds,
                                  code, delay)
                    else:
                        log.warning("%s exited with code %s; restarting in %.1fs", name, code, delay)
                if record.restart_at is not None and now >= record.restart_at:
                    self._spawn(name, record.command, record.env)
                    started.append(name)
            if started and self.replicas:
                self.write_status()
        return started

    def rolling_restart(self, timeout_seconds: float = 60.0) -> list[str]:
        """Restart every replica of every service, one at a time; returns the names restarted.

        Each replica stops gracefully (health NOT_SERVING, drain, in-flight calls finish, streams end
        with their resume token), starts again, and the next one waits until the new process is
        SERVING and, with the gateway, until Envoy's health check routes to it again: with two or more
        replicas a service never has no healthy host.
        """
        restarted: list[str] = []
        for service in self.services:
            for replica in self._replicas_of(service):
                with self._lock:
                    record = self.children[replica.name]
                    self.stop_processes([replica.name])
                    self._spawn(replica.name, record.command, record.env)
                address = self._address(replica)
                wait_serving(address, timeout_seconds, process=self.processes[replica.name],
                             service=health_name(service))
                if self.with_gateway and "envoy" in self.processes:
                    wait_envoy_healthy(self.settings.gateway_admin_port, address, timeout_seconds)
                log.info("rolling restart: %s is serving again", replica.name)
                restarted.append(replica.name)
        self.rolling_restarts += 1
        self.rolling_restart_error = ""
        self.write_status()
        return restarted

    def status(self) -> dict[str, object]:
        """What `conduit restart` and the fault-injection suite read: the supervisor and each child."""
        children: dict[str, object] = {}
        for service, replicas in self.replicas.items():
            for replica in replicas:
                process = self.processes.get(replica.name)
                children[replica.name] = {"service": service, "address": self._address(replica),
                                          "metrics_port": replica.metrics_port,
                                          "pid": process.pid if process is not None else None}
        envoy = self.processes.get("envoy")
        if envoy is not None:
            children["envoy"] = {"service": "envoy", "pid": envoy.pid}
        return {"pid": os.getpid(), "rolling_restarts": self.rolling_restarts,
                "rolling_restart_error": self.rolling_restart_error, "children": children}

    def write_status(self) -> None:
        """`<state>/mesh.json`, replaced atomically after every start of a child."""
        path = status_path(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.status(), indent=2))
        partial.replace(path)

    def stop_processes(self, names: list[str], timeout_seconds: float | None = None) -> None:
        """SIGTERM the named children together, then SIGKILL any that outlive drain + grace period."""
        grace = (timeout_seconds if timeout_seconds is not None else
                 self.settings.shutdown_drain_seconds + self.settings.shutdown_grace_seconds + 5)
        with self._lock:
            stopping = [(name, self.processes.pop(name)) for name in names if name in self.processes]
        for _, process in stopping:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace
        for name, process in stopping:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs; killing it", name, grace)
                process.kill()
                process.wait()

    def stop(self) -> None:
        """Envoy first (no new traffic), then every service at once, then Redis and PostgreSQL."""
        self.stop_processes(["envoy"], 5)
        self.stop_processes(list(self.processes))
        while self._embedded:
            with contextlib.suppress(Exception):
                self._embedded.pop().stop()

    def describe(self) -> str:
        s = self.settings
        lines = ["", "Conduit Mesh is running:"]
        if self.with_gateway:
            tls = Path(s.state_dir).resolve() / "tls" / "ca.pem"
            lines.append(f"  REST + gRPC over TLS  https://localhost:{s.gateway_tls_port}/api")
            lines.append(f"  Local CA to trust     {tls}")
            if s.gateway_http_port:
                lines.append(f"  REST, plain HTTP      http://localhost:{s.gateway_http_port}/api (local)")
            if self.with_graphql:
                lines.append(f"  GraphQL (+WebSocket)  https://localhost:{s.gateway_tls_port}/graphql")
            lines.append(f"  Envoy admin           http://127.0.0.1:{s.gateway_admin_port}/")
        replicas = [replica for name in self.services for replica in self._replicas_of(name)]
        lines.extend(f"  {replica.name:<21} grpc://{self._address(replica)}" for replica in replicas)
        if s.metrics_enabled:
            lines.extend(f"  {replica.name + ' metrics':<21} http://{s.host}:{replica.metrics_port}/metrics"
                         for replica in replicas)
        lines.extend(["  PostgreSQL            " + self.env.get("CONDUIT_DATABASE_URL", ""),
                      "  Redis                 " + self.env.get("CONDUIT_REDIS_URL", ""),
                      "Press Ctrl-C to stop.", ""])
        return "\n".join(lines)


def run(settings: Settings) -> None:
    """Start the mesh, print where everything listens, stop it all on Ctrl-C/SIGTERM.

    SIGHUP asks for a rolling restart of every service (what `conduit restart --rolling` sends).
    """
    mesh = Mesh(settings, with_graphql=True)
    stopping = False
    restart_requested = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: restart_requested.set())
    try:
        mesh.start()
        print(mesh.describe(), flush=True)
        policy = RestartPolicy.from_settings(mesh.settings)
        while True:
            mesh.supervise(policy)
            if restart_requested.is_set():
                restart_requested.clear()
                log.info("rolling restart requested")
                try:
                    log.info("rolling restart done: %s", ", ".join(mesh.rolling_restart()))
                except (RuntimeError, TimeoutError) as error:  # reported; supervision restarts what exited
                    log.error("rolling restart stopped: %s", error)
                    mesh.rolling_restarts += 1
                    mesh.rolling_restart_error = str(error)
                    mesh.write_status()
            time.sleep(0.1)  # the supervision tick: how soon an exit is noticed, not a wait for an event
    except KeyboardInterrupt:
        print("\nStopping Conduit Mesh…", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        mesh.stop()

