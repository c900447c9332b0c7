"""The gRPC server every service runs on: interceptors, health, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf import descriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from conduit_server.runtime import auth, interceptors
from conduit_server.runtime.idempotency import IdempotencyGuard, IdempotencyStore, keyed_methods
from conduit_server.runtime.tokens import AccessTokenVerifier

log = logging.getLogger("conduit.server")

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
SERVER_OPTIONS: Sequence[tuple[str, Any]] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.so_reuseport", 0),
)


@dataclass(frozen=True)
class Binding:
    """One gRPC service of the contract and the object that implements it."""

    descriptor: descriptor.ServiceDescriptor
    register: Callable[[Any, grpc.aio.Server], None]
    servicer: object


class ServiceApp(Protocol):
    """What a service package hands to the runtime.

    An app may also define `async def shutting_down()`, called as soon as health turns
    NOT_SERVING, to end its server streams with a resumable status.
    """

    name: str

    def bindings(self) -> Sequence[Binding]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class GrpcServer:
    """Serves one ServiceApp. `stop()` turns health NOT_SERVING, drains, then lets calls finish."""

    def __init__(self, app: ServiceApp, *, host: str, port: int, verifier: AccessTokenVerifier | None,
                 internal_token: str, grace_seconds: float = 10.0, drain_seconds: float = 0.0,
                 observers: Sequence[grpc.aio.ServerInterceptor] = (),  # type: ignore[type-arg]
                 idempotency: IdempotencyStore | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.grace_seconds = grace_seconds
        self.drain_seconds = drain_seconds
        bindings = app.bindings()
        # Raises MissingAuthRule before anything listens: fail closed.
        rules = auth.rules_for(b.descriptor for b in bindings)
        guard = (IdempotencyGuard(idempotency, keyed_methods([b.descriptor for b in bindings]))
                 if idempotency is not None else None)
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        # `observers` (tracing, metrics) go first: they must see every call and its final code.
        self.server = grpc.aio.server(
            interceptors=[*observers, *interceptors.chain(rules, verifier, internal_token, guard)],
            options=SERVER_OPTIONS)
        for binding in bindings:
            binding.register(binding.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.service_names = [b.descriptor.full_name for b in bindings]
        reflection.enable_server_reflection([*self.service_names, reflection.SERVICE_NAME,
                                             health.SERVICE_NAME], self.server)
        self._stopping = False

    async def start(self) -> int:
        """Start the app, then listen; returns the bound port (useful with port 0)."""
        await self.app.start()
        self.port = self.server.add_insecure_port(f"{self.host}:{self.port}")
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {self.host}")
        await self.server.start()
        for name in ["", *self.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", extra={"service": self.app.name, "address": f"{self.host}:{self.port}"})
        return self.port

    async def stop(self) -> None:
        """Graceful shutdown: NOT_SERVING, drain so balancers notice, finish in-flight calls, close."""
        if self._stopping:
            return
        self._stopping = True
        await self.health.enter_graceful_shutdown()
        # Apps with long-lived streams end them now (resumable status) instead of at the grace limit.
        shutting_down = getattr(self.app, "shutting_down", None)
        if shutting_down is not None:
            await shutting_down()
        if self.drain_seconds:
            await asyncio.sleep(self.drain_seconds)
        await self.server.stop(self.grace_seconds)
        await self.app.close()
        log.info("stopped", extra={"service": self.app.name})

    async def wait(self) -> None:
        await self.server.wait_for_termination()
