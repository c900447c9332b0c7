r"""Watch an article live (blocking client), then resume the watch from a saved token.

    CONDUIT_TARGET=localhost:8443 CONDUIT_CA_FILE=.state/tls/ca.pem \
        python clients/python/examples/watch_article.py

A watch reconnects by itself after a dropped connection or a service restart,
continuing after the last event it received. Exits 0 on success.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid

from conduit.client import Conduit, ConduitError, PasswordCredentials, Watch
from conduit.realtime.v1 import realtime_pb2

GIVE_UP_SECONDS = 30.0


def next_event(watch: Watch) -> realtime_pb2.Event | None:
    """The next event that is not a heartbeat; None when the watch was closed."""
    for event in watch:
        if event.type != realtime_pb2.EVENT_TYPE_HEARTBEAT:
            return event
    return None


def close_later(watch: Watch) -> threading.Timer:
    """Never hang: close the watch after GIVE_UP_SECONDS, which ends any loop over it."""
    timer = threading.Timer(GIVE_UP_SECONDS, watch.close)
    timer.daemon = True
    timer.start()
    return timer


def main() -> int:
    target = os.environ.get("CONDUIT_TARGET", "localhost:8443")
    tls = os.environ.get("CONDUIT_TLS", "1").lower() not in ("0", "false", "no")
    ca_file = os.environ.get("CONDUIT_CA_FILE") if tls else None
    suffix = uuid.uuid4().hex[:10]
    email, password = f"watch-{suffix}@example.com", f"pw-{suffix}-secret"

    with Conduit.connect(target, tls=tls, ca_file=ca_file) as anonymous:
        anonymous.users.register(username=f"watch_{suffix}", email=email, password=password)
    with Conduit.connect(target, tls=tls, ca_file=ca_file,
                         credentials=PasswordCredentials(email, password)) as conduit:
        slug = conduit.articles.create(title=f"Watched {suffix}", description="Live", body="Watch me.").slug

        with conduit.articles.watch(slug, include_heartbeats=True) as watch:
            close_later(watch)
            next(watch)  # a watch opens with a heartbeat: from here on, nothing is missed
            conduit.comments.add(slug, body="Hello, watchers")
            conduit.articles.favorite(slug)
            comment, favorites = next_event(watch), next_event(watch)
            token = watch.resume_token  # store it to continue later
        if comment is None or favorites is None:
            print("timed out waiting for events", file=sys.stderr)
            return 1
        print(f"live: {realtime_pb2.EventType.Name(comment.type)} {comment.comment.body!r}, "
              f"{realtime_pb2.EventType.Name(favorites.type)} -> {favorites.favorites.favorites_count}")

        conduit.comments.add(slug, body="While nobody was watching")
        with conduit.articles.watch(slug, resume_token=token) as resumed:
            close_later(resumed)
            missed = next_event(resumed)
        if missed is None or missed.comment.body != "While nobody was watching":
            print(f"resume did not deliver the missed comment: {missed}", file=sys.stderr)
            return 1
        print(f"resumed after {token}: {realtime_pb2.EventType.Name(missed.type)} {missed.comment.body!r}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConduitError as error:
        print(f"failed: {error}", file=sys.stderr)
        sys.exit(1)
