"""The short form of `make chaos` (bench/chaos.py) inside `make test`: a mesh with two replicas of each
service under a steady load; one articles replica is drained (SIGTERM), then the process holding the
outbox relay is killed between publishing a batch and marking it published."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.chaos import run


@pytest.mark.e2e
def test_drain_and_a_relay_crash_under_load_fail_no_idempotent_call_and_lose_no_event(tmp_path: Path) -> None:
    rows = asyncio.run(run([2, 7], state=tmp_path / "state", rate=30.0, before_seconds=2.0, after_seconds=2.0,
                           accounts=3))
    drain, relay = rows
    assert drain.sent > 0
    assert relay.sent > 0
    assert drain.idempotent_failed == 0, drain.failed
    for row in rows:
        assert row.written > 0
        assert row.lost == 0, row.note
        assert row.consistency == []
        assert row.internal_errors == 0, row.failed
    # The crash re-published what it had not marked; consumers dropped the duplicates.
    assert "killed between publish and mark" in relay.note
