"""The one global send rate, shared by every worker through PostgreSQL, and
the rate the relay taught us.

A token bucket lives in a row of ``rate_buckets``; ``take`` refills it by the
time elapsed and takes what it may in one atomic UPDATE (see the
``take_rate_tokens`` query). Any number of workers on any number of hosts
therefore share one limit with no coordinator.

The bucket holds at most ``capacity`` tokens, so no one-second window sees
more than ``rate + capacity`` messages. Capacity is 5 % of a second's worth
(at least 1): ~2 extra at 50/s, while at high rates workers take tokens in
chunks of up to that size and one query covers many messages.

``RATE_PER_SECOND`` is a ceiling, not a target. A relay that pushes back
(421, 4.7.x, "too much mail", greylisting: :class:`~.smtp.PushBack`) lowers
the one global rate for every worker at once, and it climbs back while the
relay accepts -- additive increase, multiplicative decrease, as TCP does:

- decrease: the rate halves (never below :data:`FLOOR_RATE`), once per
  episode: a report within :data:`HOLD_SECONDS` of the last decrease, from
  whichever worker, changes nothing -- the mail it is about was sent at the
  old rate;
- increase: while mail is accepted and no push-back is reported, the rate
  grows by :data:`INCREASE_FRACTION` of the ceiling per second of success,
  computed in SQL from the time elapsed since the last change (so ten
  workers raise it no faster than one), until it reaches the ceiling and
  nothing is learned any more.

The learned rate, the relay's words and the time of the last decrease sit
in the same row; workers report with their next take (accepted messages are
counted, not sent one query each), so AIMD costs no query of its own and a
relay that never pushes back is sent to exactly as fast as before.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from newsletter.core import replies
from newsletter.core.db import Database
from newsletter.ops import metrics

BUCKET = "smtp"
BURST_FRACTION = 0.05
MAX_WAIT = 2.0  # re-ask at least this often, so a stop request is noticed
FLOOR_RATE = 1.0  # msgs/s: push-back never takes the rate below this
HOLD_SECONDS = 1.0  # one decrease per episode: later reports within this are the same one
INCREASE_FRACTION = 0.05  # of the ceiling, per second of accepted mail
MIN_INCREASE = 0.5  # msgs/s per second, for small ceilings


@dataclass
class RateLimiter:
    database: Database
    per_second: float
    per_hour: int | None = None
    bucket: str = BUCKET
    floor: float = FLOOR_RATE
    hold_seconds: float = HOLD_SECONDS
    # What the last take learned (for /metrics and logs); the ceiling until told otherwise.
    rate: float = field(default=0.0)
    reason: str | None = None
    _accepted: int = 0
    _pushed_back: str | None = None

    def __post_init__(self) -> None:
        self.floor = min(self.floor, self.per_second)
        self.rate = self.per_second

    @property
    def capacity(self) -> float:
        """The largest burst at the configured ceiling (the learned rate's is smaller)."""
        return max(1.0, self.per_second * BURST_FRACTION)

    @property
    def increase_per_second(self) -> float:
        return max(MIN_INCREASE, self.per_second * INCREASE_FRACTION)

    def accepted(self, count: int = 1) -> None:
        """The relay took ``count`` messages; told to PostgreSQL with the next take."""
        self._accepted += count

    def pushed_back(self, reason: str) -> None:
        """The relay asked us to slow down; lowers the global rate with the next take.
        ``reason`` is stored and shown to ops: masked (a reply may quote an address)."""
        self._pushed_back = replies.mask(reason)[:300]

    async def try_take(self, wanted: int) -> tuple[int, float]:
        """Take up to ``wanted`` tokens now: (granted, seconds to wait if none)."""
        accepted, self._accepted = self._accepted, 0
        pushed_back, self._pushed_back = self._pushed_back, None
        try:
            row = await self.database.fetchrow(
                "take_rate_tokens",
                self.bucket,
                self.per_second,
                BURST_FRACTION,
                wanted,
                self.per_hour,
                accepted,
                pushed_back,
                self.floor,
                self.hold_seconds,
                self.increase_per_second,
            )
        except BaseException:
            self._accepted += accepted  # told next time instead
            self._pushed_back = self._pushed_back or pushed_back
            raise
        if row is None:  # bucket row missing (fresh database without it)
            await self.database.execute("ensure_rate_bucket", self.bucket)
            return 0, 0.01
        self._learned(float(row["rate"]), row["reason"], bool(row["decreased"]))
        granted: int = row["granted"]
        if granted:
            return granted, 0.0
        if self.per_hour is not None and row["used_this_hour"] >= self.per_hour:
            return 0, MAX_WAIT  # hourly cap reached; look again now and then
        missing = 1.0 - float(row["tokens_left"])
        # Jitter spreads workers that all wait for the same next token.
        return 0, max(missing / self.rate, 0.002) * random.uniform(1.0, 1.5)

    def _learned(self, rate: float, reason: str | None, decreased: bool) -> None:
        if decreased:
            metrics.rate_decreased()
        if rate != self.rate or reason != self.reason:
            metrics.effective_rate(rate, self.per_second)
        self.rate, self.reason = rate, reason

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
