"""Event ids: the Redis Stream entry ids (`<milliseconds>-<sequence>`), which double as resume tokens."""

from __future__ import annotations

import re
from typing import NamedTuple

from conduit_server.runtime.errors import FieldViolation, InvalidArgument

_ENTRY_ID = re.compile(r"(\d{1,20})-(\d{1,20})")
_MAX_PART = 2**64 - 1


class StreamId(NamedTuple):
    """A stream entry id; tuples compare in stream order."""

    ms: int
    seq: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"

    @classmethod
    def parse(cls, raw: str | bytes) -> StreamId:
        """An id as Redis returns it; ValueError when it is not one."""
        text = raw.decode("ascii") if isinstance(raw, bytes) else raw
        match = _ENTRY_ID.fullmatch(text)
        if match is None:
            raise ValueError(f"not a stream entry id: {text!r}")
        ms, seq = int(match[1]), int(match[2])
        if ms > _MAX_PART or seq > _MAX_PART:
            raise ValueError(f"stream entry id out of range: {text!r}")
        return cls(ms, seq)


# Before every entry: the position of a watcher that has seen nothing of an empty stream.
ORIGIN = StreamId(0, 0)


def parse_resume_token(token: str, field: str = "resume_token") -> StreamId | None:
    """The position a client wants to continue after; None for "new events only"."""
    if not token:
        return None
    try:
        position = StreamId.parse(token)
    except ValueError:
        raise InvalidArgument([FieldViolation(field, "is not an event id")]) from None
    if position == ORIGIN:
        raise InvalidArgument([FieldViolation(field, "is not an event id")])
    return position
