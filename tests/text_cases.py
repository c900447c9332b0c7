"""Requests whose strings cannot be stored, for every RPC of the contract (tests of runtime.text).

`string_fields()` lists every (RPC, string field path) of the contract's services, nested,
repeated and oneof fields included; `request_bytes` builds the wire bytes of one request with
that field set, either to a text containing U+0000 or to bytes that are not UTF-8 (an unpaired
surrogate as CESU-8: what a client that does not check its strings sends); `call_raw` sends
them as they are, whatever the RPC's streaming shape, and returns the status code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor, message_factory
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from conduit.articles.v1 import articles_pb2
from conduit.realtime.v1 import realtime_pb2
from conduit.search.v1 import search_pb2
from conduit.users.v1 import users_pb2

FILES = (users_pb2.DESCRIPTOR, articles_pb2.DESCRIPTOR, search_pb2.DESCRIPTOR, realtime_pb2.DESCRIPTOR)
SURROGATE = b"\xed\xa0\x80"  # U+D800 encoded as if it were a character: not UTF-8
_MARK = "\x1a\x1b\x1c"  # 3 bytes, replaced by SURROGATE in the wire bytes
_MAX_DEPTH = 4


@dataclass(frozen=True)
class StringField:
    method: descriptor.MethodDescriptor
    path: tuple[str, ...]

    @property
    def rpc(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    def __repr__(self) -> str:  # readable hypothesis reports
        return f"{self.method.containing_service.name}.{self.method.name}:{self.dotted}"


def services(files: Sequence[descriptor.FileDescriptor] = FILES) -> list[descriptor.ServiceDescriptor]:
    return [service for file in files for service in file.services_by_name.values()]


def _paths(message: descriptor.Descriptor, depth: int = 0) -> Iterator[tuple[str, ...]]:
    for field in message.fields:
        child = field.message_type
        if field.type == descriptor.FieldDescriptor.TYPE_STRING:
            yield (field.name,)
        elif (child is not None and depth < _MAX_DEPTH and not child.GetOptions().map_entry
              and not child.full_name.startswith("google.")):
            for rest in _paths(child, depth + 1):
                yield (field.name, *rest)


def string_fields(files: Sequence[descriptor.FileDescriptor] = FILES) -> list[StringField]:
    return [StringField(method, path) for service in services(files) for method in service.methods
            for path in _paths(method.input_type)]


def request_bytes(field: StringField, text: str, *, surrogate: bool = False) -> bytes:
    """The request of `field.method` with `field.path` set to `text` (or to SURROGATE bytes)."""
    request: Message = message_factory.GetMessageClass(field.method.input_type)()
    target: Any = request
    for name in field.path[:-1]:
        child_field = target.DESCRIPTOR.fields_by_name[name]
        target = getattr(target, name).add() if child_field.is_repeated else getattr(target, name)
    leaf = target.DESCRIPTOR.fields_by_name[field.path[-1]]
    value = _MARK if surrogate else text
    if leaf.is_repeated:
        getattr(target, field.path[-1]).append(value)
    else:
        setattr(target, field.path[-1], value)
    data = request.SerializeToString()
    return data.replace(_MARK.encode(), SURROGATE, 1) if surrogate else data


def call_raw(channel: grpc.Channel, field: StringField, data: bytes,
             metadata: Sequence[tuple[str, str]]) -> grpc.RpcError | None:
    """Send `data` as `field.method`'s request (a blocking channel: hypothesis runs sync tests, in a
    worker thread while the servers' loop serves); the error the call ends with, or None."""
    method = field.method
    try:
        if method.client_streaming:
            channel.stream_unary(field.rpc, None, None)(iter([data]), metadata=tuple(metadata), timeout=10)
        elif method.server_streaming:
            # The first message or the end: a stream that starts is not what is tested.
            next(iter(channel.unary_stream(field.rpc, None, None)(data, metadata=tuple(metadata), timeout=10)), None)
        else:
            channel.unary_unary(field.rpc, None, None)(data, metadata=tuple(metadata), timeout=10)
    except grpc.RpcError as error:
        return error
    return None


def violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The BadRequest field violations of a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]  # a sync RpcError is a Call at runtime
    found = []
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found += [(v.field, v.description) for v in bad.field_violations]
    return found


__all__ = ["FILES", "SURROGATE", "StringField", "call_raw", "request_bytes", "services", "string_fields",
           "violations"]
