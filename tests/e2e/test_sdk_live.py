"""The SDK against a live mesh over TLS through Envoy: the shipped examples, and retries across a
service restart (idempotent calls retry, creates never do — counted in Envoy's access log); REST
answers 503 JSON at once while the service is down and recovers without restarting Envoy."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conduit.client import Conduit, PasswordCredentials, RetryPolicy, Unauthenticated, Unavailable
from conduit_server.runtime.settings import Settings
from conduit_server.supervisor import Mesh

from .conftest import mesh_ports

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "clients" / "python" / "examples"


@pytest.fixture(scope="module")
def managed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """A mesh whose services the test may stop and start one by one."""
    state = tmp_path_factory.mktemp("managed")
    ports: dict[str, Any] = {name.lower(): port for name, port in mesh_ports().items()}
    # 30 s access tokens, so a session must renew itself within one test.
    settings = Settings.model_validate({"state_dir": state, "shutdown_grace_seconds": 3,
                                        "shutdown_drain_seconds": 0.2, "access_token_ttl_seconds": 30, **ports})
    mesh = Mesh(settings, log_dir=state / "logs")
    mesh.start()
    yield mesh
    mesh.stop()


def _target(mesh: Mesh) -> str:
    return f"localhost:{mesh.settings.gateway_tls_port}"


def _ca(mesh: Mesh) -> str:
    return str(Path(mesh.settings.state_dir) / "tls" / "ca.pem")


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_examples_run_against_the_live_mesh(managed: Mesh, example: str) -> None:
    env = {**os.environ, "CONDUIT_TARGET": _target(managed), "CONDUIT_CA_FILE": _ca(managed)}
    done = subprocess.run([sys.executable, str(EXAMPLES / example)], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _envoy_attempts(mesh: Mesh, grpc_path: str) -> int:
    """Requests Envoy saw for one gRPC method (its JSON access log), successful or not."""
    log = Path(mesh.settings.state_dir) / "logs" / "envoy.log"
    count = 0
    for line in log.read_text().splitlines():
        if line.startswith("{") and grpc_path in line:
            entry = json.loads(line)
            count += grpc_path in (entry.get("path") or "")
    return count


def test_reads_survive_an_articles_restart_and_creates_are_not_retried(managed: Mesh) -> None:
    create_path = "/conduit.articles.v1.ArticlesService/CreateArticle"
    with Conduit.connect(_target(managed), ca_file=_ca(managed), timeout=20) as anonymous:
        user = anonymous.users.register(username=f"restart{os.getpid()}", email=f"restart{os.getpid()}@example.com",
                                        password="restart-password")
    # A patient policy: the restart below takes a few seconds plus Envoy's next health check.
    patient = RetryPolicy(max_attempts=60, max_backoff=1.0)
    with Conduit.connect(_target(managed), ca_file=_ca(managed), token=user.token, timeout=45,
                         retry=patient) as conduit:
        conduit.articles.create(title="Before the restart", description="d", body="b")
        listed: list[int] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def keep_listing() -> None:
            while not stop.is_set():
                try:
                    listed.append(sum(1 for _ in conduit.articles.list(page_size=5)))
                except BaseException as error:  # noqa: BLE001 - the assertion below reports it
                    errors.append(error)
                    return

        reader = threading.Thread(target=keep_listing)
        reader.start()
        time.sleep(0.5)
        managed.stop_service("articles")
        before = _envoy_attempts(managed, create_path)
        with pytest.raises(Unavailable):
            conduit.articles.create(title="During the restart", description="d", body="b")
        tls = ssl.create_default_context(cafile=_ca(managed))
        rest = httpx.Client(base_url=f"https://{_target(managed)}", verify=tls)
        started = time.monotonic()
        down = rest.get("/api/tags")
        assert (down.status_code, time.monotonic() - started < 2) == (503, True)
        assert "errors" in down.json()
        time.sleep(1.0)
        managed.start_service("articles")
        # Back without restarting Envoy, once its health check sees the new process.
        deadline = time.monotonic() + 20
        while rest.get("/api/tags").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert rest.get("/api/tags").status_code == 200
        rest.close()
        time.sleep(1.0)
        stop.set()
        reader.join(30)
        time.sleep(1.5)  # Envoy flushes its access log
        assert errors == []
        assert listed
        assert listed[-1] >= 1
        assert _envoy_attempts(managed, create_path) - before == 1  # one attempt, never retried


def test_a_watch_survives_a_realtime_restart_with_no_gap_and_no_duplicate(managed: Mesh) -> None:
    name = f"watcher{os.getpid()}"
    with Conduit.connect(_target(managed), ca_file=_ca(managed), timeout=20) as anonymous:
        token = anonymous.users.register(username=name, email=f"{name}@example.com", password="watch-password").token
    with Conduit.connect(_target(managed), ca_file=_ca(managed), token=token, timeout=20) as conduit:
        slug = conduit.articles.create(title=f"Watched {name}", description="d", body="b").slug
        seen: list[int] = []
        watch = conduit.articles.watch(slug)

        def read() -> None:
            for event in watch:
                if event.HasField("comment"):
                    seen.append(event.comment.id)
                if len(seen) >= 30:
                    return

        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(1.0)
        written = [conduit.comments.add(slug, body=f"before {n}").id for n in range(10)]
        managed.stop_service("realtime")
        written += [conduit.comments.add(slug, body=f"while down {n}").id for n in range(10)]
        managed.start_service("realtime")
        written += [conduit.comments.add(slug, body=f"after {n}").id for n in range(10)]
        reader.join(60)
        watch.close()
        assert seen == written


def test_a_password_session_renews_before_expiry_and_a_revoked_refresh_token_is_refused(managed: Mesh) -> None:
    name, password = f"session{os.getpid()}", "session-password"
    with Conduit.connect(_target(managed), ca_file=_ca(managed)) as anonymous:
        anonymous.users.register(username=name, email=f"{name}@example.com", password=password)
        session = anonymous.auth.create_session(email=f"{name}@example.com", password=password)
        anonymous.auth.revoke_session(session.session.refresh_token)
        with pytest.raises(Unauthenticated):
            anonymous.auth.refresh_session(session.session.refresh_token)
    credentials = PasswordCredentials(f"{name}@example.com", password)
    with Conduit.connect(_target(managed), ca_file=_ca(managed), credentials=credentials) as conduit:
        first = conduit.call_metadata()
        deadline = time.monotonic() + 32  # past the 30 s lifetime of the first token
        while time.monotonic() < deadline:
            assert conduit.users.me().username == name  # never a failed call
            time.sleep(0.25)
        assert conduit.call_metadata() != first  # renewed before it expired
