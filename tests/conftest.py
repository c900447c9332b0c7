"""Session-wide real dependencies: one embedded PostgreSQL and one embedded Redis per test run."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from conduit_server.runtime.embedded import EmbeddedPostgres, EmbeddedRedis

pytest_plugins = ["tests.fixtures.users", "pytester"]

# Property tests here call real servers: how long an example takes says how loaded the machine is,
# not whether the property holds. No per-example deadline and no "too slow" health check; every
# other health check (and each test's own example count) stays.
settings.register_profile("conduit", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("conduit")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="session")
def postgres_url(state_dir: Path) -> Iterator[str]:
    server = EmbeddedPostgres(state_dir / "postgres")
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def redis_url(state_dir: Path) -> Iterator[str]:
    server = EmbeddedRedis(state_dir / "redis")
    yield server.start()
    server.stop()
