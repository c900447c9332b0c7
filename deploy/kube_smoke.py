"""`make kube-smoke`: the dev overlay's workloads played by Podman, the REST API and a GraphQL query
through Envoy, then one pod of every service deleted under a steady stream of reads, none of which
may fail.

Podman runs Pods and Deployments but not a cluster: no Services, no DNS, one replica per
Deployment, no Jobs, no operators. So this harness plays exactly the rendered manifests (image,
command, arguments, configuration, security context, read-only root file system, resources)
with these adaptations, each standing for what the cluster would do:

- each Deployment becomes `replicas` Pods on the host network, replica i binding its own
  loopback address 127.0.0.(10+i) at a free port (a headless Service's pod IPs);
- the `*_TARGET` settings list those addresses (what the headless Service's DNS name resolves
  to), and the gateway ConfigMap is rendered by the same generator for them;
- Secrets (never in the repository) are generated here; the CloudNativePG Cluster becomes a
  Pod of the PostgreSQL image built from Debian's packages (`make images`), Redis keeps its
  Deployment with that image; the migrations Job becomes a Pod run to completion first;
- gRPC probes become the harness's own wait on the same gRPC health check, and graphql's HTTP
  probe its own poll of the same `/healthz`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import yaml

from deploy.rest_smoke import publish_and_read

ROOT = Path(__file__).resolve().parents[1]
PODMAN = str(ROOT / "deploy" / "podman" / "podman")
OVERLAY = ROOT / "deploy" / "kubernetes" / "overlays" / "dev"
INFRA_IMAGE = "localhost/conduit-infra:bookworm"
POSTGRES_IMAGE = "localhost/conduit-postgres:dev"
LEGACY_CONFIG_VOLUME = "conduit-gateway-"  # prefix of the ConfigMap volumes harnesses before 2026-12-04 left
SERVICES = ("users", "articles", "search", "realtime", "webhooks")
GRAPHQL = "graphql"
REPLICAS = 2
# Every article of the first page with its author: the article the REST step created must be there.
ARTICLES_QUERY = "{ articles(first: 5) { totalCount nodes { slug author { username } } } }"
Object = dict[str, Any]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def render(overlay: Path) -> list[Object]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise SystemExit("kube-smoke needs kubectl (with kustomize)")
    output = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True,  # noqa: S603
                            check=True).stdout
    return [document for document in yaml.safe_load_all(output) if document]


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PODMAN, *args], capture_output=True, text=True, check=check,  # noqa: S603
                          timeout=timeout)


def wait_for(what: str, condition: Callable[[], bool], timeout_seconds: float = 120) -> None:
    """Poll `condition` (bounded) until true; fail naming `what`."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_seconds:.0f}s")
        time.sleep(0.2)


def more_than(counter: dict[str, int], floor: int) -> bool:
    return counter["count"] > floor


def tcp_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def http_ok(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=2).status_code == 200
    return False


def graphql_lists(client: httpx.Client, slug: str, author: str) -> None:
    """POST one GraphQL query to /graphql (through Envoy): the article `slug` is listed, by `author`."""
    answer = client.post("/graphql", json={"query": ARTICLES_QUERY})
    if answer.status_code != 200:
        raise AssertionError(f"POST /graphql answered {answer.status_code} {answer.text[:300]}")
    body = answer.json()
    if body.get("errors") or not body.get("data"):
        raise AssertionError(f"POST /graphql answered errors: {body}")
    nodes = body["data"]["articles"]["nodes"]
    found = [node for node in nodes if node["slug"] == slug]
    if not found or (found[0]["author"] or {}).get("username") != author:
        raise AssertionError(f"GraphQL's articles lack {slug} by {author}: {body['data']['articles']}")


