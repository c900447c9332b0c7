"""`make compose-up` / `make compose-down`: deploy/compose.yaml with podman-compose.

up: writes deploy/compose.env (random secrets, mode 0600, git-ignored) and the gateway's TLS pair
under deploy/.compose/ when missing, starts the stack, waits for Envoy, then smoke-tests the REST
API through the TLS port (register, write an article, read it back) and sends one GraphQL query
through it (the article is listed).
down: removes every container, volume and network of the project, then checks none is left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from deploy.kube_smoke import graphql_lists
from deploy.rest_smoke import publish_and_read

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
ENV_FILE = DEPLOY / "compose.env"
STATE = DEPLOY / ".compose"
PROJECT = "conduit"
PODMAN = str(DEPLOY / "podman" / "podman")
SERVICES = ("users", "articles", "search", "realtime", "webhooks")
GRAPHQL = "graphql"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ensure_env_file() -> None:
    if ENV_FILE.exists():
        return
    values = {"POSTGRES_PASSWORD": secrets.token_urlsafe(24), "REDIS_PASSWORD": secrets.token_urlsafe(24),
              "CONDUIT_KEY_ENCRYPTION_KEY": secrets.token_urlsafe(32),
              "CONDUIT_INTERNAL_TOKEN": secrets.token_urlsafe(32)}
    descriptor = os.open(ENV_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write("# Secrets of the Compose stack (generated; never commit this file).\n")
        file.writelines(f"{name}={value}\n" for name, value in values.items())


def ensure_tls() -> Path:
    """The gateway's pair (readable by its uid 10001 in the container) and the CA that signed it."""
    from conduit_gateway.tls import ensure_local_tls

    material = ensure_local_tls(STATE / "ca")
    tls = STATE / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    for source, name in ((material.server_cert, "tls.crt"), (material.server_key, "tls.key")):
        shutil.copy(source, tls / name)
        (tls / name).chmod(0o644)
    return material.ca_cert


def compose(*args: str, environment: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "podman_compose", "--podman-path", PODMAN, "--project-name", PROJECT,
               "--in-pod", "false", "--env-file", str(ENV_FILE), "--file", str(COMPOSE_FILE), *args]
    subprocess.run(command, check=True, cwd=DEPLOY, env={**os.environ, **(environment or {})})  # noqa: S603


def container_of(service: str) -> str:
    result = subprocess.run([PODMAN, "ps", "--all", "--filter", f"label=io.podman.compose.project={PROJECT}",  # noqa: S603
                             "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Names}}"],
                            capture_output=True, text=True, check=True)
    names = result.stdout.split()
    if len(names) != 1:
        raise RuntimeError(f"expected one container of {service}, found {names}")
    return names[0]


def wait_healthy(services: tuple[str, ...], timeout_seconds: float = 180) -> None:
    """Run each service's own Compose health check until it passes (bounded).

    Podman 4.3 runs health checks from systemd timers and podman-compose ignores `condition:
    service_healthy` with it, so the start order is enforced here, stage by stage, with the very
    checks the file declares (`podman healthcheck run`).
    """
    deadline = time.monotonic() + timeout_seconds
    for service in services:
        container = container_of(service)
        while subprocess.run([PODMAN, "healthcheck", "run", container], capture_output=True,  # noqa: S603
                             check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service} not healthy after {timeout_seconds:.0f}s")
            time.sleep(0.5)


def wait_completed(service: str, timeout_seconds: float = 300) -> None:
    container = container_of(service)
    code = subprocess.run([PODMAN, "wait", container], capture_output=True, text=True,  # noqa: S603
                          check=True, timeout=timeout_seconds).stdout.strip()
    if code != "0":
        raise RuntimeError(f"{service} exited with {code}")


def smoke(port: int, ca: Path) -> None:
    deadline = time.monotonic() + 180
    with httpx.Client(base_url=f"https://localhost:{port}", verify=str(ca), timeout=10) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/api/tags").status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("Envoy did not answer GET /api/tags within 180 s")
            time.sleep(0.5)
        name = f"compose{secrets.token_hex(3)}"
        slug = publish_and_read(client, name, "compose")
        print(f"compose smoke: REST through Envoy's TLS port {port}: register, create, read: ok")
        graphql_lists(client, slug, name)
    print(f"compose smoke: GraphQL through Envoy's TLS port {port}: the new article listed with its author: ok")


def leftovers() -> list[str]:
    """Containers, pods, volumes and networks of the project that still exist."""
    label = f"label=io.podman.compose.project={PROJECT}"
    listings = {"container": ["ps", "--all", "--format", "{{.Names}}"], "pod": ["pod", "ls", "--format", "{{.Name}}"],
                "volume": ["volume", "ls", "--format", "{{.Name}}"],
                "network": ["network", "ls", "--format", "{{.Name}}"]}
    found = []
    for kind, arguments in listings.items():
        result = subprocess.run([PODMAN, *arguments, "--filter", label], capture_output=True, text=True,  # noqa: S603
                                check=True)
        found += [f"{kind} {name}" for name in result.stdout.split()]
    return found


def up() -> None:
    ensure_env_file()
    ca = ensure_tls()
    port = int(os.environ.get("CONDUIT_COMPOSE_TLS_PORT") or free_port())
    (STATE / "port").write_text(str(port))
    environment = {"CONDUIT_COMPOSE_TLS_PORT": str(port),
                   "CONDUIT_COMPOSE_PROMETHEUS_PORT": os.environ.get("CONDUIT_COMPOSE_PROMETHEUS_PORT")
                   or str(free_port())}
    try:
        # The order of the file's depends_on conditions, enforced stage by stage (see wait_healthy).
        compose("up", "--detach", "--no-deps", "postgres", "redis", environment=environment)
        wait_healthy(("postgres", "redis"))
        compose("up", "--detach", "--no-deps", "migrate", environment=environment)
        wait_completed("migrate")
        compose("up", "--detach", "--no-deps", *SERVICES, environment=environment)
        wait_healthy(SERVICES)
        compose("up", "--detach", "--no-deps", GRAPHQL, environment=environment)
        wait_healthy((GRAPHQL,))
        compose("up", "--detach", "--no-deps", "gateway", "prometheus", environment=environment)
        wait_healthy(("prometheus",))
        smoke(port, ca)
    except BaseException:
        compose("logs", "--tail", "30")
        raise
    print(f"Conduit Mesh (Compose): https://localhost:{port}/api  (CA: {ca}); `make compose-down` stops it")


def down() -> None:
    compose("down", "--volumes", "--remove-orphans")
    left = leftovers()
    if left:
        raise SystemExit(f"compose-down left: {', '.join(left)}")
    shutil.rmtree(STATE, ignore_errors=True)
    print("compose-down: no container, volume, pod or network of the project is left")


def main() -> None:
    {"up": up, "down": down}[sys.argv[1]]()


if __name__ == "__main__":
    main()
