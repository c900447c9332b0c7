"""Idempotency keys: a repeat of a non-idempotent call returns the first call's result.

The contract (`conduit/options/v1/client.proto`) says which methods take a key:
every unary RPC whose `idempotency_level` is unknown. A caller sends the key in
the `idempotency-key` metadata; this stage (innermost, after authorization and
validation) keeps, per (caller, method, key), the first answer or the first
final error for `window_seconds` in Redis and answers repeats with it.

- The first attempt claims the key with `SET NX` and a pending marker (which
  expires after `pending_seconds`, so a crashed attempt frees it).
- A repeat while the first still runs is ABORTED (`IDEMPOTENCY_KEY_IN_USE`):
  the client retries it after a backoff and then finds the stored result. The
  server never holds a handler slot waiting (docs/decisions/0034).
- A repeat whose request differs from the first is FAILED_PRECONDITION
  (`IDEMPOTENCY_KEY_REUSED`): a key names one operation, never two.
- Transient failures (UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED, DEADLINE_EXCEEDED,
  INTERNAL, a cancelled call) release the key, so a retry runs the method again.
- Without a key, or when Redis fails, the call runs as it would without this
  stage (a Redis outage must not stop writes; the key is then best effort).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Collection
from typing import Any

import grpc
import redis.asyncio as aioredis
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message
from redis.exceptions import RedisError

from conduit_server.runtime import auth
from conduit_server.runtime.errors import (
    ConduitError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    Replayed,
    StatusPayload,
    to_status,
)

log = logging.getLogger("conduit.idempotency")

#: The metadata key of idempotency keys, as the contract names it (client.proto).
IDEMPOTENCY_KEY_HEADER = "idempotency-key"
MAX_KEY_LENGTH = 128
_PENDING = "pending"
_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED,
                        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL,
                        grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN})


class KeyInUse(ConduitError):
    """A call with the same key is still running (ABORTED: retry later)."""

    code = grpc.StatusCode.ABORTED
    reason = "IDEMPOTENCY_KEY_IN_USE"


def keyed_methods(services: Collection[Any]) -> frozenset[str]:
    """Paths of the methods that take a key: unary, idempotency level unknown."""
    paths: set[str] = set()
    for service in services:
        for method in service.methods:
            level = method.GetOptions().idempotency_level
            if level == 0 and not method.client_streaming and not method.server_streaming:
                paths.add(f"/{service.full_name}/{method.name}")
    return frozenset(paths)


def valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable()


class IdempotencyStore:
    """Results of keyed calls in Redis: `claim`, `finish` with an answer or error, `release`."""

    def __init__(self, redis: aioredis.Redis, *, window_seconds: float, pending_seconds: float,
                 prefix: str = "conduit:idempotency:") -> None:
        if window_seconds <= 0 or pending_seconds <= 0:
            raise ValueError("window_seconds and pending_seconds must be positive")
        self.redis = redis
        self.window_ms = int(window_seconds * 1000)
        self.pending_ms = int(pending_seconds * 1000)
        self.prefix = prefix

    def redis_key(self, caller: str, method: str, key: str) -> str:
        digest = hashlib.sha256(f"{caller}\x00{method}\x00{key}".encode()).hexdigest()
        return self.prefix + digest

    async def claim(self, redis_key: str, fingerprint: str) -> dict[str, Any] | None:
        """None when this call now owns the key, else what is stored (pending or a result)."""
        record = json.dumps({"state": _PENDING, "fingerprint": fingerprint})
        if await self.redis.set(redis_key, record, nx=True, px=self.pending_ms):
            return None
        stored = await self.redis.get(redis_key)
        if stored is None:  # expired between the two commands: claim again
            return await self.claim(redis_key, fingerprint)
        found: dict[str, Any] = json.loads(stored)
        return found

    async def finish(self, redis_key: str, fingerprint: str, *, response: bytes | None = None,
                     error: StatusPayload | None = None) -> None:
        record: dict[str, Any] = {"state": "done", "fingerprint": fingerprint}
        if response is not None:
            record["response"] = base64.b64encode(response).decode()
        if error is not None:
            record["error"] = {"code": error.code.name, "message": error.message,
                               "trailing": [[k, base64.b64encode(v).decode() if isinstance(v, bytes) else v,
                                             isinstance(v, bytes)] for k, v in error.trailing_metadata]}
        await self.redis.set(redis_key, json.dumps(record), px=self.window_ms)

    async def release(self, redis_key: str) -> None:
        await self.redis.delete(redis_key)


def _fingerprint(request: Any) -> str:
    data = request.SerializeToString(deterministic=True) if isinstance(request, Message) else repr(request).encode()
    return hashlib.sha256(data).hexdigest()


def _response_class(method: str) -> type[Message]:
    service, name = method.lstrip("/").rsplit("/", 1)
    descriptor = descriptor_pool.Default().FindServiceByName(service).methods_by_name[name]
    return message_factory.GetMessageClass(descriptor.output_type)


def _stored_error(record: dict[str, Any]) -> StatusPayload:
    trailing = tuple((k, base64.b64decode(v) if is_bytes else v) for k, v, is_bytes in record["trailing"])
    return StatusPayload(grpc.StatusCode[record["code"]], record["message"], trailing)


class IdempotencyGuard:
    """Runs a keyed unary behaviour at most once per (caller, method, key) and window."""

    def __init__(self, store: IdempotencyStore, methods: Collection[str]) -> None:
        self.store = store
        self.methods = frozenset(methods)

    async def run(self, method: str, request: Any, context: grpc.aio.ServicerContext[Any, Any],
                  behavior: Any) -> Any:
        key = next((str(v) for k, v in context.invocation_metadata() or () if k == IDEMPOTENCY_KEY_HEADER), None)
        if key is None:
            return await behavior(request, context)
        if not valid_key(key):
            raise InvalidArgument([FieldViolation(
                IDEMPOTENCY_KEY_HEADER, f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")])
        principal = auth.current_principal()
        redis_key = self.store.redis_key(principal.subject if principal else "anonymous", method, key)
        fingerprint = _fingerprint(request)
        try:
            stored = await self.store.claim(redis_key, fingerprint)
        except RedisError:
            log.warning("idempotency store unavailable; %s runs without its key", method)
            return await behavior(request, context)
        if stored is not None:
            return await self._replay(method, stored, fingerprint, context)
        try:
            response = await behavior(request, context)
        except ConduitError as error:
            payload = to_status(error)
            await self._settle(redis_key, fingerprint, error=payload)
            raise
        except BaseException:
            await self._release(redis_key)
            raise
        await self._settle(redis_key, fingerprint, response=response.SerializeToString())
        return response

    async def _replay(self, method: str, stored: dict[str, Any], fingerprint: str,
                      context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if stored.get("fingerprint") != fingerprint:
            raise FailedPrecondition(f"{IDEMPOTENCY_KEY_HEADER} was already used with a different request",
                                     reason="IDEMPOTENCY_KEY_REUSED")
        if stored["state"] == _PENDING:
            raise KeyInUse("a call with this idempotency key is still running; retry later")
        await context.send_initial_metadata((("idempotent-replayed", "true"),))
        if "error" in stored:
            raise Replayed(_stored_error(stored["error"]))
        return _response_class(method).FromString(base64.b64decode(stored["response"]))

    async def _settle(self, redis_key: str, fingerprint: str, *, response: bytes | None = None,
                      error: StatusPayload | None = None) -> None:
        try:
            if error is not None and error.code in _TRANSIENT:
                await self.store.release(redis_key)
            else:
                await self.store.finish(redis_key, fingerprint, response=response, error=error)
        except RedisError:
            log.warning("idempotency store unavailable; the result of a keyed call was not kept")

    async def _release(self, redis_key: str) -> None:
        try:
            await self.store.release(redis_key)
        except RedisError:
            log.warning("idempotency store unavailable; a keyed call's pending marker expires on its own")
