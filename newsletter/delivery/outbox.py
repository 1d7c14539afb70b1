"""The outbox queue: transactional mail (confirmations, notices) claimed, sent,
recorded.

A worker sends it before any issue (``Worker.run_once``) within the one
global rate limit. Each claimed row is rendered (``mail/transactional.py``),
handed to the SMTP pool, and once the pool has drained its outcome is
written: sent, given back, or a failure carried out as for deliveries
(:mod:`outcomes`). A mail that cannot be rendered fails at once: trying
again would not help.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from newsletter.core.db import Database, Record
from newsletter.core.settings import Settings
from newsletter.delivery import failures, outcomes
from newsletter.delivery.failures import Decision
from newsletter.delivery.message import dot_stuff
from newsletter.delivery.outcomes import Failure
from newsletter.delivery.pool import Job, SmtpPool
from newsletter.delivery.ratelimit import RateLimiter
from newsletter.delivery.smtp import Reply, SendError
from newsletter.mail.transactional import MailContext, UnknownMailKind, outbox_mail

log = logging.getLogger("newsletter.outbox")

# Server trouble: 10 s, 20 s ... at most 5 min apart (someone waits for their
# confirmation link), given up after the link's lifetime.
DEFER_SECONDS = 10.0
DEFER_CAP_SECONDS = 300.0

# What the pool said about one mail; None: given back unsent.
Result = Reply | SendError | None


async def _fail_for_good(db: Database, failure: Failure, _decision: Decision) -> None:
    log.warning("outbox %s failed for good: %s", failure.row_id, failure.error)
    exc = failure.error
    await db.execute("outbox_failed", failure.row_id, str(exc), exc.code, exc.reply.enhanced_code)


OUTBOX = outcomes.Queue("outbox", "outbox_retry", "outbox_defer", _fail_for_good)


def outbox_waits(retry_base: float, retry_cap: float, max_age: float) -> failures.Waits:
    """Not an attempt, however long server trouble lasts: someone waits for this
    mail; given up only once the confirm link would be stale (``max_age``)."""
    return failures.Waits(
        retry=failures.Backoff(retry_base, retry_cap),
        defer=failures.Backoff(DEFER_SECONDS, DEFER_CAP_SECONDS),
        max_age=max_age,
        push_back=failures.PUSH_BACK_PAUSES,
    )


@dataclass
class OutboxQueue:
    """One worker's side of the outbox."""

    database: Database
    settings: Settings
    worker_id: str
    lease_seconds: float
    mail: MailContext
    limiter: RateLimiter
    smtp: SmtpPool
    stop: asyncio.Event
    waits: failures.Waits
    _results: dict[int, Result] = field(default_factory=dict, init=False)

    async def send_batch(self) -> int:
        """Claim a batch, send it, write each outcome; how many were claimed."""
        rows = await self.database.fetch(
            "claim_outbox", self.worker_id, self.settings.batch_size, self.lease_seconds
        )
        if not rows:
            return 0
        self._results = {}
        unsent = [row["id"] for row in rows]
        try:
            await self._hand_over(rows, unsent)
        finally:
            await self.smtp.drain()
            by_id = {row["id"]: row for row in rows}
            for outbox_id, result in self._results.items():
                await self.record(by_id[outbox_id], result)
            if unsent:
                await self.database.execute("outbox_release", unsent, self.worker_id)
        return len(rows)

    async def _hand_over(self, rows: list[Record], unsent: list[int]) -> None:
        """Render each row and give it to the pool; what is left in ``unsent``
        goes back to the queue."""
        tokens = 0  # taken from the global rate limit, not yet used
        for position, row in enumerate(rows):
            if self.stop.is_set():
                break
            if not tokens:
                # The one global limit covers transactional mail too (SPEC);
                # it goes first because it is claimed first, not around the limit.
                tokens = await self.limiter.take(len(rows) - position, self.stop)
                if not tokens:
                    break  # stop requested while waiting
            try:
                mail = outbox_mail(
                    self.mail, row["id"], row["kind"], row["recipient"], _payload(row)
                )
            except (UnknownMailKind, KeyError, ValueError) as exc:
                log.error("outbox %s cannot be rendered: %r", row["id"], exc)
                await self.database.execute(
                    "outbox_failed", row["id"], f"render: {exc!r}", None, None
                )
                unsent.remove(row["id"])
                continue
            data = dot_stuff(mail.data)
            self._results[row["id"]] = None
            unsent.remove(row["id"])
            tokens -= 1
            await self.smtp.submit(
                Job(
                    key=row["id"],
                    sender=mail.sender,
                    recipient=row["recipient"],
                    render=_prebuilt(data),
                    on_sent=self._sent,
                    on_error=self._failed,
                    on_released=self._released,
                )
            )

    def _sent(self, job: Job, reply: Reply) -> None:
        self._results[job.key] = reply

    def _failed(self, job: Job, exc: SendError) -> None:
        self._results[job.key] = exc

    def _released(self, job: Job) -> None:
        self._results[job.key] = None

    async def record(self, row: Record, result: Result) -> None:
        """Write down what the pool said about one claimed row."""
        if isinstance(result, Reply):
            await self.database.execute("outbox_sent", row["id"], result.code, None)
        elif result is None:
            await self.database.execute("outbox_release", [row["id"]], self.worker_id)
        else:
            failure = Failure(
                row["id"],
                row["subscriber_id"],
                row["attempts"],
                row["deferrals"],
                result,
                row["pushbacks"],
            )
            await outcomes.record_failure(
                self.database,
                OUTBOX,
                failure,
                max_attempts=self.settings.max_attempts,
                waits=self.waits,
                worker_id=self.worker_id,
            )


def _payload(row: Record) -> dict[str, Any]:
    """An outbox row's payload plus the subscriber's public id, which the links
    in the mail name (read at send time: no payload needs to carry it)."""
    payload: dict[str, Any] = dict(row["payload"])
    if row["public_id"] is not None:
        payload["public_id"] = row["public_id"]
    return payload


def _prebuilt(data: bytes) -> Callable[[bool], tuple[bytes, bool]]:
    """Transactional mail is 7-bit already (the email package chose QP/base64)."""

    def render(_eight_bit: bool) -> tuple[bytes, bool]:
        return data, False

    return render
