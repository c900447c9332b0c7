r"""Watch an article live (asyncio client), then resume the watch from a saved token.

    CONDUIT_TARGET=localhost:8443 CONDUIT_CA_FILE=.state/tls/ca.pem \
        python clients/python/examples/watch_article_async.py

Exits 0 on success.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from conduit.client import AsyncConduit, AsyncWatch, ConduitError, PasswordCredentials
from conduit.realtime.v1 import realtime_pb2

GIVE_UP_SECONDS = 30.0


async def next_event(watch: AsyncWatch) -> realtime_pb2.Event:
    """The next event that is not a heartbeat."""
    async for event in watch:
        if event.type != realtime_pb2.EVENT_TYPE_HEARTBEAT:
            return event
    raise RuntimeError("the watch ended")


async def main() -> int:
    target = os.environ.get("CONDUIT_TARGET", "localhost:8443")
    tls = os.environ.get("CONDUIT_TLS", "1").lower() not in ("0", "false", "no")
    ca_file = os.environ.get("CONDUIT_CA_FILE") if tls else None
    suffix = uuid.uuid4().hex[:10]
    email, password = f"watch-{suffix}@example.com", f"pw-{suffix}-secret"

    async with await AsyncConduit.connect(target, tls=tls, ca_file=ca_file) as anonymous:
        await anonymous.users.register(username=f"watch_{suffix}", email=email, password=password)
        conduit = await anonymous.with_auth(credentials=PasswordCredentials(email, password))
        slug = (await conduit.articles.create(title=f"Watched {suffix}", description="Live",
                                              body="Watch me.")).slug

        async with asyncio.timeout(GIVE_UP_SECONDS), \
                conduit.articles.watch(slug, include_heartbeats=True) as watch:
            await anext(watch)  # a watch opens with a heartbeat: from here on, nothing is missed
            await conduit.comments.add(slug, body="Hello, watchers")
            await conduit.articles.favorite(slug)
            comment, favorites = await next_event(watch), await next_event(watch)
            token = watch.resume_token  # store it to continue later
        print(f"live: {realtime_pb2.EventType.Name(comment.type)} {comment.comment.body!r}, "
              f"{realtime_pb2.EventType.Name(favorites.type)} -> {favorites.favorites.favorites_count}")

        await conduit.comments.add(slug, body="While nobody was watching")
        async with asyncio.timeout(GIVE_UP_SECONDS), \
                conduit.articles.watch(slug, resume_token=token) as resumed:
            missed = await next_event(resumed)
        if missed.comment.body != "While nobody was watching":
            print(f"resume did not deliver the missed comment: {missed}", file=sys.stderr)
            return 1
        print(f"resumed after {token}: {realtime_pb2.EventType.Name(missed.type)} {missed.comment.body!r}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except (ConduitError, TimeoutError) as error:
        print(f"failed: {error!r}", file=sys.stderr)
        sys.exit(1)
