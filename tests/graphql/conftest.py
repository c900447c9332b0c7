"""One `conduit run` (graphql service included, introspection on) shared by the GraphQL tests, and a
GraphQL-over-HTTPS client that goes through Envoy as any client would."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conduit_server.replicas import free_ports
from tests.e2e.conftest import RunningMesh, conduit_run, mesh_ports

# The realtime service's per-client stream cap in this mesh: small, so a test can reach it.
WATCHERS_PER_CLIENT = 3


@dataclass
class GraphqlMesh:
    mesh: RunningMesh
    log_path: Path
    # The realtime service's Prometheus /metrics (how many watch streams it was asked for).
    realtime_metrics_port: int = 0

    @property
    def url(self) -> str:
        return f"{self.mesh.https}/graphql"

    @property
    def ws_url(self) -> str:
        return f"wss://localhost:{self.mesh.ports['GATEWAY_TLS_PORT']}/graphql"

    def log_lines(self, *needles: str) -> list[str]:
        """The services' log lines containing every needle."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if all(needle in line for needle in needles)]


class GraphqlClient:
    """POSTs documents to /graphql over HTTPS through Envoy."""

    def __init__(self, mesh: GraphqlMesh) -> None:
        self.mesh = mesh
        self.http = httpx.Client(verify=ssl.create_default_context(cafile=mesh.mesh.ca), timeout=30)

    def post(self, query: str, variables: Mapping[str, Any] | None = None, *, token: str | None = None,
             request_id: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Token {token}"} if token else {}
        if request_id:
            headers["x-request-id"] = request_id
        return self.http.post(self.mesh.url, json={"query": query, "variables": dict(variables or {})},
                              headers=headers)

    def run(self, query: str, variables: Mapping[str, Any] | None = None, *, token: str | None = None,
            request_id: str | None = None) -> dict[str, Any]:
        """The `data` of a document that must succeed."""
        answer = self.post(query, variables, token=token, request_id=request_id)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    def errors(self, query: str, variables: Mapping[str, Any] | None = None, *, token: str | None = None
               ) -> list[dict[str, Any]]:
        """The `errors` of a document that must fail (HTTP 200 with errors, or a 4xx with a GraphQL body)."""
        answer = self.post(query, variables, token=token)
        body = answer.json()
        assert body.get("errors"), body
        found: list[dict[str, Any]] = body["errors"]
        return found

    def register(self, prefix: str = "gql") -> tuple[str, str]:
        """A new user: (username, token)."""
        name = f"{prefix}{uuid.uuid4().hex[:10]}"
        data = self.run("mutation($u: NewUserInput!) { register(user: $u) { username token } }",
                        {"u": {"username": name, "email": f"{name}@example.com", "password": "password123"}})
        return data["register"]["username"], data["register"]["token"]


@pytest.fixture(scope="session")
def graphql_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphqlMesh]:
    state = tmp_path_factory.mktemp("graphql-mesh")
    metrics_ports = dict(zip(("users", "articles", "search", "realtime", "webhooks"), free_ports(5), strict=True))
    log_path = state / "services.log"
    env = {"CONDUIT_GRAPHQL__INTROSPECTION": "true", "CONDUIT_GRAPHQL__MAX_DEPTH": "3",
           "CONDUIT_REGISTRATIONS_PER_IP_PER_HOUR": "100000",
           "CONDUIT_REALTIME__MAX_WATCHERS_PER_CLIENT": str(WATCHERS_PER_CLIENT),
           # Shared subscriptions are capped per client by the graphql service itself (decision 0050).
           "CONDUIT_GRAPHQL__MAX_SHARED_SUBSCRIPTIONS_PER_CLIENT": str(WATCHERS_PER_CLIENT),
           "CONDUIT_METRICS_ENABLED": "true",
           **{f"CONDUIT_{name.upper()}_METRICS_PORT": str(port) for name, port in metrics_ports.items()},
           # Long enough that a test's repeated anonymous query is certainly shared (decision 0047).
           "CONDUIT_GRAPHQL__RESPONSE_CACHE_SECONDS": "60"}
    # A loaded machine (other suites in parallel) may need minutes to start a mesh.
    with conduit_run(state, mesh_ports(), timeout_seconds=300, extra_env=env, log_path=log_path) as mesh:
        yield GraphqlMesh(mesh, log_path, metrics_ports["realtime"])


@pytest.fixture(scope="session")
def gql(graphql_mesh: GraphqlMesh) -> Iterator[GraphqlClient]:
    client = GraphqlClient(graphql_mesh)
    yield client
    client.http.close()
