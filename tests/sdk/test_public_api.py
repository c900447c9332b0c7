"""The public surface of `conduit.client` is pinned: a rename is a failing test, not a surprised user."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pool

import conduit.client
from conduit.articles.v1 import articles_pb2
from conduit.client import _methods, testing
from conduit.realtime.v1 import realtime_pb2
from conduit.search.v1 import search_pb2
from conduit.users.v1 import users_pb2

SDK = Path(conduit.client.__file__).resolve().parent

PUBLIC_API = [
    "AlreadyExists", "AsyncConduit", "AsyncPager", "AsyncWatch", "ClientCredentials", "Conduit",
    "ConduitError", "DeadlineExceeded", "FailedPrecondition", "FieldViolation", "InvalidArgument",
    "NotFound", "OutOfRange", "Pager", "PasswordCredentials", "PermissionDenied", "RateLimited",
    "ResourceExhausted", "RetryPolicy", "StreamExpired", "Unauthenticated", "Unavailable", "Watch",
    "from_rpc_error",
]

TESTING_API = ["DEFAULT_TARGET", "TARGET_ENV", "TLS_ENV", "TOKEN_ENV", "InProcessServer", "async_from_env",
               "from_env"]


def test_public_api_is_exactly_the_pinned_names() -> None:
    assert sorted(conduit.client.__all__) == sorted(PUBLIC_API)
    for name in PUBLIC_API:
        assert getattr(conduit.client, name) is not None


def test_testing_helpers_are_pinned() -> None:
    assert sorted(testing.__all__) == sorted(TESTING_API)


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
    assert set(_methods.METHODS) == set(contract)
    for path, method in _methods.METHODS.items():
        request, response, client_streaming, server_streaming = contract[path]
        assert method.request_type.DESCRIPTOR.full_name == request, path
        assert method.response_type.DESCRIPTOR.full_name == response, path
        expected_kind = ("client_stream" if client_streaming else "server_stream" if server_streaming
                         else "unary")
        assert method.kind == expected_kind, path


READ_PREFIXES = ("Get", "List", "BatchGet", "Search", "Resolve", "Ping")


def test_only_reads_are_retried() -> None:
    for path, method in _methods.METHODS.items():
        is_read = method.kind == "unary" and method.name.startswith(READ_PREFIXES)
        assert method.idempotent == is_read, path
    retried = {m.name for m in _methods.METHODS.values() if m.idempotent}
    assert {"ListTags", "GetJwks", "ListArticles", "GetArticle", "SearchArticles",
            "BatchGetProfiles"} <= retried
    assert not retried & {"CreateArticle", "Login", "RefreshSession", "FavoriteArticle", "FollowProfile",
                          "CreateSession", "UpdateArticle", "DeleteComment", "CreateOAuthToken"}
