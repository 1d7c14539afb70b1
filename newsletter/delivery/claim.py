"""The delivery queue in PostgreSQL: claim, check at send time, record outcomes.

Outcomes are collected in memory as the SMTP connections report them and
written in groups (:meth:`Outcomes.flush`): one UPDATE marks up to ~100
messages sent. A crash can therefore resend at most the messages sent since
the last flush; the worker sizes the groups so that stays within a batch.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

from newsletter.audience import bounces
from newsletter.core.db import Database, Record
from newsletter.delivery.smtp import PermanentError, SendError, ServerTrouble

log = logging.getLogger("newsletter.claim")

FLUSH_EVERY = 100  # messages
FLUSH_SECONDS = 0.25
DEFER_SECONDS = 30.0  # server trouble: first look again after this, attempt not counted
DEFER_CAP_SECONDS = 1800.0  # ... doubling per deferral up to this
# Server trouble for this long after the issue started: the delivery is failed
# (not bounced) so the issue can finish instead of 'sending' forever.
DELIVERY_MAX_AGE_SECONDS = 3 * 24 * 3600.0
# Only replies about a recipient are bounces; a 5xx anywhere else is ours.
BOUNCE_STAGES = frozenset({"rcpt", "data"})


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    subscriber_id: int | None
    attempts: int


async def claim(
    db: Database, worker_id: str, issue_id: int, limit: int, lease_seconds: float
) -> list[Claimed]:
    rows = await db.fetch("claim_deliveries", worker_id, issue_id, limit, lease_seconds)
    claimed = [Claimed(r["id"], r["subscriber_id"], r["attempts"]) for r in rows]
    claimed.sort(key=lambda c: c.id)
    return claimed


@dataclass
class Gate:
    """The answer of the send-time check for one chunk."""

    issue_sending: bool
    send: list[Record]
    skip: dict[int, str]  # delivery id → why


async def check(db: Database, issue_id: int, ids: list[int], worker_id: str) -> Gate:
    rows = await db.fetch("delivery_gate", issue_id, ids, worker_id)
    if not rows or rows[0]["issue_status"] != "sending":
        return Gate(False, [], {})
    send: list[Record] = []
    skip: dict[int, str] = {}
    for row in rows:
        if row["id"] is None:
            continue  # no longer ours (lease lost) or already final: leave it alone
        if row["subscriber_id"] is None or row["subscriber_status"] is None:
            skip[row["id"]] = "subscriber erased"
        elif row["subscriber_status"] != "active":
            skip[row["id"]] = f"subscriber {row['subscriber_status']}"
        else:
            send.append(row)
    return Gate(True, send, skip)


class BackoffFn:
    """Exponential backoff with jitter: base, 2×base, 4×base … capped."""

    def __init__(self, base: float, cap: float = 3600.0) -> None:
        self.base = base
        self.cap = cap

    def __call__(self, attempt: int) -> float:
        ceiling = min(self.base * 2.0 ** max(attempt - 1, 0), self.cap)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass
class Outcomes:
    """What happened to claimed deliveries, not yet written down."""

    max_attempts: int
    backoff: BackoffFn
    defer_seconds: float = DEFER_SECONDS
    defer_cap: float = DEFER_CAP_SECONDS
    max_age: float = DELIVERY_MAX_AGE_SECONDS
    sent: list[int] = field(default_factory=list)
    errors: list[tuple[int, int | None, int, SendError]] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    released: list[int] = field(default_factory=list)
    last_flush: float = field(default_factory=time.monotonic)

    def __len__(self) -> int:
        return len(self.sent) + len(self.errors) + len(self.skipped) + len(self.released)

    def due(self, every: int = FLUSH_EVERY) -> bool:
        return len(self) >= every or (
            len(self) > 0 and time.monotonic() - self.last_flush >= FLUSH_SECONDS
        )

    async def flush(self, db: Database) -> None:
        sent, self.sent = self.sent, []
        errors, self.errors = self.errors, []
        skipped, self.skipped = self.skipped, {}
        released, self.released = self.released, []
        self.last_flush = time.monotonic()
        if sent:
            await db.execute("deliveries_sent", sent)
        if released:
            await db.execute("deliveries_release", released)
        by_reason: dict[str, list[int]] = {}
        for delivery_id, reason in skipped.items():
            by_reason.setdefault(reason, []).append(delivery_id)
        for reason, ids in by_reason.items():
            await db.execute("deliveries_skipped", ids, reason)
        for delivery_id, subscriber_id, attempts, exc in errors:
            await self._record_error(db, delivery_id, subscriber_id, attempts, exc)

    async def _record_error(
        self,
        db: Database,
        delivery_id: int,
        subscriber_id: int | None,
        attempts: int,
        exc: SendError,
    ) -> None:
        if isinstance(exc, ServerTrouble) or (
            isinstance(exc, PermanentError) and exc.stage not in BOUNCE_STAGES
        ):
            status = await db.fetchval(
                "delivery_defer",
                delivery_id,
                self.defer_seconds,
                str(exc),
                exc.code,
                self.defer_cap,
                self.max_age,
            )
            if status == "failed":
                log.warning("delivery %s failed: server trouble past its maximum age", delivery_id)
        elif isinstance(exc, PermanentError):
            # Failed for good, and the address meets the bounce policy — together.
            async with db.transaction() as conn:
                await conn.execute(
                    db.queries.delivery_failed, delivery_id, str(exc), exc.code, "refused"
                )
                action = await bounces.apply(
                    conn,
                    subscriber_id=subscriber_id,
                    delivery_id=delivery_id,
                    kind=bounces.classify(exc.code, exc.detail),
                    source="smtp",
                    code=exc.code,
                    detail=str(exc),
                )
            log.info("delivery %s failed (%s): %s", delivery_id, action, exc)
        elif attempts >= self.max_attempts:
            # A refusal of our MAIL FROM is the relay's quarrel with us, not the recipient's.
            reason = "sender_refused" if exc.stage == "mail" else "retries_exhausted"
            await db.execute("delivery_failed", delivery_id, str(exc), exc.code, reason)
            log.warning("delivery %s gave up after %s attempts: %s", delivery_id, attempts, exc)
        else:
            delay = self.backoff(attempts)
            await db.execute("delivery_retry", delivery_id, delay, str(exc), exc.code)
