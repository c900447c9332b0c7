"""`FakeServer`: every RPC of the contract served in-process, answered from scripts, with faults.

Built from the generated method table (`_contract.METHODS`), so it serves the
same paths and message types as the mesh. Per method, in this order:

1. the next scripted step (`script(method, *steps)`): a response message, a
   `Fault`, a `Stream` (server streams), or a handler `fn(request, call)`;
2. else the method's handler (`handle(method, fn)`) or default reply (`reply`);
3. else, with `upstream=` (a `host:port`), the call is forwarded to a real
   server, metadata and deadline included: a fault-injecting proxy;
4. else UNIMPLEMENTED.

Every call is recorded (`calls(method)`): request, metadata, deadline left,
arrival time.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Self

import grpc
from google.protobuf.message import Message

from conduit.client._contract import METHODS
from conduit.client._methods import Method
from conduit.client.testing._faults import SILENCE, Fault, Handler, RecordedCall, Stream, _Cancellation

_HOP_BY_HOP = ("grpc-", ":", "user-agent", "content-type", "te")


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    return {key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)}


class FakeServer:
    """A real gRPC server on a loopback port serving every RPC of the contract from scripts."""

    def __init__(self, *, upstream: str | None = None, port: int = 0, max_workers: int = 32) -> None:
        self._server = grpc.server(ThreadPoolExecutor(max_workers=max_workers))
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Any]] = defaultdict(deque)
        self._handlers: dict[str, Any] = {}
        self._calls: dict[str, list[RecordedCall]] = defaultdict(list)
        self._upstream = grpc.insecure_channel(upstream) if upstream else None
        by_service: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = defaultdict(dict)
        self._methods: dict[str, Method[Any, Any]] = {}
        for method in METHODS.values():
            service = method.path.split("/")[1]
            by_service[service][method.name] = self._handler(method)
            self._methods[method.name] = method
        for service, handlers in by_service.items():
            self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self.target = f"127.0.0.1:{self.port}"

    # -- scripting -------------------------------------------------------------------------------

    def script(self, method: str, *steps: Any) -> Self:
        """Queue what the next calls of `method` (e.g. `"GetArticle"`) get, one step per call."""
        self._check(method)
        with self._lock:
            self._scripts[method].extend(steps)
        return self

    def reply(self, method: str, response: Message) -> Self:
        """The answer of every call of `method` once its script is spent."""
        self._check(method)
        self._handlers[method] = response
        return self

    def handle(self, method: str, handler: Handler) -> Self:
        """Answer unscripted calls of `method` with `handler(request, call)`."""
        self._check(method)
        self._handlers[method] = handler
        return self

    def calls(self, method: str) -> list[RecordedCall]:
        """The calls of `method` received so far, oldest first."""
        self._check(method)
        with self._lock:
            return list(self._calls[method])

    def _check(self, method: str) -> None:
        if method not in self._methods:
            raise KeyError(f"{method!r} is not an RPC of the contract")

    # -- serving ---------------------------------------------------------------------------------

    def _record(self, method: Method[Any, Any], request: Message, context: grpc.ServicerContext) -> RecordedCall:
        call = RecordedCall(method.name, request, _metadata(context), context.time_remaining(), time.monotonic())
        with self._lock:
            self._calls[method.name].append(call)
        return call

    def _next(self, method: str) -> Any:
        with self._lock:
            script = self._scripts[method]
            return script.popleft() if script else None

    def _handler(self, method: Method[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
        options = {"request_deserializer": method.request_type.FromString,
                   "response_serializer": method.response_type.SerializeToString}
        if method.kind == "unary":
            return grpc.unary_unary_rpc_method_handler(
                lambda request, context: self._unary(method, request, context), **options)
        if method.kind == "server_stream":
            return grpc.unary_stream_rpc_method_handler(
                lambda request, context: self._stream(method, request, context), **options)
        return grpc.stream_unary_rpc_method_handler(
            lambda requests, context: self._client_stream(method, requests, context), **options)

    def _unary(self, method: Method[Any, Any], request: Message, context: grpc.ServicerContext) -> Message:
        call = self._record(method, request, context)
        return self._answer(method, self._next(method.name), request, call, context)

    def _answer(self, method: Method[Any, Any], step: Any, request: Message, call: RecordedCall,
                context: grpc.ServicerContext) -> Message:
        if step is None:
            step = self._handlers.get(method.name)
        if isinstance(step, Message):
            return step
        if isinstance(step, Fault):
            return self._fault(method, step, request, call, context)
        if callable(step):
            answer: Message = step(request, call)
            return answer
        if self._upstream is not None:
            return self._forward(method, request, call, context)
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"FakeServer has no script for {method.name}")
        raise AssertionError("unreachable")  # context.abort raises

    def _fault(self, method: Method[Any, Any], fault: Fault, request: Message, call: RecordedCall,
               context: grpc.ServicerContext) -> Message:
        if fault.kind == "status":
            fault.abort(context)
        if fault.kind == "hang":
            _Cancellation().wait(context, None)
            context.abort(grpc.StatusCode.CANCELLED, "the client gave up")
        if fault.kind == "delay":
            if _Cancellation().wait(context, fault.seconds):
                context.abort(grpc.StatusCode.CANCELLED, "the client gave up")
            return self._answer(method, fault.then, request, call, context)
        # lose_answer: the work is done, the answer never arrives.
        self._answer(method, fault.then, request, call, context)
        return Fault.unavailable("the connection dropped before the answer (injected)").abort(context)

    def _forward(self, method: Method[Any, Any], request: Message, call: RecordedCall,
                 context: grpc.ServicerContext) -> Message:
        assert self._upstream is not None
        forward = self._upstream.unary_unary(method.path, request_serializer=method.request_type.SerializeToString,
                                             response_deserializer=method.response_type.FromString)
        metadata = tuple((k, v) for k, v in call.metadata.items() if not k.startswith(_HOP_BY_HOP))
        try:
            response, upstream_call = forward.with_call(request, metadata=metadata, timeout=context.time_remaining())
            initial: Any = upstream_call.initial_metadata() or ()
            context.send_initial_metadata(tuple((str(k), v) for k, v in initial if not str(k).startswith(_HOP_BY_HOP)))
        except grpc.RpcError as exc:
            pairs: Any = exc.trailing_metadata() or ()
            trailing = tuple((str(key), value) for key, value in pairs)
            context.set_trailing_metadata(trailing)
            context.abort(exc.code(), exc.details() or "")
        answer: Message = response
        return answer

    def _stream(self, method: Method[Any, Any], request: Message, context: grpc.ServicerContext) -> Iterator[Message]:
        call = self._record(method, request, context)
        step = self._next(method.name) or self._handlers.get(method.name)
        if isinstance(step, Fault):
            self._fault(method, step, request, call, context)
        if callable(step) and not isinstance(step, Stream):
            step = step(request, call)
        if not isinstance(step, Stream):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"FakeServer has no stream script for {method.name}")
        if step.heartbeat_interval is not None:
            context.send_initial_metadata(
                (("conduit-heartbeat-interval-ms", str(int(step.heartbeat_interval * 1000))),))
        yield from step.messages
        if step.end is not None and step.end.kind == SILENCE.kind:
            _Cancellation().wait(context, None)
            return
        if step.end is not None:
            step.end.abort(context)

    def _client_stream(self, method: Method[Any, Any], requests: Iterator[Message],
                       context: grpc.ServicerContext) -> Message:
        items = list(requests)
        request = items[-1] if items else method.request_type()
        call = self._record(method, request, context)
        return self._answer(method, self._next(method.name), request, call, context)

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self, grace: float | None = None) -> None:
        """Stop serving; calls in flight (a hung or silent one too) are cancelled."""
        self._server.stop(grace).wait()
        if self._upstream is not None:
            self._upstream.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
