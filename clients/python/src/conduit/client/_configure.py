"""What the sync and async clients share: per-call options, the method table, raw responses."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Self

from conduit.client._policy import MethodTable
from conduit.client._telemetry import RawCapture, capture_raw
from conduit.client._transport import CallOptions


class Configurable:
    """`with_options`, `with_methods`, `methods` and `with_raw_response` of a client."""

    _transport: Any

    def _with_transport(self, transport: Any) -> Self:
        raise NotImplementedError

    def with_options(self, *, timeout: float | None = None, deadline: float | None = None,
                     retries: int | None = None, metadata: Mapping[str, str] | None = None,
                     idempotency_key: str | None = None) -> Self:
        """A copy of this client (same channel and credentials) whose calls use these options.

        - `timeout`: seconds per attempt (else each method's default from the contract);
        - `deadline`: seconds for the whole operation: every retry and wait of a call,
          every page of a pager, every reconnect of a watch made with the copy;
        - `retries`: retries after the first attempt (0: none);
        - `metadata`: extra request metadata, added to the copy's;
        - `idempotency_key`: the key of the copy's non-idempotent calls (one operation).

        Options not given keep their current value. Closing the copy leaves the channel open.
        """
        current: CallOptions = self._transport.options
        options = CallOptions(
            timeout=timeout if timeout is not None else current.timeout,
            deadline=deadline if deadline is not None else current.deadline,
            retries=retries if retries is not None else current.retries,
            metadata=(*current.metadata, *(metadata or {}).items()),
            idempotency_key=idempotency_key if idempotency_key is not None else current.idempotency_key)
        return self._with_transport(self._transport.with_options(options))

    def with_methods(self, methods: MethodTable) -> Self:
        """A copy of this client that calls with another method table (e.g. `methods.override(...)`)."""
        return self._with_transport(self._transport.with_table(methods))

    @property
    def methods(self) -> MethodTable:
        """The per-method policy table in use: `print(client.methods)`."""
        table: MethodTable = self._transport.table
        return table

    @staticmethod
    def with_raw_response() -> AbstractContextManager[RawCapture]:
        """Record the calls made in a `with` block: response, initial and trailing metadata, attempts.

        ```python
        with conduit.with_raw_response() as raw:
            article = conduit.articles.get("hello")
        print(raw.last.initial_metadata, raw.last.trailing_metadata, raw.last.attempts)
        ```
        Methods keep returning their typed results; tasks and threads record separately.
        """
        return capture_raw()
