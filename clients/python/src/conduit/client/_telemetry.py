"""Spans, debug logs and raw responses of calls: what a caller can observe of each attempt.

- OpenTelemetry (API only: the application picks the SDK and exporter): one
  CLIENT span per operation (`conduit.client/<Method>`), one child span per
  attempt with `conduit.attempt`, `conduit.backoff_seconds` and
  `conduit.retry_reason`; watches record `conduit.watch.reconnects` and a
  `reconnect` event per reconnect. The trace context goes out in the call
  metadata (W3C `traceparent`), so server spans join the caller's trace.
- `CONDUIT_LOG=debug` logs every attempt, retry decision and reconnect on
  stderr (logger `conduit.client`). Metadata values are never logged: only
  method names, codes, reasons and timings.
- `with client.with_raw_response() as raw:` records every call made inside the
  block (`raw.calls`, `raw.last`): response message, initial and trailing
  metadata, status code, attempts.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
from google.protobuf.message import Message
from opentelemetry import propagate, trace

log = logging.getLogger("conduit.client")
tracer = trace.get_tracer("conduit.client")

#: `debug` turns on the SDK's debug log on stderr.
LOG_ENV = "CONDUIT_LOG"
Pairs = tuple[tuple[str, str | bytes], ...]


def configure_logging(environ: dict[str, str] | None = None) -> None:
    """Honour `CONDUIT_LOG=debug` (once per process; an existing handler is kept)."""
    value = (environ if environ is not None else os.environ).get(LOG_ENV, "").strip().lower()
    if value != "debug":
        return
    log.setLevel(logging.DEBUG)
    if not any(getattr(h, "conduit_sdk", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s conduit.client %(levelname)s %(message)s"))
        handler.conduit_sdk = True  # type: ignore[attr-defined]
        log.addHandler(handler)


@contextmanager
def operation_span(method: str, *, kind: str, idempotency: str) -> Iterator[trace.Span]:
    with tracer.start_as_current_span(f"conduit.client/{method}", kind=trace.SpanKind.CLIENT, attributes={
            "rpc.system": "grpc", "rpc.method": method, "conduit.idempotency": idempotency,
            "conduit.kind": kind}) as span:
        yield span


@contextmanager
def attempt_span(method: str, attempt: int, *, backoff: float, reason: str | None,
                 timeout: float | None) -> Iterator[trace.Span]:
    attributes: dict[str, str | int | float] = {"conduit.attempt": attempt, "conduit.backoff_seconds": backoff}
    if reason:
        attributes["conduit.retry_reason"] = reason
    if timeout is not None:
        attributes["conduit.attempt_timeout_seconds"] = timeout
    with tracer.start_as_current_span(f"conduit.client/{method} attempt", attributes=attributes) as span:
        yield span


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace context as call metadata (empty without an active span)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


@dataclass(frozen=True)
class RawResponse:
    """One call as it went over the wire."""

    method: str
    code: grpc.StatusCode
    response: Message | None
    initial_metadata: Pairs
    trailing_metadata: Pairs
    attempts: int


@dataclass
class RawCapture:
    """The calls made inside a `with client.with_raw_response()` block, oldest first."""

    calls: list[RawResponse] = field(default_factory=list)

    @property
    def last(self) -> RawResponse:
        if not self.calls:
            raise LookupError("no call was made in this block")
        return self.calls[-1]


_capture: contextvars.ContextVar[RawCapture | None] = contextvars.ContextVar("conduit_raw", default=None)


@contextmanager
def capture_raw() -> Iterator[RawCapture]:
    capture = RawCapture()
    token = _capture.set(capture)
    try:
        yield capture
    finally:
        _capture.reset(token)


def capturing() -> bool:
    return _capture.get() is not None


def record(method: str, code: grpc.StatusCode, response: Message | None, *, initial: object, trailing: object,
           attempts: int) -> None:
    capture = _capture.get()
    if capture is not None:
        capture.calls.append(RawResponse(method, code, response, _pairs(initial), _pairs(trailing), attempts))


def _pairs(metadata: object) -> Pairs:
    if not metadata:
        return ()
    return tuple((str(k), v) for k, v in metadata)  # type: ignore[attr-defined]
