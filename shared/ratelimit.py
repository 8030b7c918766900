"""Writes are rate-limited per API key: a token bucket per key, in each service process."""

import time
from uuid import UUID

from shared.problems import Problem


class WriteLimiter:
    """`per_minute` writes a minute on average, bursts up to `burst`; 0 turns it off."""

    def __init__(self, *, per_minute: int, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.buckets: dict[UUID, tuple[float, float]] = {}  # key -> (tokens, when)

    def take(self, key_id: UUID) -> None:
        """Spend one token of the key's bucket, or refuse with 429 and when to retry."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens, then = self.buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1:
            wait = (1 - tokens) / self.rate
            raise Problem(429, "Too many requests",
                          f"This key may write {self.rate * 60:.0f} times a minute; "
                          f"retry in {wait:.1f} s.", headers={"Retry-After": str(int(wait) + 1)})
        self.buckets[key_id] = (tokens - 1, now)
