"""`conduit observe`: the mesh with tracing and metrics on, beside a real Prometheus and Jaeger.

Prometheus (Debian's `prometheus` package) scrapes every service's `/metrics` and Envoy's
`/stats/prometheus` with the project's recording and alert rules loaded; Jaeger (the
all-in-one binary built by deploy/observability/build-jaeger.sh) receives OTLP from Envoy and
the services and answers its query API. Both keep their data under `.state/observe/` and stop
with the mesh.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conduit_server import with_parent
from conduit_server.replicas import RestartPolicy
from conduit_server.runtime.settings import SERVICES, ServiceName, Settings
from conduit_server.supervisor import Mesh

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
RULES = OBSERVABILITY / "prometheus" / "rules"
JAEGER_VERSION = "v1.75.0"


def jaeger_binary() -> Path:
    """The cached Jaeger build (`make observe-tools` makes it)."""
    cache = Path(os.environ.get("CONDUIT_JAEGER_DIR", "")) if os.environ.get("CONDUIT_JAEGER_DIR") else (
        Path.home() / ".cache" / "conduit" / f"jaeger-{JAEGER_VERSION}")
    return cache / "jaeger"


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if not found:
        raise RuntimeError("prometheus not found: `make observe-tools` installs Debian's package")
    return found


@dataclass(frozen=True)
class StackPorts:
    """Where Prometheus and Jaeger listen (loopback)."""

    prometheus: int = 9090
    jaeger_ui: int = 16686
    jaeger_otlp_grpc: int = 4317
    jaeger_otlp_http: int = 4318
    jaeger_health: int = 13133


def prometheus_config(settings: Settings, services: tuple[ServiceName, ...], *, scrape_seconds: float,
                      rule_files: list[Path]) -> dict[str, Any]:
    """Scrape every service's metrics port (job `conduit-<name>`) and Envoy's admin stats (job `envoy`)."""
    interval = f"{scrape_seconds:g}s"
    jobs: list[dict[str, Any]] = [{
        "job_name": f"conduit-{name}",
        "static_configs": [{"targets": [f"{settings.host}:{settings.metrics_port_of(name)}"],
                            "labels": {"service": name}}],
    } for name in services]
    jobs.append({"job_name": "envoy", "metrics_path": "/stats/prometheus",
                 "static_configs": [{"targets": [f"127.0.0.1:{settings.gateway_admin_port}"]}]})
    return {"global": {"scrape_interval": interval, "evaluation_interval": interval,
                       "external_labels": {"mesh": "conduit-local"}},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": jobs}


def jaeger_config(ports: StackPorts, max_traces: int = 50_000) -> dict[str, Any]:
    """Jaeger v2 all-in-one: OTLP in, memory storage, the query API; nothing else listening."""
    host = "127.0.0.1"
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["batch"],
                                     "exporters": ["jaeger_storage_exporter"]}},
            "telemetry": {"resource": {"service.name": "jaeger"}, "metrics": {"level": "none"},
                          "logs": {"level": "warn"}},
        },
        "extensions": {
            "jaeger_query": {"storage": {"traces": "memory"},
                             "http": {"endpoint": f"{host}:{ports.jaeger_ui}"},
                             "grpc": {"endpoint": f"{host}:0"}},
            "jaeger_storage": {"backends": {"memory": {"memory": {"max_traces": max_traces}}}},
            "healthcheckv2": {"use_v2": True, "http": {"endpoint": f"{host}:{ports.jaeger_health}"}},
        },
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"{host}:{ports.jaeger_otlp_grpc}"},
                                             "http": {"endpoint": f"{host}:{ports.jaeger_otlp_http}"}}}},
        "processors": {"batch": {"timeout": "200ms"}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memory"}},
    }


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 - loopback URL we built
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout_seconds:.0f}s")


@dataclass
class ObservedMesh:
    """The mesh (tracing + metrics on) with Prometheus and Jaeger beside it; for `conduit observe` and tests."""

    settings: Settings
    ports: StackPorts = field(default_factory=StackPorts)
    services: tuple[ServiceName, ...] = SERVICES
    scrape_seconds: float = 5.0
    log_dir: Path | None = None
    mesh: Mesh | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    @property
    def jaeger_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.jaeger_ui}"

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        state = Path(self.settings.state_dir).resolve() / "observe"
        state.mkdir(parents=True, exist_ok=True)
        jaeger = jaeger_binary()
        if not jaeger.exists():
            raise RuntimeError(f"{jaeger} not built: run `make observe-tools`")
        config = state / "jaeger.yaml"
        config.write_text(yaml.safe_dump(jaeger_config(self.ports)), encoding="utf-8")
        self._spawn("jaeger", [str(jaeger), "--config", str(config)])
        _wait_http(f"http://127.0.0.1:{self.ports.jaeger_health}/status", self.processes["jaeger"])
        self.settings = self.settings.model_copy(update={
            "tracing": True, "metrics_enabled": True,
            "otlp_endpoint": f"http://127.0.0.1:{self.ports.jaeger_otlp_grpc}"})
        self.mesh = Mesh(self.settings, services=self.services, log_dir=self.log_dir)
        self.mesh.start()
        self.settings = self.mesh.settings
        prometheus_yml = state / "prometheus.yml"
        prometheus_yml.write_text(yaml.safe_dump(prometheus_config(
            self.settings, self.services, scrape_seconds=self.scrape_seconds,
            rule_files=sorted(RULES.glob("*.yml")))), encoding="utf-8")
        self._spawn("prometheus", [
            prometheus_binary(), f"--config.file={prometheus_yml}", f"--storage.tsdb.path={state / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{self.ports.prometheus}", "--storage.tsdb.retention.time=2d",
            "--log.level=warn"])
        _wait_http(f"{self.prometheus_url}/-/ready", self.processes["prometheus"])

    def _spawn(self, name: str, command: list[str]) -> None:
        output = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(  # noqa: S603 - binaries we located ourselves
            with_parent.command(os.getpid(), command), start_new_session=True, stdout=output, stderr=output)

    def stop(self) -> None:
        """The mesh first (its last spans and scrapes go out), then Prometheus and Jaeger."""
        if self.mesh is not None:
            self.mesh.stop()
        for name in ("prometheus", "jaeger"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant PromQL query against the running Prometheus; raises on an error answer."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback URL we built
            body = json.load(answer)
        if body.get("status") != "success":
            raise RuntimeError(f"{promql}: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def describe(self) -> str:
        assert self.mesh is not None
        return "\n".join([
            self.mesh.describe().rstrip().removesuffix("Press Ctrl-C to stop."),
            "Observability:",
            f"  Prometheus            {self.prometheus_url}/  (alerts: {self.prometheus_url}/alerts)",
            f"  Jaeger query API      {self.jaeger_url}/api/services",
            f"  Traces through Envoy  {self.jaeger_url}/api/traces?service=conduit-gateway&limit=20",
            f"  OTLP (gRPC)           http://127.0.0.1:{self.ports.jaeger_otlp_grpc}",
            f"  Envoy metrics         http://127.0.0.1:{self.settings.gateway_admin_port}/stats/prometheus",
            f"  Grafana dashboards    {OBSERVABILITY / 'grafana'} (provisioning for your Grafana)",
            "Press Ctrl-C to stop.", ""])


def run(settings: Settings) -> None:
    """Start everything, print where it listens, stop it all on Ctrl-C/SIGTERM."""
    stack = ObservedMesh(settings, log_dir=Path(settings.state_dir).resolve() / "observe" / "logs")

    def request_stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        stack.start()
        print(stack.describe(), flush=True)
        assert stack.mesh is not None
        policy = RestartPolicy.from_settings(stack.mesh.settings)
        while all(process.poll() is None for process in stack.processes.values()):
            stack.mesh.supervise(policy)  # restarts a crashed service, as `conduit run` does
            time.sleep(0.1)  # the supervision tick, as in supervisor.run
        print("Prometheus or Jaeger exited; stopping.", flush=True)
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
