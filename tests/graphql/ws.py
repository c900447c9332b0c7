"""A graphql-transport-ws client over wss:// (the `websockets` library): just enough protocol for tests and the
bench, so what is tested is the server and Envoy, not a client of ours (the graphql-ws npm client is
tested beside it)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

PROTOCOL = "graphql-transport-ws"


class Subscriber:
    """One connection with one subscription; `next()` returns the payload of the next `next` message."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, url: str, ca: Path, query: str, variables: Mapping[str, Any] | None = None, *,
                   token: str | None = None, source: str | None = None) -> Subscriber:
        """`source`: the local address to connect from (any 127.x.y.z is a distinct client on loopback)."""
        context = ssl.create_default_context(cafile=ca)
        connection = await websockets.connect(url, ssl=context, subprotocols=[PROTOCOL],  # type: ignore[list-item]
                                              open_timeout=30, max_queue=None,
                                              local_addr=(source, 0) if source else None)
        payload = {"Authorization": f"Token {token}"} if token else {}
        await connection.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await connection.recv())
        if ack["type"] != "connection_ack":
            raise AssertionError(f"no connection_ack: {ack}")
        await connection.send(json.dumps({"id": "1", "type": "subscribe",
                                          "payload": {"query": query, "variables": dict(variables or {})}}))
        return cls(connection)

    async def next(self) -> dict[str, Any]:
        """The next result (pings are answered and skipped); AssertionError on an error or completion."""
        while True:
            message = json.loads(await self.connection.recv())
            if message["type"] == "ping":
                await self.connection.send(json.dumps({"type": "pong"}))
                continue
            if message["type"] == "pong":
                continue
            if message["type"] != "next":
                raise AssertionError(f"subscription ended: {message}")
            result: dict[str, Any] = message["payload"]
            return result

    async def close(self) -> None:
        await self.connection.close()
