"""SDK unit tests: in-process test servers of the contract, no mesh needed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conduit.client.testing import InProcessServer

Serve = Callable[..., InProcessServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start an InProcessServer with (register, servicer) pairs; every server stops after the test."""
    servers: list[InProcessServer] = []

    def start(*registrations: tuple[Callable[[Any, Any], None], Any], port: int = 0) -> InProcessServer:
        server = InProcessServer(port=port)
        for register, servicer in registrations:
            server.add(register, servicer)
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()
