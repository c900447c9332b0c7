"""Helpers for testing code that uses the SDK.

Against a running mesh (`make run`, or a deployed one), configured by the
environment, as the examples are:

```python
from conduit.client import testing

with testing.from_env() as conduit:   # CONDUIT_TARGET, CONDUIT_CA_FILE, CONDUIT_TLS, CONDUIT_TOKEN
    print(conduit.tags.list())
```

Against an in-process server: implement the generated servicers you need
(fakes of the contract) and serve them with `InProcessServer`, a real gRPC
server on a loopback port. Any client works with it:

```python
from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
from conduit.client import Conduit
from conduit.client.testing import InProcessServer

class Tags(articles_pb2_grpc.TagsServiceServicer):
    def ListTags(self, request, context):
        return articles_pb2.ListTagsResponse(tags=["grpc"])

with InProcessServer().add(articles_pb2_grpc.add_TagsServiceServicer_to_server, Tags()) as server:
    with Conduit.connect(server.target, tls=False) as conduit:
        assert conduit.tags.list() == ["grpc"]
```

`AsyncInProcessServer` is the `grpc.aio` twin (async servicers, `async with`).

A fake of the whole contract, scripted, with faults (`FakeServer`, `Fault`,
`Stream`): no servicer to write, every call recorded.

```python
from conduit.articles.v1 import articles_pb2
from conduit.client.testing import Fault, FakeServer

with FakeServer() as fake:
    fake.script("ListTags", Fault.unavailable(retry_after=0.2), articles_pb2.ListTagsResponse(tags=["grpc"]))
    with Conduit.connect(fake.target, tls=False) as conduit:
        assert conduit.tags.list() == ["grpc"]          # after waiting the 0.2 s the server asked for
    assert len(fake.calls("ListTags")) == 2
```

`FakeServer(upstream="host:port")` forwards unscripted calls to a real
server: a proxy that injects faults (`Fault.lose_answer()` does the call and
drops the answer, as a lost connection would). With pytest, the plugin
`conduit.client.testing.plugin` (registered when the SDK is installed)
provides the fixtures `conduit_fake_server` and `conduit_fake_client`.

`Conduit.from_channel(channel)` / `AsyncConduit.from_channel(channel)` accept
any channel you already have, e.g. one to a `grpc.aio` server in your tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Self, TypeVar

import grpc
import grpc.aio

from conduit.client._async import AsyncConduit
from conduit.client._auth import Credentials
from conduit.client._channel import CA_FILE_ENV
from conduit.client._policy import DEFAULT_TIMEOUT
from conduit.client._retry import RetryPolicy
from conduit.client._sync import Conduit

#: The address of the mesh to use (`host:port`); `localhost:8443` (Envoy of `make run`) when unset.
TARGET_ENV = "CONDUIT_TARGET"
#: `0`, `false` or `no` for plaintext (e.g. a service port without TLS).
TLS_ENV = "CONDUIT_TLS"
#: An access token to send, when no credentials are passed.
TOKEN_ENV = "CONDUIT_TOKEN"  # noqa: S105 - the name of a variable, not a secret
DEFAULT_TARGET = "localhost:8443"

S = TypeVar("S")


def _settings(environ: Mapping[str, str] | None) -> tuple[str, bool, str | None, str | None]:
    env = os.environ if environ is None else environ
    target = env.get(TARGET_ENV) or DEFAULT_TARGET
    tls = env.get(TLS_ENV, "1").strip().lower() not in ("0", "false", "no")
    ca_file = (env.get(CA_FILE_ENV) or None) if tls else None
    return target, tls, ca_file, env.get(TOKEN_ENV) or None


def from_env(*, credentials: Credentials | None = None, timeout: float = DEFAULT_TIMEOUT,
             retry: RetryPolicy | None = None, environ: Mapping[str, str] | None = None) -> Conduit:
    """A client for the mesh named by `CONDUIT_TARGET`, trusting `CONDUIT_CA_FILE`.

    `CONDUIT_TLS=0` selects plaintext; `CONDUIT_TOKEN` is sent unless
    `credentials` are given. `environ` replaces `os.environ` (for tests).
    """
    target, tls, ca_file, token = _settings(environ)
    return Conduit.connect(target, tls=tls, ca_file=ca_file, token=None if credentials else token,
                           credentials=credentials, timeout=timeout, retry=retry)


async def async_from_env(*, credentials: Credentials | None = None,
                         timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - the default gRPC deadline
                         retry: RetryPolicy | None = None,
                         environ: Mapping[str, str] | None = None) -> AsyncConduit:
    """The `asyncio` twin of `from_env`."""
    target, tls, ca_file, token = _settings(environ)
    return await AsyncConduit.connect(target, tls=tls, ca_file=ca_file, token=None if credentials else token,
                                      credentials=credentials, timeout=timeout, retry=retry)


class InProcessServer:
    """A real gRPC server in this process (threads, plaintext loopback) serving the servicers you add.

    `target` is known as soon as it is made; `port=` pins the port (to
    restart a server where clients expect it).
    """

    def __init__(self, *, port: int = 0, max_workers: int = 32) -> None:
        self._server = grpc.server(ThreadPoolExecutor(max_workers=max_workers))
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self.target = f"127.0.0.1:{self.port}"

    def add(self, register: Callable[[S, grpc.Server], None], servicer: S) -> Self:
        """Serve `servicer` with its generated `add_<Service>Servicer_to_server` function."""
        register(servicer, self._server)
        return self

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop serving; calls in flight are cancelled after `grace` seconds (at once when None)."""
        self._server.stop(grace).wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class AsyncInProcessServer:
    """A `grpc.aio` server in this process (plaintext loopback) serving the async servicers you add.

    ```python
    async with AsyncInProcessServer().add(articles_pb2_grpc.add_TagsServiceServicer_to_server, Tags()) as server:
        async with await AsyncConduit.connect(server.target, tls=False) as conduit:
            ...
    ```
    """

    def __init__(self, *, port: int = 0) -> None:
        self._server = grpc.aio.server()
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self.target = f"127.0.0.1:{self.port}"

    def add(self, register: Callable[[S, grpc.aio.Server], None], servicer: S) -> Self:
        """Serve `servicer` with its generated `add_<Service>Servicer_to_server` function."""
        register(servicer, self._server)
        return self

    async def start(self) -> Self:
        await self._server.start()
        return self

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving; calls in flight are cancelled after `grace` seconds (at once when None)."""
        await self._server.stop(grace)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


from conduit.client.testing._fake import FakeServer  # noqa: E402 - after the helpers it shares a module with
from conduit.client.testing._faults import SILENCE, Fault, RecordedCall, Stream  # noqa: E402

__all__ = ["DEFAULT_TARGET", "SILENCE", "TARGET_ENV", "TLS_ENV", "TOKEN_ENV", "AsyncInProcessServer", "FakeServer",
           "Fault", "InProcessServer", "RecordedCall", "Stream", "async_from_env", "from_env"]
