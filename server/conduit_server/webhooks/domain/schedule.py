"""When a failed delivery is tried again: a fixed schedule of waits, each with random jitter."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetrySchedule:
    """`waits[n]` seconds after the (n+1)-th failed attempt; none left means dead-lettered."""

    waits: Sequence[float]
    jitter: float = 0.0
    uniform: Callable[[float, float], float] = field(default=random.uniform, repr=False)

    @property
    def max_attempts(self) -> int:
        return len(self.waits) + 1

    def next_delay(self, attempts_made: int) -> float | None:
        """Seconds until the next attempt after `attempts_made` failed ones; None when that was the last."""
        if attempts_made < 1 or attempts_made > len(self.waits):
            return None
        wait = self.waits[attempts_made - 1]
        return max(0.0, wait * self.uniform(1.0 - self.jitter, 1.0 + self.jitter))
