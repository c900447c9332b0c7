"""Operator commands of the realtime service: `conduit realtime history` shows how far back watchers can resume.

A resume token older than the oldest entry still in a stream is answered OUT_OF_RANGE; this command
prints, for each stream realtime follows, its length and its oldest and newest entry ids.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO

import redis.asyncio as aioredis

from conduit_server.runtime.settings import Settings


def register(commands: Any) -> None:
    realtime = commands.add_parser("realtime", help="realtime operations").add_subparsers(
        dest="realtime_command", required=True)
    history = realtime.add_parser("history", help="length and oldest/newest event id of each followed stream")
    history.set_defaults(handler=_history)


def _history(_: argparse.Namespace, settings: Settings) -> None:
    if not settings.redis_url:
        sys.exit("conduit realtime history needs CONDUIT_REDIS_URL (the Redis the mesh runs on)")
    asyncio.run(print_history(aioredis.Redis.from_url(settings.redis_url), settings, sys.stdout))


async def print_history(redis: aioredis.Redis, settings: Settings, out: TextIO) -> None:
    """One line per stream: `<stream> <length> <oldest id> <newest id>` (`-` when empty)."""
    try:
        for stream in (settings.realtime.articles_stream, settings.realtime.users_stream):
            if not stream:
                continue
            length = await redis.xlen(stream)
            oldest = await redis.xrange(stream, count=1)
            newest = await redis.xrevrange(stream, count=1)
            print(f"{stream} {length} {_first_id(oldest)} {_first_id(newest)}", file=out)
    finally:
        await redis.aclose()


def _first_id(entries: Any) -> str:
    if not entries:
        return "-"
    entry_id = entries[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
