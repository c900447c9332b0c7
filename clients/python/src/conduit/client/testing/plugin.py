"""pytest fixtures for code that uses the SDK (registered by the `pytest11` entry point).

- `conduit_fake_server`: a started `FakeServer` (every RPC of the contract, scripted), stopped after
  the test;
- `conduit_fake_client`: a `Conduit` connected to it (plaintext), closed after the test.

```python
def test_my_code_survives_a_restart(conduit_fake_server, conduit_fake_client):
    conduit_fake_server.script("ListTags", Fault.unavailable(), ListTagsResponse(tags=["grpc"]))
    assert my_code(conduit_fake_client) == ["grpc"]
```
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conduit.client._sync import Conduit
from conduit.client.testing._fake import FakeServer


@pytest.fixture
def conduit_fake_server() -> Iterator[FakeServer]:
    """A started FakeServer of the whole contract; stopped after the test."""
    with FakeServer() as server:
        yield server


@pytest.fixture
def conduit_fake_client(conduit_fake_server: FakeServer) -> Iterator[Conduit]:
    """A blocking client of `conduit_fake_server`."""
    with Conduit.connect(conduit_fake_server.target, tls=False) as client:
        yield client
