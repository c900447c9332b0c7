"""Fail when a method's idempotency level changes in any way but up from IDEMPOTENCY_UNKNOWN.

`buf breaking` flags every change of `idempotency_level` (RPC_SAME_IDEMPOTENCY_LEVEL); buf.yaml
excepts that rule so that levels can be declared on methods that had none, and this check keeps
the rest of it: lowering or switching a declared level (clients already retry, or use GET, on
its strength) and removing it are breaking. Usage: check_idempotency.py NEW.binpb AGAINST.binpb
"""

from __future__ import annotations

import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

UNKNOWN = descriptor_pb2.MethodOptions.IDEMPOTENCY_UNKNOWN


def levels(image: Path) -> dict[str, int]:
    fds = descriptor_pb2.FileDescriptorSet.FromString(image.read_bytes())
    return {f"{f.package}.{service.name}/{method.name}": method.options.idempotency_level
            for f in fds.file if f.package.startswith("conduit.")
            for service in f.service for method in service.method}


def changes(new: dict[str, int], old: dict[str, int]) -> list[str]:
    name = descriptor_pb2.MethodOptions.IdempotencyLevel.Name
    return [f"{method}: idempotency_level {name(before)} -> {name(new[method])}"
            for method, before in sorted(old.items())
            if method in new and new[method] != before and before != UNKNOWN]


def main() -> None:
    problems = changes(levels(Path(sys.argv[1])), levels(Path(sys.argv[2])))
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
