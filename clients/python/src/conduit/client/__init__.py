"""The Conduit client SDK: a typed facade over the generated gRPC stubs.

```python
from conduit.client import Conduit, PasswordCredentials

with Conduit.connect("localhost:8443", ca_file=".state/tls/ca.pem",
                     credentials=PasswordCredentials("me@example.com", "secret-password")) as conduit:
    article = conduit.articles.create(title="Hello", description="First", body="...", tags=["grpc"])
    for summary in conduit.articles.list(tag="grpc"):
        print(summary.slug, summary.favorites_count)
```

`AsyncConduit` is the `asyncio` twin. Methods return the generated messages
(`conduit.articles.v1.articles_pb2.Article`, ...); failures raise the typed
errors below, all subclasses of `ConduitError`: one class per status code,
combined with one class per `ErrorInfo` reason of the contract
(`conduit.client.errors`, e.g. `ArticleNotFoundError`).

`print(conduit.methods)` shows the per-method table generated from the
contract (idempotency, retried codes, backoff, timeout); `MethodTable.override`
changes entries; `conduit.with_options(...)` and `conduit.with_raw_response()`
configure and observe calls.
"""

from conduit.client._async import AsyncConduit
from conduit.client._auth import ClientCredentials, PasswordCredentials
from conduit.client._errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    ConduitError,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    RateLimited,
    ResourceExhausted,
    StreamExpired,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    from_rpc_error,
)
from conduit.client._pagers import AsyncPager, Pager
from conduit.client._policy import MethodPolicy, MethodTable
from conduit.client._retry import RetryPolicy
from conduit.client._sync import Conduit
from conduit.client._telemetry import RawCapture, RawResponse
from conduit.client._watch import AsyncWatch, Reconnect, Watch

__all__ = [
    "Aborted",
    "AlreadyExists",
    "AsyncConduit",
    "AsyncPager",
    "AsyncWatch",
    "Cancelled",
    "ClientCredentials",
    "Conduit",
    "ConduitError",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "MethodPolicy",
    "MethodTable",
    "NotFound",
    "OutOfRange",
    "Pager",
    "PasswordCredentials",
    "PermissionDenied",
    "RateLimited",
    "RawCapture",
    "RawResponse",
    "Reconnect",
    "ResourceExhausted",
    "RetryPolicy",
    "StreamExpired",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "Watch",
    "from_rpc_error",
]
