"""Knobs of the realtime service, passed in (never read from the environment here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RealtimeConfig:
    """Defaults suit production; tests shorten the intervals and shrink the queues."""

    # Streams read by the one reader of the process (outbox.stream_name(...)); "" = no users stream.
    articles_stream: str = "conduit:events:articles"
    users_stream: str = "conduit:events:users"
    # An idle stream gets a heartbeat this often.
    heartbeat_seconds: float = 15.0
    # Events queued for one stream before it counts as too slow and is ended (RESOURCE_EXHAUSTED).
    # A queued event costs ~100 bytes per stream (the serialized message is shared by all streams);
    # at least 4 reads' worth, so that one burst read at once does not cut off healthy streams.
    max_queued_per_watcher: int = 1_000
    # Open streams per process; more are refused with RESOURCE_EXHAUSTED (memory stays bounded).
    max_watchers: int = 20_000
    # Entries per XREAD of the reader, and per XRANGE page of a resume.
    read_count: int = 200
    # How long one XREAD waits for new entries (they wake it at once). Keep it well below the Redis
    # client's socket timeout (redis-py 8 defaults to 5 s), or an idle wait reads as a timeout.
    read_block_ms: int = 2_000
    # Event ids remembered to drop the relay's re-publications (it publishes at least once).
    dedupe_window: int = 4_096
    # Reader retries after a Redis failure: first wait, doubling up to the cap.
    retry_initial_seconds: float = 0.1
    retry_max_seconds: float = 5.0
    # How long a new stream waits for the reader's first contact with Redis before UNAVAILABLE.
    ready_timeout_seconds: float = 5.0
    # Author profiles cached in-process (evicted at once by user_updated events).
    profile_ttl_seconds: float = 60.0
    profile_cache_size: int = 10_000
    # Followee sets are reloaded this often behind the follow events (0 = never).
    follow_refresh_seconds: float = 300.0
    # The hub logs its counters this often (0 = never).
    metrics_log_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.max_queued_per_watcher < 4 * self.read_count:
            raise ValueError("max_queued_per_watcher must be at least 4 x read_count: a read is fanned out "
                             "at once, and a burst must not cut off streams that keep up")
        if self.heartbeat_seconds <= 0 or self.read_count < 1 or self.dedupe_window < 1:
            raise ValueError("heartbeat_seconds, read_count and dedupe_window must be positive")
