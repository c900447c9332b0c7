"""Helpers shared by test areas: the status details of a failed gRPC call; waiting for progress."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def trailers(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    metadata: Any = error.trailing_metadata() or ()
    return dict(metadata)


def details(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    """The google.rpc details of a failed call, by message name."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]  # AioRpcError is a Call at runtime
    assert status is not None, "no grpc-status-details-bin on the error"
    found: dict[str, Any] = {}
    for detail in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found[kind.DESCRIPTOR.name] = message
    return found


async def eventually(condition: Callable[[], bool], *, seconds: float = 5.0, poll: float = 0.01) -> None:
    """Wait until `condition()` holds, polling (for progress made by another task or process)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the condition belongs to another task or process
            await asyncio.sleep(poll)
