"""The soak's judgement (bench/soak.check_growth): flat figures pass; a leak, a growing fd count or an
unbounded outbox fail. And the same check, on a short real soak, catches a service built to leak."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.soak import MIB, Sample, Tolerance, check_growth, report, soak
from conduit_server.process import LEAK_BYTES_PER_SECOND, LEAK_SERVICE


def _samples(rss_mib: list[float], *, fds: int = 40, rows: int = 100) -> list[Sample]:
    return [Sample(float(n), {"articles": int(mib * MIB)}, {"articles": fds}, 12, 4 * MIB, rows, rows)
            for n, mib in enumerate(rss_mib)]


def test_noise_around_a_flat_line_passes() -> None:
    assert check_growth(_samples([150, 158, 149, 153, 151, 157, 150, 152, 154]), Tolerance(), bound_rows=1000) == []


def test_steady_growth_beyond_ten_percent_is_a_leak() -> None:
    problems = check_growth(_samples([150, 155, 160, 165, 170, 175, 180, 185, 190]), Tolerance(), bound_rows=1000)
    assert problems == ["RSS of articles grew 155 -> 185 MiB"]


def test_an_unbounded_outbox_and_growing_fds_fail() -> None:
    samples = _samples([150] * 6, rows=10_000)
    for number, later in enumerate(samples[3:]):
        later.fds["articles"] = 40 + 20 * (number + 1)
    problems = check_growth(samples, Tolerance(), bound_rows=1000)
    assert "open fds of articles grew 40 -> 90" in problems
    assert "outbox rows not bounded: 10000 > 2100" in problems


@pytest.mark.e2e
def test_a_short_soak_catches_a_service_that_leaks(tmp_path: Path) -> None:
    leak = {LEAK_BYTES_PER_SECOND: str(4 * MIB), LEAK_SERVICE: "search"}
    result = asyncio.run(soak(tmp_path / "state", seconds=30, rate=20, extra_env=leak, sample_every=2))
    print(report(result))
    assert any(problem.startswith("RSS of search grew") for problem in result.problems), result.problems
    # Only the leaking process is named for its memory.
    assert not any(problem.startswith("RSS of") and "search" not in problem for problem in result.problems)
