"""One RPC of the contract as the SDK sees it; the table of all of them is generated.

`_contract.py` (written by `make generate` from `proto/`) holds a `Method` for
every RPC: its idempotency level (the standard `idempotency_level` option)
and its default deadline (`conduit.options.v1.default_timeout_ms`). From
those two facts follow the retry rules of `_policy.py`: reads
(`NO_SIDE_EFFECTS`) and `IDEMPOTENT` writes retry on transient failures; the
other unary writes carry an idempotency key and retry with the same key, so
the server answers a repeat with the first result; client streams and
non-resumable streams are never retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

#: The idempotency levels of google/protobuf/descriptor.proto.
NO_SIDE_EFFECTS = "NO_SIDE_EFFECTS"
IDEMPOTENT = "IDEMPOTENT"
IDEMPOTENCY_UNKNOWN = "IDEMPOTENCY_UNKNOWN"


@dataclass(frozen=True)
class Method(Generic[Req, Resp]):
    """One RPC of the contract: path, message types, kind, idempotency level, default deadline."""

    path: str
    request_type: type[Req]
    response_type: type[Resp]
    kind: str = "unary"  # "unary", "server_stream", "client_stream" or "bidi_stream"
    idempotency: str = IDEMPOTENCY_UNKNOWN
    default_timeout_ms: int = 0
    #: Status code names on which an attempt may be repeated (see proto/generate_sdk.py).
    retry_codes: tuple[str, ...] = ()
    #: (initial seconds, maximum seconds, multiplier, attempts) of the retry backoff.
    backoff: tuple[float, float, float, int] = (0.1, 2.0, 2.0, 1)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]

    @property
    def idempotent(self) -> bool:
        """Repeating the call leaves the same state (reads, and writes marked IDEMPOTENT)."""
        return self.idempotency in (NO_SIDE_EFFECTS, IDEMPOTENT)

    @property
    def carries_idempotency_key(self) -> bool:
        """A non-idempotent unary call: sent with an idempotency key, made safe to retry by the server."""
        return self.kind == "unary" and not self.idempotent
