"""Per-request DataLoaders: every look-up of one kind made while resolving one document goes out as one
batch call (the loader collects the keys of a tick, then calls once), and repeats are answered from it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from strawberry.dataloader import DataLoader

from conduit_server.graphql.domain.types import Profile

Value = TypeVar("Value")
# Profiles by username as the caller sees them; unknown usernames are absent.
ProfilesBatch = Callable[[Sequence[str]], Awaitable[Mapping[str, Profile]]]


def keyed_loader(batch: Callable[[Sequence[str]], Awaitable[Mapping[str, Value]]]) -> DataLoader[str, Value | None]:
    """A loader answering each key from one batch call per tick (None: the batch did not know it)."""

    async def load(keys: list[str]) -> list[Value | None]:
        found = await batch(keys)
        return [found.get(key) for key in keys]

    return DataLoader(load_fn=load)


class Loaders:
    """The loaders of one request (never shared: what they remember is what this caller may see)."""

    def __init__(self, profiles: ProfilesBatch) -> None:
        self.profiles = keyed_loader(profiles)


__all__ = ["Loaders", "ProfilesBatch", "keyed_loader"]
