"""Helpers shared by test areas: the google.rpc status details of a failed gRPC call; waiting for progress."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2


def trailers(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    metadata: Any = error.trailing_metadata() or ()
    return dict(metadata)


def status_of(source: grpc.aio.AioRpcError | Any) -> status_pb2.Status:
    """The google.rpc.Status of a failed call, or of trailing metadata (`grpc-status-details-bin`)."""
    metadata: Any = source.trailing_metadata() if isinstance(source, grpc.aio.AioRpcError) else source
    blobs = [value for key, value in (metadata or ()) if key == "grpc-status-details-bin"]
    assert blobs, "no grpc-status-details-bin in the trailing metadata"
    return status_pb2.Status.FromString(bytes(blobs[0]))


def details(source: grpc.aio.AioRpcError | Any) -> dict[str, Any]:
    """The google.rpc details of a failed call (or of its trailing metadata), by message name."""
    found: dict[str, Any] = {}
    for detail in status_of(source).details:
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
