"""Text the mesh can store: no string field of any request may carry U+0000 or invalid UTF-8.

PostgreSQL refuses U+0000 in `text` (and Redis keys built from it would surprise everyone);
an unpaired surrogate cannot be UTF-8 at all, so on the wire it arrives as bytes that are not
UTF-8 and the protobuf runtime refuses to parse the message. Both used to end as 500 internal
error. The interceptor chain checks every request once, before any handler, with these two
walks (docs/decisions/0011-accept-what-clients-send.md):

- `unstorable_fields`: the paths of string fields (at any depth: nested, repeated and map
  fields) of a parsed message that contain U+0000;
- `undecodable_field`: for bytes that did not parse, the path of the first string field whose
  bytes are not UTF-8, read from the wire format with the message's descriptor.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf import descriptor
from google.protobuf.message import Message

INVALID_CHARACTER = "contains a character that is not allowed"
_STRING = descriptor.FieldDescriptor.TYPE_STRING
_MESSAGE = descriptor.FieldDescriptor.TYPE_MESSAGE


def unstorable_fields(message: Message, prefix: str = "") -> Iterator[str]:
    """The dotted paths of the string fields of `message` that contain U+0000."""
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        child = field.message_type
        if child is not None and child.GetOptions().map_entry:
            key_field, value_field = child.fields_by_name["key"], child.fields_by_name["value"]
            for key, item in value.items():
                if key_field.type == _STRING and "\x00" in key:
                    yield f"{path}.key"
                if value_field.type == _STRING and "\x00" in item:
                    yield f"{path}.value"
                elif value_field.type == _MESSAGE:
                    yield from unstorable_fields(item, f"{path}.")
            continue
        items = value if field.is_repeated else (value,)
        if field.type == _STRING:
            if any("\x00" in item for item in items):
                yield path
        elif field.type == _MESSAGE:
            for item in items:
                yield from unstorable_fields(item, f"{path}.")


class Undecodable:
    """The bytes of a request that did not parse (handed to the chain instead of an exception)."""

    def __init__(self, message: descriptor.Descriptor, data: bytes) -> None:
        self.message = message
        self.data = data

    def field(self) -> str | None:
        return undecodable_field(self.message, self.data)


def undecodable_field(message: descriptor.Descriptor, data: bytes, prefix: str = "") -> str | None:
    """The dotted path of the first string field of `data` (wire format of `message`) whose
    bytes are not UTF-8; None when there is none or the bytes are not a message at all."""
    position = 0
    try:
        while position < len(data):
            key, position = _varint(data, position)
            number, wire_type = key >> 3, key & 7
            if wire_type == 0:
                _, position = _varint(data, position)
            elif wire_type == 1:
                position += 8
            elif wire_type == 5:
                position += 4
            elif wire_type == 2:
                length, position = _varint(data, position)
                chunk, position = data[position:position + length], position + length
                found = _undecodable_in(message.fields_by_number.get(number), chunk, prefix)
                if found is not None:
                    return found
            else:
                return None
    except IndexError:
        return None
    return None


def _undecodable_in(field: descriptor.FieldDescriptor | None, chunk: bytes, prefix: str) -> str | None:
    if field is None:
        return None
    if field.type == _STRING:
        try:
            chunk.decode("utf-8")  # strict: surrogates (ED A0 80 …) are refused too
        except UnicodeDecodeError:
            return prefix + field.name
        return None
    if field.type == _MESSAGE and field.message_type is not None:
        return undecodable_field(field.message_type, chunk, f"{prefix}{field.name}.")
    return None


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise IndexError("varint too long")


__all__ = ["INVALID_CHARACTER", "Undecodable", "undecodable_field", "unstorable_fields"]
