"""Replicas of the local mesh and the supervisor's controls: readiness (a process's health, Envoy's
view of a host), replica ports and targets, the restart policy, and the status file through which
`conduit restart --rolling` reaches the running `conduit run` (decisions 0005, 0025)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conduit_server.runtime.settings import SERVICES, ServiceName, Settings


def wait_serving(address: str, timeout_seconds: float = 60.0,
                 process: subprocess.Popen[bytes] | None = None, service: str = "") -> None:
    """Block until the gRPC health service at `address` answers SERVING (for `service`, a gRPC service
    name, when given: then no other process that happens to listen there can answer for it)."""
    deadline = time.monotonic() + timeout_seconds
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"process for {address} exited with {process.returncode}")
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{address} not serving after {timeout_seconds:.0f}s")
            time.sleep(0.1)


def wait_envoy_ready(admin_port: int, process: subprocess.Popen[bytes],
                     timeout_seconds: float = 30.0) -> None:
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


def wait_http_ok(url: str, process: subprocess.Popen[bytes], timeout_seconds: float = 120.0) -> None:
    """Block until `url` answers 200 (an HTTP child's health), failing when the child exits."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not answering after {timeout_seconds:.0f}s")


def envoy_host_health(admin_port: int, address: str) -> list[str]:
    """The health flags Envoy's admin `/clusters` shows for `address` (`host:port`) in every cluster
    listing it: `["healthy"]` once each cluster routes to it, e.g. `["/failed_active_hc"]` before."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/clusters", timeout=2) as answer:
        text = answer.read().decode()
    marker = f"::{address}::health_flags::"
    return [line.split(marker, 1)[1].strip() for line in text.splitlines() if marker in line]


def wait_envoy_healthy(admin_port: int, address: str, timeout_seconds: float = 30.0) -> None:
    """Block until every Envoy cluster listing `address` marks it healthy (its health check passed)."""
    deadline = time.monotonic() + timeout_seconds
    flags: list[str] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            flags = envoy_host_health(admin_port, address)
            if flags and all(flag == "healthy" for flag in flags):
                return
        time.sleep(0.1)
    raise TimeoutError(f"envoy does not route to {address} after {timeout_seconds:.0f}s (flags {flags})")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the kernel's choice)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1", exclude: frozenset[int] = frozenset()) -> list[int]:
    """`count` distinct ports nothing listens on now, none of them in `exclude`. Every probe stays bound
    until all are chosen: ports probed one after another may otherwise come back twice."""
    probes: list[socket.socket] = []
    try:
        ports: list[int] = []
        while len(ports) < count:
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(probe)
            probe.bind((host, 0))
            port: int = probe.getsockname()[1]
            if port not in exclude:
                ports.append(port)
        return ports
    finally:
        for probe in probes:
            probe.close()


def replica_name(service: str, index: int) -> str:
    """`articles` for the first replica of a service, `articles-2`, `articles-3`… for the others."""
    return service if index == 0 else f"{service}-{index + 1}"


@dataclass(frozen=True)
class Replica:
    """One process of a service: its child name, gRPC port and metrics port."""

    service: ServiceName
    name: str
    port: int
    metrics_port: int

    def environment(self) -> dict[str, str]:
        """What a replica's process gets on top of the mesh's environment: its own ports."""
        prefix = f"CONDUIT_{self.service.upper()}"
        return {f"{prefix}_PORT": str(self.port), f"{prefix}_METRICS_PORT": str(self.metrics_port)}


def reach_host(settings: Settings) -> str:
    """Where this machine's processes reach a service bound to `settings.host` (a wildcard: loopback)."""
    return "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host


def plan_replicas(settings: Settings, services: tuple[ServiceName, ...]
                  ) -> tuple[dict[ServiceName, list[Replica]], Settings]:
    """The replicas of every service, and the settings every process then gets.

    The first replica keeps the configured ports; the others take free loopback ports. With more
    than one replica, a service without a configured `*_target` gets the list of every replica's
    address as its target: Envoy's cluster and the other services' channels balance over it.
    """
    reach = reach_host(settings)
    plan: dict[ServiceName, list[Replica]] = {}
    targets: dict[str, str] = {}
    configured = frozenset(port for service in SERVICES
                           for port in (settings.port_of(service), settings.metrics_port_of(service)))
    extra = iter(free_ports(2 * (settings.replicas - 1) * len(services), reach, configured | frozenset((
        settings.gateway_tls_port, settings.gateway_http_port, settings.gateway_admin_port,
        settings.gateway_jwks_port))))
    for service in services:
        plan[service] = [Replica(service, replica_name(service, index),
                                 settings.port_of(service) if index == 0 else next(extra),
                                 settings.metrics_port_of(service) if index == 0 else next(extra))
                         for index in range(settings.replicas)]
        if settings.replicas > 1 and not getattr(settings, f"{service}_target"):
            targets[f"{service}_target"] = ",".join(f"{reach}:{replica.port}" for replica in plan[service])
    return plan, settings.model_copy(update=targets)


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a child that exited on its own (the mesh's settings carry the numbers)."""

    first_delay_seconds: float = 0.2
    max_delay_seconds: float = 30.0
    quick_exit_seconds: float = 10.0
    crash_loop_exits: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> RestartPolicy:
        return cls(settings.restart_first_delay_seconds, settings.restart_max_delay_seconds,
                   settings.restart_quick_exit_seconds, settings.restart_crash_loop_exits)

    def delay(self, quick_exits: int) -> float:
        """Seconds to wait before the next start, after `quick_exits` quick exits in a row."""
        return min(self.max_delay_seconds, self.first_delay_seconds * 2.0 ** quick_exits)


@dataclass
class ChildRecord:
    """What the supervisor remembers of one child between its starts."""

    command: list[str]
    started_at: float
    env: dict[str, str] | None = None
    quick_exits: int = 0
    restart_at: float | None = None


def status_path(settings: Settings) -> Path:
    """Where `conduit run` describes itself (its pid, each child's pid and address)."""
    return Path(settings.state_dir).resolve() / "mesh.json"


def request_rolling_restart(settings: Settings, timeout_seconds: float = 600.0) -> int:
    """`conduit restart --rolling`: SIGHUP the running `conduit run` of this state_dir, wait until it has
    restarted every replica; returns how many rolling restarts it has done in all."""
    path = status_path(settings)
    if not path.exists():
        raise RuntimeError(f"no `conduit run` found: {path} does not exist")
    before = json.loads(path.read_text())
    os.kill(int(before["pid"]), signal.SIGHUP)
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        now = json.loads(path.read_text())
        done = int(now.get("rolling_restarts", 0))
        if done > int(before.get("rolling_restarts", 0)):
            if now.get("rolling_restart_error"):
                raise RuntimeError(f"the rolling restart stopped: {now['rolling_restart_error']}")
            return done
        time.sleep(0.2)  # polling the supervisor's status file, bounded by the deadline
    raise TimeoutError(f"the rolling restart did not finish within {timeout_seconds:.0f}s")
