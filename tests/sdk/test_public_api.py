"""The public surface of `conduit.client` is pinned: a rename is a failing test, not a surprised user."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pool

import conduit.client
from conduit.articles.v1 import articles_pb2
from conduit.client import _contract
from conduit.realtime.v1 import realtime_pb2
from conduit.search.v1 import search_pb2
from conduit.users.v1 import users_pb2

SDK = Path(conduit.client.__file__).resolve().parent

SNAPSHOT = Path(__file__).with_name("public_api.txt")
UPDATE_ENV = "CONDUIT_UPDATE_API_SNAPSHOT"
PUBLIC_MODULES = ("conduit.client", "conduit.client.testing", "conduit.client.errors")


def _signature(obj: object) -> str:
    try:
        return str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(...)"


def _describe(name: str, obj: object) -> list[str]:
    if isinstance(obj, type):
        bases = ", ".join(base.__name__ for base in obj.__bases__)
        lines = [f"class {name}({bases}){_signature(obj)}"]
        for member in sorted(dir(obj)):  # inherited members count: they are part of the surface
            if member.startswith("_") or any(member in vars(base) for base in (object, BaseException)):
                continue
            value = inspect.getattr_static(obj, member)
            if isinstance(value, property):
                lines.append(f"    property {member}")
            elif isinstance(value, (staticmethod, classmethod)):
                lines.append(f"    {type(value).__name__} {member}{_signature(value.__func__)}")
            elif callable(value):
                lines.append(f"    def {member}{_signature(value)}")
        return lines
    if callable(obj):
        return [f"def {name}{_signature(obj)}"]
    return [f"{name}: {type(obj).__name__} = {obj!r}"]


def api_snapshot() -> str:
    """Every exported name of the public modules with its signature (and its classes' public members)."""
    lines: list[str] = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        lines.append(f"# {module_name}")
        for name in sorted(module.__all__):
            lines.extend(_describe(name, getattr(module, name)))
    for client in (conduit.client.Conduit, conduit.client.AsyncConduit):
        lines.append(f"# {client.__name__} resources")
        module = sys.modules[client.__module__]
        for attribute, kind in sorted(client.__annotations__.items()):
            if not attribute.startswith("_"):
                lines.append(f"{attribute}:")
                lines.extend(_describe(kind, getattr(module, kind)))
    return "\n".join(lines) + "\n"


def test_public_api_matches_the_committed_snapshot() -> None:
    """A rename, a removed name or a changed signature fails here. After a deliberate change:
    `CONDUIT_UPDATE_API_SNAPSHOT=1 pytest tests/sdk/test_public_api.py` and commit the snapshot."""
    current = api_snapshot()
    if os.environ.get(UPDATE_ENV) == "1":
        SNAPSHOT.write_text(current)
    assert current == SNAPSHOT.read_text()


def test_sync_and_async_clients_have_the_same_resources_and_methods() -> None:
    sync, aio = conduit.client.Conduit, conduit.client.AsyncConduit
    assert sync.__annotations__.keys() == aio.__annotations__.keys()
    for resource, kind in sync.__annotations__.items():
        sync_cls = getattr(sys.modules[sync.__module__], kind)
        async_cls = getattr(sys.modules[aio.__module__], aio.__annotations__[resource])
        public = {n for n in vars(sync_cls) if not n.startswith("_")}
        assert public == {n for n in vars(async_cls) if not n.startswith("_")}, resource
    assert {n for n in vars(sync) if not n.startswith("_")} == {n for n in vars(aio) if not n.startswith("_")}


def test_package_ships_py_typed() -> None:
    assert (SDK / "py.typed").is_file()
    assert (SDK.parent / "py.typed").is_file()


def test_sdk_never_imports_the_server() -> None:
    for path in SDK.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(name.startswith("conduit_server") for name in names), path


def test_importing_the_sdk_loads_no_server_module() -> None:
    code = ("import sys, conduit.client, conduit.client.testing; "
            "bad = [m for m in sys.modules if m.startswith('conduit_server')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def _contract_methods() -> dict[str, tuple[str, str, bool, bool]]:
    pool = descriptor_pool.Default()
    found = {}
    for module in (users_pb2, articles_pb2, search_pb2, realtime_pb2):
        for service in pool.FindFileByName(module.DESCRIPTOR.name).services_by_name.values():
            for method in service.methods:
                found[f"/{service.full_name}/{method.name}"] = (
                    method.input_type.full_name, method.output_type.full_name,
                    method.client_streaming, method.server_streaming)
    return found


def test_method_table_covers_every_rpc_of_the_contract_with_its_types() -> None:
    contract = _contract_methods()
    assert set(_contract.METHODS) == set(contract)
    for path, method in _contract.METHODS.items():
        request, response, client_streaming, server_streaming = contract[path]
        assert method.request_type.DESCRIPTOR.full_name == request, path
        assert method.response_type.DESCRIPTOR.full_name == response, path
        expected_kind = ("client_stream" if client_streaming else "server_stream" if server_streaming
                         else "unary")
        assert method.kind == expected_kind, path