@dataclass
class Smoke:
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="conduit-kube-smoke-")))
    ports: dict[str, int] = field(default_factory=dict)
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)
    pods: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    objects: list[Object] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in (*SERVICES, GRAPHQL, "tls", "admin", "jwks", "postgres", "redis"):
            self.ports[name] = free_port()
        database_password, redis_password = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.secrets = {
            ("conduit-secrets", "CONDUIT_KEY_ENCRYPTION_KEY"): secrets.token_urlsafe(32),
            ("conduit-secrets", "CONDUIT_INTERNAL_TOKEN"): secrets.token_urlsafe(32),
            ("conduit-db-app", "password"): database_password,
            ("conduit-db-app", "uri"):
                f"postgresql://conduit:{database_password}@127.0.0.1:{self.ports['postgres']}/conduit",
            ("conduit-redis", "password"): redis_password,
            ("conduit-redis", "url"): f"redis://:{redis_password}@127.0.0.1:{self.ports['redis']}/0",
        }
        self.objects = render(OVERLAY)

    # ---- names and addresses ----
    def pod_name(self, name: str) -> str:
        return f"smoke-{self.run_id}-{name}"

    @staticmethod
    def replica_host(index: int) -> str:
        return f"127.0.0.{10 + index}"

    def targets(self) -> dict[str, str]:
        """Every replica's address of each workload (graphql's too: the gateway routes /graphql over them)."""
        return {f"CONDUIT_{name.upper()}_TARGET": ",".join(
            f"{self.replica_host(i)}:{self.ports[name]}" for i in range(REPLICAS)) for name in (*SERVICES, GRAPHQL)}

    def find(self, kind: str, name: str) -> Object:
        return next(o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name)

    def config(self) -> dict[str, str]:
        config_map = next(o for o in self.objects if o["kind"] == "ConfigMap"
                          and o["metadata"]["name"].startswith("conduit-config"))
        return dict(config_map["data"])

    # ---- manifests ----
    def environment(self, container: Object, overrides: dict[str, str]) -> list[Object]:
        """envFrom and secret references resolved to literal values (Podman has no cluster Secrets)."""
        values: dict[str, str] = {}
        for source in container.pop("envFrom", []):
            if "configMapRef" in source:
                values.update(self.config())
            else:
                secret = source["secretRef"]["name"]
                values.update({key: value for (name, key), value in self.secrets.items() if name == secret})
        for entry in container.get("env", []):
            if "value" in entry:
                values[entry["name"]] = re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], entry["value"])
            else:
                reference = entry["valueFrom"]["secretKeyRef"]
                values[entry["name"]] = self.secrets[(reference["name"], reference["key"])]
        values.update(overrides)
        return [{"name": name, "value": value} for name, value in values.items()]

    def pod(self, name: str, template: Object, overrides: dict[str, str], *, restart: str = "Always") -> Object:
        spec = copy.deepcopy(template["spec"])
        spec["hostNetwork"] = True
        spec["restartPolicy"] = restart
        for key in ("topologySpreadConstraints", "automountServiceAccountToken", "enableServiceLinks"):
            spec.pop(key, None)
        # Podman makes an emptyDir a named volume: name it per pod, or every pod shares one /tmp.
        renamed = {v["name"]: f"{self.pod_name(name)}-{v['name']}" for v in spec.get("volumes", []) if "emptyDir" in v}
        for volume in spec.get("volumes", []):
            volume["name"] = renamed.get(volume["name"], volume["name"])
        self.volumes += renamed.values()
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                mount["name"] = renamed.get(mount["name"], mount["name"])
            env = self.environment(container, overrides)
            container["env"] = env
            values = {e["name"]: e["value"] for e in env}
            container["args"] = [re.sub(r"\$\((\w+)\)", lambda m, v=values: v[m.group(1)], a)  # type: ignore[misc]
                                 for a in container.get("args", [])]
            for key in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "ports"):
                container.pop(key, None)
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": self.pod_name(name), "labels": template["metadata"].get("labels", {})},
                "spec": spec}

    def play(self, *documents: Object) -> None:
        path = self.work / f"play-{len(self.pods)}-{documents[-1]['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
        for document in documents:
            if document["kind"] == "Pod":
                self.pods.append(document["metadata"]["name"])
        result = podman("kube", "play", str(path), check=False)
        if result.returncode != 0:
            raise RuntimeError(f"podman kube play {path.name}: {result.stderr.strip()}")

    # ---- stages ----
    def clear_leftovers(self) -> None:
        """Remove the gateway ConfigMap volumes that earlier versions of this harness left behind.

        Podman kept each as a named volume (`conduit-gateway-<hash>`) holding a lock number; on a machine
        whose /dev/shm lock table was renewed while /run/libpod survived, that number could be handed to a
        new volume, and `kube play` then waited on a lock it already held (seen: the gateway pod hung
        until the 300 s timeout, in CI and here). Only volumes no container uses are removed.
        """
        def stale() -> list[str]:
            return podman("volume", "ls", "--filter", f"name={LEGACY_CONFIG_VOLUME}", "--filter", "dangling=true",
                          "--format", "{{.Name}}").stdout.split()

        found = stale()
        # `volume rm` of such a volume was seen to exit 125 having removed it: judge by what is left.
        errors = [podman("volume", "rm", name, check=False).stderr.strip() for name in found]
        if left := stale():
            raise RuntimeError(f"kube-smoke: cannot remove leftover volumes {', '.join(left)}: {'; '.join(errors)}")
        if found:
            print(f"kube-smoke: removed volumes an earlier harness left: {', '.join(found)}", flush=True)

    def start_datastores(self) -> None:
        postgres = {"metadata": {"labels": {"app.kubernetes.io/name": "postgres"}}, "spec": {
            "securityContext": {"runAsNonRoot": True},
            "containers": [{"name": "postgres", "image": POSTGRES_IMAGE, "env": [
                {"name": "POSTGRES_PASSWORD", "value": self.secrets[("conduit-db-app", "password")]},
                {"name": "POSTGRES_PORT", "value": str(self.ports["postgres"])},
                {"name": "POSTGRES_LISTEN", "value": "127.0.0.1"},
                {"name": "PGDATA", "value": "/tmp/pgdata"}]}]}}  # noqa: S108 - the container's /tmp
        self.play(self.pod("postgres", postgres, {}))
        redis = copy.deepcopy(self.find("Deployment", "redis")["spec"]["template"])
        container = redis["spec"]["containers"][0]
        container["image"] = INFRA_IMAGE
        container["args"] = [str(self.ports["redis"]) if previous == "--port" else argument
                             for previous, argument in zip(["", *container["args"]], container["args"], strict=False)]
        container["args"] += ["--bind", "127.0.0.1"]
        self.play(self.pod("redis", redis, {}))
        wait_for("PostgreSQL", lambda: tcp_open("127.0.0.1", self.ports["postgres"]))
        wait_for("Redis", lambda: tcp_open("127.0.0.1", self.ports["redis"]))

    def migrate(self) -> None:
        job = self.find("Job", "migrate")["spec"]["template"]
        self.play(self.pod("migrate", job, {}, restart="Never"))
        container = f"{self.pod_name('migrate')}-migrate"
        code = podman("wait", container, timeout=600).stdout.strip()
        if code != "0":
            raise RuntimeError(f"migrations failed ({code}):\n{podman('logs', container, check=False).stderr}")

    def start_services(self) -> None:
        from conduit_server.replicas import wait_serving

        for service in SERVICES:
            template = self.find("Deployment", service)["spec"]["template"]
            for index in range(REPLICAS):
                self.play(self.pod(f"{service}-{index}", template, {
                    **self.targets(), "CONDUIT_HOST": self.replica_host(index),
                    f"CONDUIT_{service.upper()}_PORT": str(self.ports[service])}))
        graphql = self.find("Deployment", GRAPHQL)["spec"]["template"]
        for index in range(REPLICAS):
            self.play(self.pod(f"{GRAPHQL}-{index}", graphql, {
                **self.targets(), "CONDUIT_HOST": self.replica_host(index),
                "CONDUIT_GRAPHQL__PORT": str(self.ports[GRAPHQL])}))
        for service in SERVICES:
            for index in range(REPLICAS):
                wait_serving(f"{self.replica_host(index)}:{self.ports[service]}", timeout_seconds=180)
        # graphql is probed over HTTP (its Deployment's httpGet /healthz), not by the gRPC health check.
        for index in range(REPLICAS):
            url = f"http://{self.replica_host(index)}:{self.ports[GRAPHQL]}/healthz"
            wait_for(f"{GRAPHQL}-{index} ({url})", partial(http_ok, url), 180)

    def start_gateway(self) -> None:
        from conduit_gateway.tls import ensure_local_tls
        from conduit_server.deploy import image_gateway_config, settings_from_variables

        tls_dir = self.work / "tls"
        material = ensure_local_tls(self.work / "ca")
        tls_dir.mkdir()
        shutil.copy(material.server_cert, tls_dir / "tls.crt")
        shutil.copy(material.server_key, tls_dir / "tls.key")
        for path in (tls_dir, tls_dir / "tls.crt", tls_dir / "tls.key"):
            path.chmod(0o755 if path.is_dir() else 0o644)  # read by the gateway's uid 10001 (test material)
        values = {**self.config(), **self.targets(), "CONDUIT_GATEWAY_TLS_PORT": str(self.ports["tls"]),
                  "CONDUIT_GATEWAY_ADMIN_PORT": str(self.ports["admin"]),
                  "CONDUIT_GATEWAY_JWKS_PORT": str(self.ports["jwks"])}
        envoy = yaml.safe_dump(image_gateway_config(settings_from_variables(values)), sort_keys=False)
        deployment = self.find("Deployment", "gateway")
        template = copy.deepcopy(deployment["spec"]["template"])
        for volume in template["spec"]["volumes"]:
            if volume["name"] == "tls":
                volume.pop("secret")
                volume["hostPath"] = {"path": str(tls_dir), "type": "Directory"}
        # Podman turns a ConfigMap into a named volume of the ConfigMap's name that outlives the pod: name it
        # per run so it is made fresh and removed with the run (a leftover shared a lock with a new volume).
        config_name = self.pod_name("gateway-config")
        for volume in template["spec"]["volumes"]:
            if "configMap" in volume:
                volume["configMap"]["name"] = config_name
        self.volumes.append(config_name)
        config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": config_name},
                      "data": {"envoy.yaml": envoy}}
        self.play(config_map, self.pod("gateway", template, {}))
        self.ca = material.ca_cert
        wait_for("Envoy", lambda: self.get("/api/tags").status_code == 200, 120)

    # ---- traffic ----
    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"https://localhost:{self.ports['tls']}", verify=str(self.ca), timeout=10)

    def get(self, path: str) -> httpx.Response:
        try:
            with self.client() as client:
                return client.get(path)
        except httpx.HTTPError:
            return httpx.Response(599)

    def exercise(self) -> tuple[str, str]:
        """Register, write an article, read it back through every route: the REST API works."""
        name = f"smoke{self.run_id}"
        with self.client() as client:
            slug = publish_and_read(client, name, "kube")
        return name, slug

    def query_graphql(self, name: str, slug: str) -> None:
        """One GraphQL query through Envoy's /graphql route: it lists the article the REST step created."""
        with self.client() as client:
            graphql_lists(client, slug, name)

    def watch_position_on_replica_0(self, tag: str) -> str:
        """The resume position a watcher connected to realtime replica 0 holds (its first heartbeat)."""
        import grpc

        from conduit.realtime.v1 import realtime_pb2, realtime_pb2_grpc

        address = f"{self.replica_host(0)}:{self.ports['realtime']}"
        with grpc.insecure_channel(address) as channel:
            stream = realtime_pb2_grpc.RealtimeServiceStub(channel).WatchArticles(
                realtime_pb2.WatchArticlesRequest(tag=tag), timeout=30)
            first = next(iter(stream))  # leaving the block closes the channel, which ends the watch
        if first.event.type != realtime_pb2.EVENT_TYPE_HEARTBEAT:
            raise AssertionError(f"a watch starts with a heartbeat, got {first}")
        return str(first.event.event_id)

    def resume_through_gateway(self, tag: str, token: str) -> dict[str, Any]:
        """Resume `token` through Envoy (only replica 1 is left): the first event after it."""
        with self.client() as client, client.stream("GET", "/api/watch/articles",
                                                    params={"tag": tag, "resumeToken": token}) as response:
            if response.status_code != 200:
                raise AssertionError(f"resume answered {response.status_code}")
            for line in response.iter_lines():
                if line.startswith("data:"):
                    event: dict[str, Any] = json.loads(line.removeprefix("data:"))["event"]
                    if event["type"] != "EVENT_TYPE_HEARTBEAT":
                        return event
        raise AssertionError("the resumed watch ended without an event")

    def delete_one_pod_per_service(self, name: str, slug: str) -> dict[str, int]:
        """Readers call every read route without pause while replica 0 of each service is deleted."""
        paths = ("/api/tags", f"/api/articles/{slug}", f"/api/profiles/{name}", "/api/articles?limit=5")
        failures: list[str] = []
        reads = {"count": 0}
        stop = threading.Event()

        def read() -> None:
            with self.client() as client:
                while not stop.is_set():
                    for path in paths:
                        try:
                            status = client.get(path).status_code
                        except httpx.HTTPError as error:
                            failures.append(f"{path}: {error!r}")
                            continue
                        reads["count"] += 1
                        if status != 200:
                            failures.append(f"{path}: {status}")

        readers = [threading.Thread(target=read, daemon=True) for _ in range(4)]
        for reader in readers:
            reader.start()
        try:
            for service in SERVICES:
                before = reads["count"]
                # As the kubelet does: SIGTERM, the grace period, then the pod is gone.
                podman("pod", "stop", "--time", "30", self.pod_name(f"{service}-0"), timeout=120)
                podman("pod", "rm", self.pod_name(f"{service}-0"))
                self.pods.remove(self.pod_name(f"{service}-0"))
                wait_for(f"reads after deleting {service}-0", partial(more_than, reads, before + 40), 60)
        finally:
            stop.set()
            for reader in readers:
                reader.join(30)
        if failures:
            raise AssertionError(f"{len(failures)} failed reads of {reads['count']}: {failures[:10]}")
        return reads

    def logs(self) -> None:
        for pod in self.pods:
            result = podman("pod", "logs", "--tail", "30", pod, check=False)
            print(f"--- {pod}\n{result.stdout}{result.stderr}", file=sys.stderr)

    def down(self) -> None:
        """Remove every pod and volume of this run; fail if any is left."""
        errors: list[str] = []
        for kind, names in (("pod", list(reversed(self.pods))), ("volume", self.volumes)):
            for name in names:
                # A loaded machine (other Podman users) can fail one removal transiently (seen: a pod
                # left "Exited" that a second `pod rm` removed): try up to three times, keep why.
                for _ in range(3):
                    result = podman(kind, "rm", "--force", *(("--time", "5") if kind == "pod" else ()), name,
                                    check=False)
                    if result.returncode == 0:
                        break
                else:
                    errors.append(f"{kind} {name}: {result.stderr.strip()}")
        shutil.rmtree(self.work, ignore_errors=True)
        prefix = f"name=smoke-{self.run_id}-"
        left = podman("pod", "ls", "--filter", prefix, "--format", "{{.Name}}").stdout.split()
        left += podman("volume", "ls", "--filter", prefix, "--format", "{{.Name}}").stdout.split()
        if left:
            raise RuntimeError(f"kube-smoke left behind: {', '.join(left)} ({'; '.join(errors)})")


