"""A crash is not an outage: `conduit run` restarts a child that dies, with backoff, and the rest of the
mesh keeps serving meanwhile."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conduit_server.replicas import RestartPolicy
from conduit_server.runtime.settings import Settings
from conduit_server.supervisor import Mesh

from .conftest import RunningMesh, conduit_run, mesh_ports

POLICY = RestartPolicy(first_delay_seconds=1.0, max_delay_seconds=8.0, quick_exit_seconds=10.0, crash_loop_exits=3)


def test_the_delay_doubles_with_each_quick_exit_up_to_the_maximum() -> None:
    assert [POLICY.delay(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def _exited_child(mesh: Mesh, name: str) -> subprocess.Popen[bytes]:
    mesh._spawn(name, [sys.executable, "-c", "raise SystemExit(3)"])
    process = mesh.processes[name]
    process.wait(30)
    return process


def test_a_child_that_exits_is_started_again_after_its_delay_and_a_crash_loop_is_reported(
        caplog: pytest.LogCaptureFixture) -> None:
    mesh = Mesh(Settings())
    try:
        first = _exited_child(mesh, "worker")
        start = mesh.children["worker"].started_at
        # Quick exit number 1: restart due one doubled first delay after the exit was seen.
        assert mesh.supervise(POLICY, now=start + 1) == []
        assert mesh.supervise(POLICY, now=start + 2.9) == []
        assert mesh.supervise(POLICY, now=start + 3.0) == ["worker"]
        assert mesh.processes["worker"] is not first
        assert mesh.children["worker"].quick_exits == 1
        with caplog.at_level(logging.WARNING, logger="conduit.mesh"):
            for expected in (2, 3):
                process = mesh.processes["worker"]
                process.wait(30)
                seen = mesh.children["worker"].started_at + 0.5
                assert mesh.supervise(POLICY, now=seen) == []
                assert mesh.supervise(POLICY, now=seen + POLICY.delay(expected)) == ["worker"]
                assert mesh.children["worker"].quick_exits == expected
        assert "worker is crash-looping: 3 exits" in caplog.text
    finally:
        mesh.stop_processes(list(mesh.processes), 5)


def test_an_exit_after_a_long_run_restarts_at_once_and_forgets_earlier_crashes() -> None:
    mesh = Mesh(Settings())
    try:
        _exited_child(mesh, "worker")
        mesh.children["worker"].quick_exits = 2
        long_after = mesh.children["worker"].started_at + POLICY.quick_exit_seconds + 1
        assert mesh.supervise(POLICY, now=long_after) == []
        assert mesh.supervise(POLICY, now=long_after + POLICY.first_delay_seconds) == ["worker"]
        assert mesh.children["worker"].quick_exits == 0
    finally:
        mesh.stop_processes(list(mesh.processes), 5)


def test_a_stopped_service_is_not_restarted() -> None:
    mesh = Mesh(Settings())
    _exited_child(mesh, "worker")
    mesh.stop_processes(["worker"], 5)
    assert mesh.supervise(POLICY, now=time.monotonic() + 60) == []


def _service_process(mesh: RunningMesh, name: str) -> psutil.Process:
    found = [p for p in psutil.Process(mesh.process.pid).children()
             if p.cmdline()[-2:] == ["serve", name]]
    assert len(found) == 1, f"expected one {name} process, found {found}"
    return found[0]


def _wait_serving(port: int, deadline: float) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5).status == \
                        health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                time.sleep(0.05)
    return False


@pytest.mark.e2e
def test_kill_9_of_a_service_brings_it_back_within_seconds_and_nothing_else_stops(tmp_path: Path) -> None:
    with conduit_run(tmp_path / "state", mesh_ports()) as mesh:
        others = {name: _service_process(mesh, name).pid for name in ("users", "search", "realtime")}
        victim = _service_process(mesh, "articles")
        killed_at = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        # Users keep being served while articles is down.
        assert httpx.get(f"{mesh.http}/api/profiles/nobody").status_code == 404
        assert _wait_serving(mesh.ports["ARTICLES_PORT"], killed_at + 30), "articles did not come back"
        back_after = time.monotonic() - killed_at
        assert _service_process(mesh, "articles").pid != victim.pid
        assert {name: _service_process(mesh, name).pid for name in others} == others
        assert mesh.process.poll() is None
        # Envoy routes to it again once its own health check has seen the new process (bounded).
        routed_by = time.monotonic() + 20
        while (status := httpx.get(f"{mesh.http}/api/tags").status_code) != 200 and time.monotonic() < routed_by:
            time.sleep(0.1)
        assert status == 200
        print(f"articles serving again {back_after:.2f}s after kill -9")
