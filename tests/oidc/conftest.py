"""A real OpenID Provider and a mesh configured to sign in through it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import RunningMesh, conduit_run, mesh_ports
from tests.oidc.provider import Client, RunningProvider, oidc_provider

CLIENT_ID = "conduit-mesh"
CLIENT_SECRET = "test-client-secret: not a real one"  # ':' and ' ' test the Basic encoding


@pytest.fixture(scope="session")
def oidc_ports() -> dict[str, int]:
    return mesh_ports()


@pytest.fixture(scope="session")
def redirect_uri(oidc_ports: dict[str, int]) -> str:
    return f"https://localhost:{oidc_ports['GATEWAY_TLS_PORT']}/api/auth/oidc/callback"


@pytest.fixture(scope="session")
def provider(redirect_uri: str) -> Iterator[RunningProvider]:
    if shutil.which("node") is None and not os.environ.get("CI"):
        pytest.skip("node is not installed: the OIDC tests need it for the real OpenID Provider")
    with oidc_provider(free_port(), [Client(CLIENT_ID, CLIENT_SECRET, [redirect_uri])]) as running:
        yield running


@pytest.fixture(scope="session")
def oidc_mesh(tmp_path_factory: pytest.TempPathFactory, provider: RunningProvider, oidc_ports: dict[str, int],
              redirect_uri: str) -> Iterator[RunningMesh]:
    settings = {"CONDUIT_OIDC__ISSUER": provider.issuer, "CONDUIT_OIDC__CLIENT_ID": CLIENT_ID,
                "CONDUIT_OIDC__CLIENT_SECRET": CLIENT_SECRET, "CONDUIT_OIDC__REDIRECT_URI": redirect_uri}
    with conduit_run(tmp_path_factory.mktemp("oidc-mesh"), oidc_ports, extra_env=settings) as running:
        yield running
