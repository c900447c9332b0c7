"""Password hashing: argon2id, off the event loop, with a dummy verify against timing probes.

Parameters follow the OWASP Password Storage Cheat Sheet (section "Argon2id"):
"a minimum configuration of 19 MiB of memory, an iteration count of 2, and 1
degree of parallelism" — m=19456 KiB, t=2, p=1. It is the cheat sheet's first
listed option; its lower memory keeps a burst of concurrent logins from using
much RAM (max_concurrency x 19 MiB), and the work is still far beyond offline
guessing budgets per hash.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class Argon2Parameters:
    """argon2id cost parameters; memory in KiB as argon2 counts it."""

    time_cost: int = 2
    memory_cost_kib: int = 19 * 1024
    parallelism: int = 1
    hash_len: int = 32
    salt_len: int = 16


# OWASP Password Storage Cheat Sheet, Argon2id minimum: m=19 MiB, t=2, p=1.
OWASP_ARGON2ID = Argon2Parameters()


class PasswordHasher:
    """argon2id hashing that never blocks the event loop.

    The work runs in a small dedicated thread pool (argon2-cffi releases the
    GIL), which also bounds how much CPU and memory a login storm can take.
    """

    def __init__(self, parameters: Argon2Parameters = OWASP_ARGON2ID, *,
                 max_concurrency: int | None = None) -> None:
        self.parameters = parameters
        self._hasher = argon2.PasswordHasher(
            time_cost=parameters.time_cost, memory_cost=parameters.memory_cost_kib,
            parallelism=parameters.parallelism, hash_len=parameters.hash_len,
            salt_len=parameters.salt_len, type=argon2.Type.ID)
        workers = max_concurrency or min(4, os.cpu_count() or 1)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        # Same parameters as real hashes, so an unknown email costs what a wrong password costs.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))

    def __repr__(self) -> str:
        return f"PasswordHasher({self.parameters!r})"

    async def _run(self, function: Callable[..., _T], *args: str) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def hash(self, password: str) -> str:
        """A PHC-format `$argon2id$...` hash with a fresh random salt."""
        return await self._run(self._hasher.hash, password)

    def _verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError):
            # A corrupt stored hash must fail the login, not the request; the hash itself is not logged.
            logger.warning("stored password hash is not a valid argon2 hash")
            return False

    async def verify(self, password_hash: str, password: str) -> bool:
        """Whether `password` matches `password_hash`; False for mismatches and corrupt hashes."""
        return await self._run(self._verify_sync, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether a hash was made with other parameters (or is not argon2id at all)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    async def verify_and_rehash(self, password_hash: str, password: str) -> tuple[bool, str | None]:
        """Verify, and when the password is right but the hash outdated, return a fresh hash to store."""
        if not await self.verify(password_hash, password):
            return False, None
        if self.needs_rehash(password_hash):
            return True, await self.hash(password)
        return True, None

    async def verify_dummy(self, password: str) -> bool:
        """Burn one verification for an unknown account, so timing does not reveal it; always False."""
        await self.verify(self._dummy_hash, password)
        return False

    def close(self) -> None:
        """Stop the worker threads (at process shutdown)."""
        self._executor.shutdown(wait=True, cancel_futures=True)


__all__ = ["OWASP_ARGON2ID", "Argon2Parameters", "PasswordHasher"]
