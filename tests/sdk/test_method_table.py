"""The SDK's per-method table is generated from the contract: printed, it matches the idempotency levels
of the descriptors, and changing a level in proto/ changes it after `make generate`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from conduit.articles.v1 import articles_pb2
from conduit.client import MethodTable, RetryPolicy
from conduit.client.errors import REASON_CLASSES, UsersDeadlineError
from conduit.options.v1 import errors_pb2
from conduit.realtime.v1 import realtime_pb2
from conduit.search.v1 import search_pb2
from conduit.users.v1 import users_pb2

ROOT = Path(__file__).resolve().parents[2]
LEVEL = descriptor_pb2.MethodOptions.IdempotencyLevel.Name


def _contract() -> dict[str, tuple[str, bool, bool]]:
    """Each RPC of the contract: its idempotency level and whether it streams (client, server)."""
    pool = descriptor_pool.Default()
    found = {}
    for module in (users_pb2, articles_pb2, search_pb2, realtime_pb2):
        for service in pool.FindFileByName(module.DESCRIPTOR.name).services_by_name.values():
            for method in service.methods:
                found[method.name] = (LEVEL(method.GetOptions().idempotency_level),
                                      method.client_streaming, method.server_streaming)
    return found


def test_the_printed_table_matches_the_idempotency_levels_of_the_contract(
        capsys: pytest.CaptureFixture[str]) -> None:
    table = MethodTable.from_contract()
    print(table)  # the table is printed, as a user would
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["method", "idempotency", "key", "retry", "on", "backoff", "timeout"]
    printed = {line.split()[0]: line.split()[1:3] for line in lines[1:]}
    contract = _contract()
    assert set(printed) == set(contract)
    for name, (level, client_streaming, server_streaming) in contract.items():
        unary = not client_streaming and not server_streaming
        keyed = unary and level == "IDEMPOTENCY_UNKNOWN"
        assert printed[name] == [level, "key" if keyed else "-"], name
        policy = table[name]
        assert policy.idempotent == (level != "IDEMPOTENCY_UNKNOWN"), name
        # Only what is safe to repeat is retried: reads, IDEMPOTENT writes, keyed writes, resumable watches.
        assert bool(policy.retry_codes) == (unary or (server_streaming and level == "NO_SIDE_EFFECTS")), name
    assert grpc.StatusCode.DEADLINE_EXCEEDED in table["ListTags"].retry_codes  # reads retry a slow attempt
    assert grpc.StatusCode.DEADLINE_EXCEEDED not in table["FavoriteArticle"].retry_codes
    assert table["ImportArticles"].retry_codes == frozenset()
    assert table["ReindexArticles"].timeout == 120  # conduit.options.v1.default_timeout_ms
    assert table["WatchArticles"].timeout is None  # live streams have no deadline


def test_users_override_an_entry_and_the_client_uses_it() -> None:
    table = MethodTable.from_contract(timeout=4)
    changed = table.override("ListTags", timeout=1.5, max_attempts=2)
    assert (changed["ListTags"].timeout, changed["ListTags"].backoff.max_attempts) == (1.5, 2)
    assert (table["ListTags"].timeout, table["ListTags"].backoff.max_attempts) == (4, 10)  # a copy
    assert changed["GetArticle"] == table["GetArticle"]
    custom = RetryPolicy(max_attempts=3)
    assert MethodTable.from_contract(retry=custom)["CreateArticle"].backoff == custom
    with pytest.raises(KeyError):
        table.override("NoSuchMethod", timeout=1)


def test_every_error_reason_the_services_raise_is_in_the_contract() -> None:
    """The reason classes come from conduit.options.v1.ErrorReason: a reason used in server code
    and missing there would arrive untyped."""
    declared = {name.removeprefix("ERROR_REASON_") for name in errors_pb2.ErrorReason.DESCRIPTOR.values_by_name}
    used = set()
    for path in (ROOT / "server" / "conduit_server").rglob("*.py"):
        used |= set(re.findall(r'reason="([A-Z_]+)"', path.read_text()))
    assert used
    assert used <= declared, used - declared
    assert REASON_CLASSES["USERS_DEADLINE"] is UsersDeadlineError
    assert UsersDeadlineError.do_not_retry
    # Docs come from the contract: the class docstring is the enum value's comment.
    assert UsersDeadlineError.__doc__ == ("No time was left to reach the users service: retrying cannot help. "
                                          "(ErrorInfo reason `USERS_DEADLINE`.)")
    assert not REASON_CLASSES["SLOW_CONSUMER"].do_not_retry


def _generate(proto: Path, out: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), "--proto", str(proto),
                    "--out-src", str(out / "src"), "--image", str(out / "image.binpb")],
                   check=True, env=env, capture_output=True)
    return (out / "src" / "conduit" / "client" / "_contract.py").read_text()


def _entry(contract: str, constant: str) -> str:
    match = re.search(rf"^{constant}: Method\[.*?\n(?=\S)", contract, re.MULTILINE | re.DOTALL)
    assert match is not None, constant
    return match.group(0)


def test_changing_a_level_in_the_proto_changes_the_generated_table(tmp_path: Path) -> None:
    proto = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", proto)
    committed = (ROOT / "clients/python/src/conduit/client/_contract.py").read_text()
    assert _generate(proto, tmp_path / "same") == committed  # the committed table is what proto/ says
    articles = proto / "conduit/articles/v1/articles.proto"
    text = articles.read_text()
    # ListTags loses its level; CreateComment is declared IDEMPOTENT.
    text = re.sub(r"(rpc ListTags\(.*?\{\n)    option idempotency_level = NO_SIDE_EFFECTS;\n", r"\1", text,
                  flags=re.DOTALL)
    text = text.replace("rpc CreateComment(CreateCommentRequest) returns (CreateCommentResponse) {\n",
                        "rpc CreateComment(CreateCommentRequest) returns (CreateCommentResponse) {\n"
                        "    option idempotency_level = IDEMPOTENT;\n")
    articles.write_text(text)
    changed = _generate(proto, tmp_path / "changed")
    assert "idempotency=\"NO_SIDE_EFFECTS\"" in _entry(committed, "LIST_TAGS")
    assert "idempotency=\"IDEMPOTENCY_UNKNOWN\"" in _entry(changed, "LIST_TAGS")
    assert "\"ABORTED\"" in _entry(changed, "LIST_TAGS")  # now a keyed write
    assert "idempotency=\"IDEMPOTENT\"" in _entry(changed, "CREATE_COMMENT")
    assert "\"DEADLINE_EXCEEDED\"" not in _entry(changed, "CREATE_COMMENT")
    assert _entry(changed, "GET_ARTICLE") == _entry(committed, "GET_ARTICLE")
