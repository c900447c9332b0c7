"""Every service package has the same shape, read from its files and its import graph (no service is named:
a new package beside `runtime/` is checked as soon as it exists).

    api.py        gRPC servicers: translate messages, call the domain (no SQL, no Redis, no repository)
    domain/       the rules (no grpc, no SQLAlchemy beyond the session type of a unit of work)
    repository/   all SQL; models.py holds the tables of a service that owns some
    events.py     what the service publishes and consumes
    app.py        composition from settings
    cli.py        its operator commands
    migrations/   present exactly when the service owns tables
    client/       optional: what other services import to call this one (the only importable part)

One exemption: a service that owns no data at all (no tables, no keys of its own: `graphql`, one more
client of the mesh) has no repository/ and no migrations/; everything else of the shape applies.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "server" / "conduit_server"
KERNEL = "runtime"
REQUIRED = {"api.py", "app.py", "cli.py", "events.py", "domain", "repository"}
# Services that own no data (see the docstring): no repository/.
OWN_NO_DATA = {"graphql"}
OPTIONAL = {"__init__.py", "client", "migrations"}
SERVICES = sorted(path.name for path in ROOT.iterdir()
                  if path.is_dir() and path.name != KERNEL and (path / "__init__.py").exists())
# The one SQLAlchemy name outside the repository: the session a unit of work passes through the layers.
CLIENTS = [service for service in SERVICES if (ROOT / service / "client").is_dir()]
SESSION_TYPES = ("sqlalchemy.ext.asyncio.AsyncSession", "sqlalchemy.ext.asyncio")


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def modules(folder: Path) -> Iterator[Path]:
    yield from (path for path in sorted(folder.rglob("*.py")) if "__pycache__" not in path.parts)


def offenders(paths: Iterator[Path], forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return [f"{path.relative_to(ROOT)}: {name}" for path in paths for name in sorted(imports(path))
            if name.startswith(forbidden) and not name.startswith(allowed)]


def is_module(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(f"{prefix}.") for prefix in prefixes)


def test_the_services_are_found() -> None:
    assert {"users", "articles", "realtime", "search", "webhooks", "graphql"} <= set(SERVICES)


@pytest.mark.parametrize("service", sorted(OWN_NO_DATA))
def test_a_service_owning_no_data_has_no_sql_and_no_redis(service: str) -> None:
    package = ROOT / service
    assert not (package / "repository").exists()
    assert not (package / "migrations").exists()
    assert offenders(modules(package), ("sqlalchemy", "asyncpg")) == []


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_folders(service: str) -> None:
    package = ROOT / service
    entries = {path.name for path in package.iterdir() if path.name != "__pycache__"}
    required = REQUIRED - {"repository"} if service in OWN_NO_DATA else REQUIRED
    assert required - entries == set(), "missing"
    assert entries - REQUIRED - OPTIONAL == set(), "not part of the shape"
    owns_tables = (package / "repository" / "models.py").exists()
    assert (package / "migrations").is_dir() == owns_tables, "migrations/ exactly when repository/models.py"


@pytest.mark.parametrize("service", SERVICES)
def test_the_api_translates_and_calls_the_domain_only(service: str) -> None:
    package = f"conduit_server.{service}"
    found = offenders(iter([ROOT / service / "api.py"]),
                      ("sqlalchemy", "redis", f"{package}.repository", f"{package}.migrations"))
    assert found == []


@pytest.mark.parametrize("service", SERVICES)
def test_the_domain_speaks_neither_grpc_nor_sql(service: str) -> None:
    found = [name for name in offenders(modules(ROOT / service / "domain"), ("grpc", "sqlalchemy"),
                                        SESSION_TYPES)
             if not name.split(": ")[1].startswith("grpc_status")]
    assert found == []


@pytest.mark.parametrize("service", SERVICES)
def test_sql_is_written_only_in_the_repository(service: str) -> None:
    package = ROOT / service
    outside = (path for path in modules(package)
               if path.relative_to(package).parts[0] not in {"repository", "migrations"})
    assert offenders(outside, ("sqlalchemy",), SESSION_TYPES) == []


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_reaches_another_only_through_its_client(service: str) -> None:
    others = [other for other in SERVICES if other != service]
    found = [f"{path.relative_to(ROOT)}: {name}" for path in modules(ROOT / service)
             for name in sorted(imports(path))
             for other in others
             if is_module(name, f"conduit_server.{other}") and not is_module(name, f"conduit_server.{other}.client")]
    assert found == []


@pytest.mark.parametrize("service", CLIENTS)
def test_a_client_depends_on_the_kernel_and_the_contract_only(service: str) -> None:
    client = ROOT / service / "client"
    found = [f"{path.relative_to(ROOT)}: {name}" for path in modules(client) for name in sorted(imports(path))
             if is_module(name, "conduit_server")
             and not is_module(name, f"conduit_server.{KERNEL}", f"conduit_server.{service}.client")]
    assert found == []


@pytest.mark.parametrize("service", SERVICES)
def test_outgoing_http_is_made_only_in_the_repository(service: str) -> None:
    """Requests to the outside (webhook receivers) go through one adapter, where the target checks apply."""
    package = ROOT / service
    outside = (path for path in modules(package) if path.relative_to(package).parts[0] != "repository")
    assert offenders(outside, ("httpx", "aiohttp", "urllib.request", "requests")) == []


def test_the_kernel_imports_no_service() -> None:
    assert offenders(modules(ROOT / KERNEL), tuple(f"conduit_server.{service}" for service in SERVICES)) == []


def test_modules_stay_small() -> None:
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in modules(ROOT)}
    assert {name: size for name, size in sizes.items() if size > 400} == {}
