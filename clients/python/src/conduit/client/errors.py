"""Every error class of the SDK: one per gRPC status code, one per `ErrorInfo` reason of the contract.

A failed call raises its code's class combined with its reason's class, so both
catch it:

```python
from conduit.client import NotFound
from conduit.client.errors import ArticleNotFoundError

try:
    conduit.articles.get("missing")
except ArticleNotFoundError:      # or `except NotFound`
    ...
```

The reason classes are generated from `conduit.options.v1.ErrorReason`
(`make generate`); `REASON_CLASSES` maps each reason to its class, and a
class's `do_not_retry` is the contract's flag (the SDK never retries those).
"""

from conduit.client._contract import *  # noqa: F403 - the generated reason classes
from conduit.client._contract import REASON_CLASSES
from conduit.client._errors import *  # noqa: F403 - the classes per status code
from conduit.client._errors import __all__ as _code_names

__all__ = [*_code_names, "REASON_CLASSES", *(cls.__name__ for cls in REASON_CLASSES.values())]  # noqa: PLE0604
