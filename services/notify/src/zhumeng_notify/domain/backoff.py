"""When to try a failed send again: exponential backoff with jitter. Pure."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt n+1 follows failed attempt n after base * 2**(n-1) seconds (at most `cap_s`),
    shortened by up to `jitter` of itself so that many failures do not retry in step."""

    max_attempts: int = 5
    base_s: float = 2.0
    cap_s: float = 600.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_s <= 0 or self.cap_s < self.base_s:
            raise ValueError("max_attempts >= 1 and 0 < base_s <= cap_s are required")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")

    def delay_s(self, failed_attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after `failed_attempt` (1-based) before the next one."""
        full = min(self.cap_s, self.base_s * 2.0 ** max(0, failed_attempt - 1))
        return float(full * (1 - self.jitter * rand()))

    def exhausted(self, attempt: int, last_attempt: int | None = None) -> bool:
        """Was `attempt` the last one allowed? (`last_attempt`: a replay's own budget.)"""
        return attempt >= (last_attempt if last_attempt is not None else self.max_attempts)
