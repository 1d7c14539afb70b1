"""The delivery queue in PostgreSQL: claim, check at send time, record outcomes.

A failed send is written down the way the outbox's is (:mod:`outcomes`);
what is the deliveries' own is the bounce policy, applied with the failure.

Outcomes are collected in memory as the SMTP connections report them and
written in groups (:meth:`Outcomes.flush`): one UPDATE marks up to ~100
messages sent. A crash can therefore resend at most the messages sent since
the last flush; the worker sizes the groups so that stays within a batch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from newsletter.audience import bounces
from newsletter.core.db import Database, Record
from newsletter.delivery import failures, outcomes
from newsletter.delivery.failures import Decision, Verdict
from newsletter.delivery.outcomes import Failure

log = logging.getLogger("newsletter.claim")

FLUSH_EVERY = 100  # messages
FLUSH_SECONDS = 0.25
RETRY_SECONDS = 30.0  # a 4xx: 30 s, 60 s, 2 min … (jittered), the attempt counted
RETRY_CAP_SECONDS = 3600.0
DEFER_SECONDS = 30.0  # server trouble: first look again after this, attempt not counted
DEFER_CAP_SECONDS = 1800.0  # ... doubling per deferral up to this
# Server trouble for this long after the issue started: the delivery is failed
# (not bounced) so the issue can finish instead of 'sending' forever.
DELIVERY_MAX_AGE_SECONDS = 3 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    subscriber_id: int | None
    attempts: int
    deferrals: int
    pushbacks: int  # in a row, see failures.Waits


async def claim(
    db: Database, worker_id: str, issue_id: int, limit: int, lease_seconds: float
) -> list[Claimed]:
    rows = await db.fetch("claim_deliveries", worker_id, issue_id, limit, lease_seconds)
    claimed = [
        Claimed(r["id"], r["subscriber_id"], r["attempts"], r["deferrals"], r["pushbacks"])
        for r in rows
    ]
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


def delivery_waits(
    retry_base: float = RETRY_SECONDS,
    defer_base: float = DEFER_SECONDS,
    max_age: float = DELIVERY_MAX_AGE_SECONDS,
) -> failures.Waits:
    return failures.Waits(
        retry=failures.Backoff(retry_base, RETRY_CAP_SECONDS),
        defer=failures.Backoff(defer_base, DEFER_CAP_SECONDS),
        max_age=max_age,
        push_back=failures.PUSH_BACK_PAUSES,
    )


async def _fail_for_good(db: Database, failure: Failure, decision: Decision) -> None:
    """A delivery failed for good; a bounce meets the bounce policy, together."""
    delivery_id, exc = failure.row_id, failure.error
    if decision.verdict is Verdict.BOUNCE:
        async with db.transaction() as conn:
            await conn.execute(
                db.queries.delivery_failed,
                delivery_id,
                str(exc),
                exc.code,
                decision.reason,
                exc.reply.enhanced_code,
            )
            action = await bounces.apply(
                conn,
                subscriber_id=failure.subscriber_id,
                delivery_id=delivery_id,
                kind=exc.reply.bounce,
                source="smtp",
                code=exc.code,
                detail=str(exc),
            )
        log.info("delivery %s failed (%s): %s", delivery_id, action, exc)
    else:
        await db.execute(
            "delivery_failed",
            delivery_id,
            str(exc),
            exc.code,
            decision.reason,
            exc.reply.enhanced_code,
        )
        log.warning("delivery %s gave up after %s attempts: %s", delivery_id, failure.attempts, exc)


DELIVERIES = outcomes.Queue("delivery", "delivery_retry", "delivery_defer", _fail_for_good)


@dataclass
class Outcomes:
    """What happened to claimed deliveries, not yet written down."""

    max_attempts: int
    waits: failures.Waits = field(default_factory=delivery_waits)
    # Who claimed the rows: an outcome that puts a row back in the queue is
    # written only while this worker still holds it (deliveries.sql).
    worker_id: str = field(kw_only=True)
    sent: list[int] = field(default_factory=list)
    errors: list[Failure] = field(default_factory=list)
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
            await db.execute("deliveries_release", released, self.worker_id)
        by_reason: dict[str, list[int]] = {}
        for delivery_id, reason in skipped.items():
            by_reason.setdefault(reason, []).append(delivery_id)
        for reason, ids in by_reason.items():
            await db.execute("deliveries_skipped", ids, reason)
        for failure in errors:
            await outcomes.record_failure(
                db,
                DELIVERIES,
                failure,
                max_attempts=self.max_attempts,
                waits=self.waits,
                worker_id=self.worker_id,
            )
