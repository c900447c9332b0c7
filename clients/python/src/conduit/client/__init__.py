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
errors below, all subclasses of `ConduitError`.
"""

from conduit.client._async import AsyncConduit
from conduit.client._auth import ClientCredentials, PasswordCredentials
from conduit.client._errors import (
    AlreadyExists,
    ConduitError,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    RateLimited,
    ResourceExhausted,
    StreamExpired,
    Unauthenticated,
    Unavailable,
    from_rpc_error,
)
from conduit.client._pagers import AsyncPager, Pager
from conduit.client._retry import RetryPolicy
from conduit.client._sync import Conduit
from conduit.client._watch import AsyncWatch, Watch

__all__ = [
    "AlreadyExists",
    "AsyncConduit",
    "AsyncPager",
    "AsyncWatch",
    "ClientCredentials",
    "Conduit",
    "ConduitError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "Pager",
    "PasswordCredentials",
    "PermissionDenied",
    "RateLimited",
    "ResourceExhausted",
    "RetryPolicy",
    "StreamExpired",
    "Unauthenticated",
    "Unavailable",
    "Watch",
    "from_rpc_error",
]
