"""Fixtures of the gateway tests: the contract's services, TLS material, a spec to vary."""

from __future__ import annotations

from pathlib import Path

import pytest

from conduit_gateway.config import GatewaySpec
from conduit_gateway.descriptors import ServiceInfo, services_from_descriptors
from conduit_gateway.tls import TlsMaterial, ensure_local_tls
from tests.gateway.support import AUDIENCE, DESCRIPTOR, ISSUER


@pytest.fixture(scope="session")
def services() -> list[ServiceInfo]:
    return services_from_descriptors(DESCRIPTOR)


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return ensure_local_tls(tmp_path_factory.mktemp("gateway-tls"))


@pytest.fixture(scope="session")
def spec(services: list[ServiceInfo], tls_material: TlsMaterial) -> GatewaySpec:
    """A spec like `make run`'s: users on one process, articles on another, and so on."""
    ports = {"users": 50051, "articles": 50052, "search": 50053, "realtime": 50054, "webhooks": 50055}
    upstreams = {s.name: ("127.0.0.1", ports[s.name.split(".")[1]]) for s in services}
    return GatewaySpec(
        descriptor_path=DESCRIPTOR, upstreams=upstreams, tls=tls_material,
        jwt_issuer=ISSUER, jwt_audience=AUDIENCE,
        tls_port=18443, http_port=18080, admin_port=19901, jwks_port=19902,
        cors_origins=("http://localhost:3000",),
    )


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path