@contextlib.contextmanager
def stack() -> Iterator[Smoke]:
    smoke = Smoke()
    try:
        yield smoke
    except BaseException:
        smoke.logs()
        raise
    finally:
        smoke.down()


def main() -> None:
    started = time.monotonic()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    with stack() as smoke:
        smoke.clear_leftovers()
        smoke.start_datastores()
        print("kube-smoke: PostgreSQL and Redis pods up", flush=True)
        smoke.migrate()
        print("kube-smoke: migrations Job completed", flush=True)
        smoke.start_services()
        print(f"kube-smoke: {REPLICAS} replicas of {', '.join((*SERVICES, GRAPHQL))} serving", flush=True)
        smoke.start_gateway()
        name, slug = smoke.exercise()
        print("kube-smoke: REST through Envoy (TLS): register, create, read: ok", flush=True)
        smoke.query_graphql(name, slug)
        print("kube-smoke: GraphQL through Envoy (TLS): the new article listed with its author: ok", flush=True)
        tag = f"resume{smoke.run_id}"
        token = smoke.watch_position_on_replica_0(tag)
        with smoke.client() as client:
            missed = publish_and_read(client, f"{name}w", tag)
        reads = smoke.delete_one_pod_per_service(name, slug)
        print(f"kube-smoke: deleted one pod of each service under load: {reads['count']} reads, 0 failed",
              flush=True)
        event = smoke.resume_through_gateway(tag, token)
        if (event["type"], event["article"]["slug"]) != ("EVENT_TYPE_ARTICLE_CREATED", missed):
            raise AssertionError(f"resuming on replica 1 gave {event}, not the creation of {missed}")
        print("kube-smoke: a watch's position from replica 0 resumed on replica 1 (through Envoy) "
              "with the event it missed", flush=True)
    print(f"kube-smoke passed in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
