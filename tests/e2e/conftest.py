"""`conduit run` (what `make run` calls) as a real process tree on free ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port

PORT_SETTINGS = ("USERS_PORT", "ARTICLES_PORT", "SEARCH_PORT", "REALTIME_PORT", "WEBHOOKS_PORT",
                 "GATEWAY_TLS_PORT", "GATEWAY_HTTP_PORT", "GATEWAY_ADMIN_PORT", "GATEWAY_JWKS_PORT", "GRAPHQL__PORT")


@dataclass
class RunningMesh:
    process: subprocess.Popen[str]
    state_dir: Path
    ports: dict[str, int]
    banner: str

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.ports['GATEWAY_HTTP_PORT']}"

    @property
    def https(self) -> str:
        return f"https://localhost:{self.ports['GATEWAY_TLS_PORT']}"

    @property
    def ca(self) -> Path:
        return self.state_dir / "tls" / "ca.pem"

    def descendants(self) -> list[psutil.Process]:
        """Every process of the mesh: the tree plus the daemonised PostgreSQL and Redis."""
        found = psutil.Process(self.process.pid).children(recursive=True)
        # PostgreSQL runs with -D <state>/postgres; Redis shows its socket, which the banner prints.
        socket = self.banner.split("unix://", 1)[1].split()[0]
        for candidate in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(candidate.info["cmdline"] or ())
            if (str(self.state_dir) in cmdline or socket in cmdline) and candidate.pid != self.process.pid:
                found.append(candidate)
        return found


def mesh_ports() -> dict[str, int]:
    """A distinct free port per setting (two probes in a row may be handed the same port: seen as Envoy
    refusing two listeners on one address)."""
    ports: dict[str, int] = {}
    for name in PORT_SETTINGS:
        port = free_port()
        while port in ports.values():
            port = free_port()
        ports[name] = port
    return ports


@contextmanager
def conduit_run(state_dir: Path, ports: dict[str, int], timeout_seconds: float = 300,
                extra_env: Mapping[str, str] | None = None, log_path: Path | None = None) -> Iterator[RunningMesh]:
    """Start `conduit run` (with `extra_env` on top; the services' JSON logs to `log_path`, else dropped), wait
    for its banner, and Ctrl-C it (SIGINT) on exit."""
    env = {**os.environ, "CONDUIT_STATE_DIR": str(state_dir), "CONDUIT_SHUTDOWN_GRACE_SECONDS": "3",
           "CONDUIT_SHUTDOWN_DRAIN_SECONDS": "0.2", **{f"CONDUIT_{k}": str(v) for k, v in ports.items()},
           # Webhook receivers of the tests listen on plain http on loopback, which production refuses.
           "CONDUIT_WEBHOOKS__ALLOW_HTTP": "true", "CONDUIT_WEBHOOKS__ALLOWED_NETWORKS": '["127.0.0.0/8"]',
           # Every e2e test registers its users from 127.0.0.1 on one shared mesh: more than the 20 an
           # hour one address may (the limit itself is tested in tests/users).
           "CONDUIT_REGISTRATIONS_PER_IP_PER_HOUR": "1000",
           **(extra_env or {})}
    logs = log_path.open("ab") if log_path is not None else subprocess.DEVNULL
    process = subprocess.Popen([sys.executable, "-m", "conduit_server", "run"], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=logs)
    banner: list[str] = []
    deadline = time.monotonic() + timeout_seconds
    assert process.stdout is not None
    for line in process.stdout:
        banner.append(line)
        if "Press Ctrl-C" in line or time.monotonic() > deadline:
            break
    mesh = RunningMesh(process, state_dir, ports, "".join(banner))
    # Keep reading what the supervisor and its children print (Envoy's access log goes to stdout): a
    # full pipe would block the writer, and `conduit run` would hang on its own "Stopping" line.
    later: deque[str] = deque(maxlen=200)
    drain = threading.Thread(target=later.extend, args=(process.stdout,), daemon=True)
    drain.start()
    try:
        assert "Press Ctrl-C" in mesh.banner, f"mesh did not start: {mesh.banner}"
        yield mesh
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("conduit run did not stop within 60 s of Ctrl-C; it printed last:\n"
                                 + "".join(later)) from None
        drain.join(10)
        if not isinstance(logs, int):
            logs.close()


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMesh]:
    """One mesh for every end-to-end test that does not stop or restart it."""
    with conduit_run(tmp_path_factory.mktemp("mesh"), mesh_ports()) as running:
        yield running
