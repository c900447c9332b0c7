"""The per-method call policy table: generated facts from the contract, overridable by users.

```python
from conduit.client import MethodTable

table = MethodTable.from_contract()
print(table)                                           # one row per RPC
faster = table.override("ListArticles", timeout=2.0, max_attempts=3)
conduit = Conduit.connect(target, methods=faster)
```

Each row comes from `_contract.py`, which `make generate` writes from
`proto/`: the idempotency level (`idempotency_level`), whether calls carry an
idempotency key, the status codes an attempt may be repeated on, the backoff,
and the per-attempt default deadline (`conduit.options.v1.default_timeout_ms`,
else the client's `timeout`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from conduit.client import _contract
from conduit.client._methods import Method
from conduit.client._retry import RetryPolicy

#: The per-attempt deadline of a call when neither the contract, the client nor the call sets one.
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class MethodPolicy:
    """How one RPC is called: its attempt deadline, what may be retried, and how long to wait."""

    name: str
    path: str
    kind: str
    idempotency: str
    idempotency_key: bool
    retry_codes: frozenset[grpc.StatusCode]
    backoff: RetryPolicy
    #: Seconds each attempt may take; None: no deadline (live streams).
    timeout: float | None

    @property
    def idempotent(self) -> bool:
        return self.idempotency in ("NO_SIDE_EFFECTS", "IDEMPOTENT")

    def row(self) -> tuple[str, str, str, str, str, str]:
        codes = ",".join(sorted(code.name for code in self.retry_codes)) or "-"
        timeout = f"{self.timeout:g}s" if self.timeout is not None else "none"
        b = self.backoff
        backoff = (f"{b.max_attempts}x {b.initial_backoff:g}s*{b.multiplier:g}<={b.max_backoff:g}s"
                   if b.max_attempts > 1 and self.retry_codes else "-")
        return (self.name, self.idempotency, "key" if self.idempotency_key else "-", codes, backoff, timeout)


def _policy(method: Method[Any, Any], *, timeout: float,
            retry: RetryPolicy | None) -> MethodPolicy:
    initial, maximum, multiplier, attempts = method.backoff
    backoff = retry if retry is not None and method.retry_codes else RetryPolicy(
        max_attempts=attempts, initial_backoff=initial, max_backoff=maximum, multiplier=multiplier)
    live = method.kind == "server_stream"
    default = method.default_timeout_ms / 1000 if method.default_timeout_ms else timeout
    return MethodPolicy(
        name=method.name, path=method.path, kind=method.kind, idempotency=method.idempotency,
        idempotency_key=method.carries_idempotency_key,
        retry_codes=frozenset(grpc.StatusCode[name] for name in method.retry_codes),
        backoff=backoff, timeout=None if live and not method.default_timeout_ms else default)


class MethodTable(Mapping[str, MethodPolicy]):
    """Every RPC's `MethodPolicy` by method name (`"CreateArticle"`); `print()` it to read it."""

    def __init__(self, policies: Mapping[str, MethodPolicy]) -> None:
        self._policies = dict(policies)
        self._by_path = {policy.path: policy for policy in self._policies.values()}

    @classmethod
    def from_contract(cls, *, timeout: float = DEFAULT_TIMEOUT, retry: RetryPolicy | None = None) -> MethodTable:
        """The generated table; `timeout` fills methods without a contract default, `retry` replaces
        every retried method's backoff."""
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        return cls({m.name: _policy(m, timeout=timeout, retry=retry) for m in _contract.METHODS.values()})

    def override(self, name: str, *, timeout: float | None = None, max_attempts: int | None = None,
                 backoff: RetryPolicy | None = None,
                 retry_codes: frozenset[grpc.StatusCode] | None = None) -> MethodTable:
        """A copy with one method's policy changed (unknown names raise KeyError)."""
        policy = self._policies[name]
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        new_backoff = backoff or policy.backoff
        if max_attempts is not None:
            new_backoff = dataclasses.replace(new_backoff, max_attempts=max_attempts)
        changed = dataclasses.replace(
            policy, timeout=timeout if timeout is not None else policy.timeout, backoff=new_backoff,
            retry_codes=retry_codes if retry_codes is not None else policy.retry_codes)
        return MethodTable({**self._policies, name: changed})

    def for_path(self, path: str) -> MethodPolicy:
        return self._by_path[path]

    def __getitem__(self, name: str) -> MethodPolicy:
        return self._policies[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._policies)

    def __len__(self) -> int:
        return len(self._policies)

    def __str__(self) -> str:
        header = ("method", "idempotency", "key", "retry on", "backoff", "timeout")
        rows = [header, *(policy.row() for policy in self._policies.values())]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                         for row in rows)
