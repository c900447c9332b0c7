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
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit.client import Conduit, PasswordCredentials, RetryPolicy, Unauthenticated
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


def _wait_for(condition: Callable[[], bool], failure: str, seconds: float = 30.0) -> None:
    """Poll `condition` (progress of another thread or process) until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.05)


def _log_lines(mesh: Mesh, service: str, needle: str) -> list[dict[str, Any]]:
    """The JSON log lines of one service process that mention `needle`."""
    log = Path(mesh.settings.state_dir) / "logs" / f"{service}.log"
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{") and needle in line]


def test_a_request_id_sent_by_a_client_is_in_the_log_lines_of_articles_and_of_users(managed: Mesh) -> None:
    request_id = str(uuid.uuid4())  # shaped like the ids Envoy makes: it must still come through unchanged
    credentials = grpc.ssl_channel_credentials(Path(_ca(managed)).read_bytes())
    with grpc.secure_channel(_target(managed), credentials) as channel:
        # Listing by author makes articles resolve the username with the users service, inside this call.
        request = articles_pb2.ListArticlesRequest(author=f"nobody-{request_id[-12:]}")
        articles_pb2_grpc.ArticlesServiceStub(channel).ListArticles(
            request, metadata=(("x-request-id", request_id),), timeout=30)
    # Other processes write these lines: wait until both are on disk (bounded), then check them exactly.
    logs = Path(managed.settings.state_dir) / "logs"
    _wait_for(lambda: all(_log_lines(managed, service, request_id) for service in ("articles", "users")),
              f"no log line with {request_id} in: " + " ".join(
                  f"{service}: {(logs / f'{service}.log').read_text()[-600:]}" for service in ("articles", "users")))
    # ECS lines: the message, the call's own fields under `conduit`, the id as `request_id` (decision 0018).
    def calls(service: str) -> list[tuple[str, str, str]]:
        return [(line["message"], line["conduit"]["method"], line["request_id"])
                for line in _log_lines(managed, service, request_id)]

    assert calls("articles") == [("rpc", "/conduit.articles.v1.ArticlesService/ListArticles", request_id)]
    assert calls("users") == [("rpc", "/conduit.users.v1.UserDirectoryService/ResolveUsernames", request_id)]


def _access_log_barrier(mesh: Mesh, rest: httpx.Client) -> None:
    """Send a marked request and wait until Envoy logged it: every line of an earlier request is on disk
    then (Envoy writes its access log in batches, in order)."""
    marker = str(uuid.uuid4())
    rest.get("/api/tags", headers={"x-request-id": marker})
    log = Path(mesh.settings.state_dir) / "logs" / "envoy.log"
    _wait_for(lambda: marker in log.read_text(), "Envoy did not log the marked request")


def _envoy_attempts(mesh: Mesh, grpc_path: str) -> int:
    """Requests Envoy saw for one gRPC method (its JSON access log), successful or not."""
    log = Path(mesh.settings.state_dir) / "logs" / "envoy.log"
    count = 0
    for line in log.read_text().splitlines():
        if line.startswith("{") and grpc_path in line:
            entry = json.loads(line)
            count += grpc_path in (entry.get("path") or "")
    return count


def test_reads_survive_an_articles_restart_and_a_create_during_it_lands_once(managed: Mesh) -> None:
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
        _wait_for(lambda: len(listed) >= 1 or bool(errors), "the reader never listed")
        managed.stop_service("articles")
        tls = ssl.create_default_context(cafile=_ca(managed))
        rest = httpx.Client(base_url=f"https://{_target(managed)}", verify=tls)
        _access_log_barrier(managed, rest)
        before = _envoy_attempts(managed, create_path)
        created: list[str] = []

        def create_during_the_restart() -> None:
            try:
                created.append(conduit.articles.create(title="During the restart", description="d", body="b").slug)
            except BaseException as error:  # noqa: BLE001 - the assertion below reports it
                errors.append(error)

        creator = threading.Thread(target=create_during_the_restart)
        creator.start()

        def create_attempted() -> bool:
            _access_log_barrier(managed, rest)
            return _envoy_attempts(managed, create_path) > before

        _wait_for(create_attempted, "the create was not attempted while articles was down")
        started = time.monotonic()
        down = rest.get("/api/tags")
        assert (down.status_code, time.monotonic() - started < 2) == (503, True)
        assert "errors" in down.json()
        managed.start_service("articles")
        # Back without restarting Envoy, once its health check sees the new process.
        _wait_for(lambda: rest.get("/api/tags").status_code == 200, "articles did not come back", seconds=20)
        after_restart = len(listed)
        _wait_for(lambda: len(listed) > after_restart or bool(errors), "the reader did not list after the restart")
        stop.set()
        reader.join(30)
        creator.join(60)
        _access_log_barrier(managed, rest)
        mine = rest.get("/api/articles", params={"author": user.username}).json()
        rest.close()
        assert errors == []
        assert listed
        assert listed[-1] >= 1
        # Retried with one idempotency key across the restart: several attempts, one article.
        assert _envoy_attempts(managed, create_path) - before >= 2
        assert len(created) == 1
        assert sorted(a["title"] for a in mine["articles"]) == ["Before the restart", "During the restart"]


def test_a_watch_survives_a_realtime_restart_with_no_gap_and_no_duplicate(managed: Mesh) -> None:
    name = f"watcher{os.getpid()}"
    with Conduit.connect(_target(managed), ca_file=_ca(managed), timeout=20) as anonymous:
        token = anonymous.users.register(username=name, email=f"{name}@example.com", password="watch-password").token
    with Conduit.connect(_target(managed), ca_file=_ca(managed), token=token, timeout=20) as conduit:
        slug = conduit.articles.create(title=f"Watched {name}", description="d", body="b").slug
        seen: list[int] = []
        live = threading.Event()
        watch = conduit.articles.watch(slug, include_heartbeats=True)

        def read() -> None:
            for event in watch:
                live.set()  # the first event is the heartbeat that says the stream is live
                if event.HasField("comment"):
                    seen.append(event.comment.id)
                if len(seen) >= 30:
                    return

        reader = threading.Thread(target=read)
        reader.start()
        assert live.wait(30), "the watch never went live"
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
