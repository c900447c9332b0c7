"""`make buf-breaking` lets a level be declared on a method that had none, and fails every other change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "proto" / "check_idempotency.py"
M = descriptor_pb2.MethodOptions


def _image(path: Path, **levels: int) -> Path:
    file = descriptor_pb2.FileDescriptorProto(name="conduit/demo/v1/demo.proto", package="conduit.demo.v1")
    service = file.service.add(name="DemoService")
    for name, level in levels.items():
        method = service.method.add(name=name, input_type=".conduit.demo.v1.R", output_type=".conduit.demo.v1.R")
        method.options.idempotency_level = level  # type: ignore[assignment]
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=[file]).SerializeToString())
    return path


def _check(tmp_path: Path, before: dict[str, int], after: dict[str, int]) -> subprocess.CompletedProcess[str]:
    old = _image(tmp_path / "old.binpb", **before)
    new = _image(tmp_path / "new.binpb", **after)
    return subprocess.run([sys.executable, str(CHECK), str(new), str(old)], capture_output=True, text=True,
                          check=False)


def test_declaring_a_level_where_there_was_none_passes(tmp_path: Path) -> None:
    result = _check(tmp_path, {"Get": M.IDEMPOTENCY_UNKNOWN, "Like": M.IDEMPOTENCY_UNKNOWN},
                    {"Get": M.NO_SIDE_EFFECTS, "Like": M.IDEMPOTENT})
    assert result.returncode == 0, result.stdout


def test_lowering_switching_or_removing_a_declared_level_fails(tmp_path: Path) -> None:
    result = _check(tmp_path, {"Get": M.NO_SIDE_EFFECTS, "Like": M.IDEMPOTENT, "List": M.NO_SIDE_EFFECTS},
                    {"Get": M.IDEMPOTENCY_UNKNOWN, "Like": M.NO_SIDE_EFFECTS, "List": M.NO_SIDE_EFFECTS})
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "conduit.demo.v1.DemoService/Get: idempotency_level NO_SIDE_EFFECTS -> IDEMPOTENCY_UNKNOWN",
        "conduit.demo.v1.DemoService/Like: idempotency_level IDEMPOTENT -> NO_SIDE_EFFECTS",
    ]


def test_the_contract_passes_against_main(tmp_path: Path) -> None:
    main = subprocess.run(["git", "show", "main:gateway/conduit.binpb"], cwd=ROOT, capture_output=True, check=False)
    if main.returncode != 0:
        pytest.skip("no main branch in this checkout (make buf-breaking skips the comparison too)")
    against = tmp_path / "main.binpb"
    against.write_bytes(main.stdout)
    result = subprocess.run([sys.executable, str(CHECK), str(ROOT / "gateway" / "conduit.binpb"), str(against)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
