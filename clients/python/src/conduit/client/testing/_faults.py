"""Scripted answers and injected faults for `FakeServer`: what one call (or one stream) gets."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

#: The ErrorInfo domain of the services' errors.
ERROR_DOMAIN = "conduit.dev"


def _packed(details: Sequence[Message]) -> list[any_pb2.Any]:
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return packed


@dataclass(frozen=True)
class Fault:
    """One injected failure or delay. Make them with the class methods; pass them to `FakeServer.script`."""

    kind: str
    code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    message: str = ""
    details: tuple[Message, ...] = ()
    seconds: float = 0.0
    then: Any = None

    @classmethod
    def status(cls, code: grpc.StatusCode, message: str = "injected fault", *, reason: str | None = None,
               retry_after: float | None = None, metadata: dict[str, str] | None = None,
               details: Sequence[Message] = ()) -> Fault:
        """End the call with `code` and `google.rpc` details: ErrorInfo(`reason`), RetryInfo(`retry_after`)."""
        extra: list[Message] = []
        if reason is not None:
            extra.append(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata or {}))
        if retry_after is not None:
            delay = duration_pb2.Duration()
            delay.FromTimedelta(datetime.timedelta(seconds=retry_after))
            extra.append(error_details_pb2.RetryInfo(retry_delay=delay))
        return cls("status", code=code, message=message, details=(*extra, *details))

    @classmethod
    def unavailable(cls, message: str = "service unavailable (injected)", *,
                    retry_after: float | None = None, reason: str | None = "UNAVAILABLE") -> Fault:
        """UNAVAILABLE, with RetryInfo when `retry_after` is given."""
        return cls.status(grpc.StatusCode.UNAVAILABLE, message, reason=reason, retry_after=retry_after)

    @classmethod
    def delay(cls, seconds: float, then: Any = None) -> Fault:
        """Answer after `seconds` (with `then`: a message, a Fault, or None for the default answer);
        a client deadline that passes first ends the call as DEADLINE_EXCEEDED."""
        return cls("delay", seconds=seconds, then=then)

    @classmethod
    def hang(cls) -> Fault:
        """Never answer: the call ends only when the client cancels it or its deadline passes."""
        return cls("hang")

    @classmethod
    def lose_answer(cls, then: Any = None) -> Fault:
        """Do the call (`then`, the default answer, or the upstream server), then drop the answer:
        the client sees UNAVAILABLE as after a lost connection, though the work was done."""
        return cls("lose_answer", then=then)

    def abort(self, context: grpc.ServicerContext) -> NoReturn:
        status = status_pb2.Status(code=self.code.value[0], message=self.message, details=_packed(self.details))
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
        context.abort(self.code, self.message)


#: A stream ending that sends nothing more and never closes (a server gone silent).
SILENCE = Fault("silence")


@dataclass(frozen=True)
class Stream:
    """What one call of a server-streaming method gets: `messages`, then `end`.

    `end`: None closes the stream cleanly; a `Fault` ends it with that status; `SILENCE`
    keeps it open without sending anything until the client gives up.
    `heartbeat_interval` (seconds) is announced in the initial metadata as the
    realtime service does (`conduit-heartbeat-interval-ms`).
    """

    messages: Sequence[Message] = ()
    end: Fault | None = None
    heartbeat_interval: float | None = None

    @classmethod
    def cut(cls, messages: Sequence[Message], *, after: int, retry_after: float | None = None) -> Stream:
        """Send the first `after` messages, then drop the stream with UNAVAILABLE."""
        return cls(messages[:after], end=Fault.unavailable("stream cut (injected)", retry_after=retry_after))

    @classmethod
    def silent(cls, messages: Sequence[Message] = (), *, heartbeat_interval: float | None = None) -> Stream:
        """Send `messages`, then go silent without closing."""
        return cls(messages, end=SILENCE, heartbeat_interval=heartbeat_interval)


@dataclass
class RecordedCall:
    """One call the fake server received."""

    method: str
    #: The request message, of the method's request type.
    request: Any
    metadata: dict[str, str]
    #: Seconds the client's deadline left when the call arrived (None: no deadline).
    deadline: float | None
    #: `time.monotonic()` when it arrived.
    received_at: float

    @property
    def idempotency_key(self) -> str | None:
        return self.metadata.get("idempotency-key")


Handler = Callable[[Message, RecordedCall], Message]


@dataclass
class _Cancellation:
    """Wakes a waiting handler when its call ends (deadline, cancel)."""

    event: threading.Event = field(default_factory=threading.Event)

    def wait(self, context: grpc.ServicerContext, seconds: float | None) -> bool:
        """True when the call ended before `seconds` passed."""
        context.add_callback(self.event.set)
        return self.event.wait(seconds)
