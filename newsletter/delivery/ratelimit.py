"""The one global send rate, shared by every worker through PostgreSQL.

A token bucket lives in a row of ``rate_buckets``; ``take`` refills it by the
time elapsed and takes what it may in one atomic UPDATE (see the
``take_rate_tokens`` query). Any number of workers on any number of hosts
therefore share one limit with no coordinator.

The bucket holds at most ``capacity`` tokens, so no one-second window sees
more than ``rate + capacity`` messages. Capacity is 5 % of a second's worth
(at least 1): ~2 extra at 50/s, while at high rates workers take tokens in
chunks of up to that size and one query covers many messages.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from newsletter.core.db import Database
from newsletter.ops import metrics

BUCKET = "smtp"
BURST_FRACTION = 0.05
MAX_WAIT = 2.0  # re-ask at least this often, so a stop request is noticed


@dataclass
class RateLimiter:
    database: Database
    per_second: float
    per_hour: int | None = None
    bucket: str = BUCKET

    @property
    def capacity(self) -> float:
        return max(1.0, self.per_second * BURST_FRACTION)

    async def try_take(self, wanted: int) -> tuple[int, float]:
        """Take up to ``wanted`` tokens now: (granted, seconds to wait if none)."""
        row = await self.database.fetchrow(
            "take_rate_tokens", self.bucket, self.per_second, self.capacity, wanted, self.per_hour
        )
        if row is None:  # bucket row missing (fresh database without it)
            await self.database.execute("ensure_rate_bucket", self.bucket)
            return 0, 0.01
        granted: int = row["granted"]
        if granted:
            return granted, 0.0
        if self.per_hour is not None and row["used_this_hour"] >= self.per_hour:
            return 0, MAX_WAIT  # hourly cap reached; look again now and then
        missing = 1.0 - float(row["tokens_left"])
        # Jitter spreads workers that all wait for the same next token.
        return 0, max(missing / self.per_second, 0.002) * random.uniform(1.0, 1.5)

    async def take(self, wanted: int, stop: asyncio.Event | None = None) -> int:
        """Wait until at least one token is granted; 0 only if ``stop`` was set."""
        wanted = max(1, min(wanted, int(self.capacity)))
        while True:
            granted, wait = await self.try_take(wanted)
            if granted:
                return granted
            if stop is not None and stop.is_set():
                return 0
            metrics.rate_limit_waited(min(wait, MAX_WAIT))
            await asyncio.sleep(min(wait, MAX_WAIT))
