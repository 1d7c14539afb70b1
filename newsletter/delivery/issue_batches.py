"""Sending an issue: its claimed deliveries, chunk by chunk, through the pool.

A round takes the oldest sending issue and claims batch after batch of it for
up to KEEP_GOING_SECONDS (the next batch is claimed while the pool still
sends the last one's tail). A batch is sent chunk by chunk: take rate
tokens, check the chunk (issue still sending, subscribers still active),
hand it to the SMTP pool. Pause, cancel, unsubscribe and erase therefore
take effect for every message not yet handed over. A stop request lets the
messages in flight finish and gives the rest of the batch back. Outcomes
are written in groups (``claim.Outcomes``) as the pool reports them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from newsletter.core.db import Database
from newsletter.core.dkim import Signer
from newsletter.core.settings import Settings
from newsletter.core.tokens import Tokens
from newsletter.delivery import claim as queue
from newsletter.delivery.message import IssueMessage, Recipient
from newsletter.delivery.outcomes import Failure
from newsletter.delivery.pool import Job, SmtpPool
from newsletter.delivery.ratelimit import RateLimiter
from newsletter.delivery.smtp import Reply, SendError

log = logging.getLogger("newsletter.worker")

CHUNK = 64  # messages per rate-limit take and send-time check
KEEP_GOING_SECONDS = 1.0  # claim batch after batch of one issue for this long
MESSAGE_MAX_AGE = 600.0  # rebuild an issue's message (fresh Date) after this

# A prepared chunk: its delivery ids and the send-time check's answer (None:
# asked to stop while waiting for tokens).
Prepared = tuple[list[int], queue.Gate | None]


@dataclass
class IssueBatches:
    """One worker's side of the deliveries queue."""

    database: Database
    settings: Settings
    worker_id: str
    lease_seconds: float
    tokens: Tokens
    signer: Signer | None
    limiter: RateLimiter
    smtp: SmtpPool
    stop: asyncio.Event
    outcomes: queue.Outcomes
    current_issue_id: int | None = field(default=None, init=False)
    sent_total: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._messages: dict[int, tuple[float, IssueMessage]] = {}
        self._flushing: asyncio.Task[None] | None = None  # outcomes being written
        # Deliveries handed to the pool, until it reports them: (claim, subscriber id).
        self._handed: dict[int, tuple[queue.Claimed, int | None]] = {}
        self.flush_every = max(1, min(queue.FLUSH_EVERY, self.settings.batch_size // 4))

    async def send_round(self) -> int:
        """Batches of the oldest sending issue with mail due; how many were claimed."""
        for issue_row in await self.database.fetch("sending_issue_ids"):
            issue_id: int = issue_row["id"]
            claimed = await self._claim(issue_id)
            if not claimed:
                await self._finish(issue_id)
                continue
            handled = 0
            started = time.monotonic()
            self.current_issue_id = issue_id
            try:
                while claimed:
                    handled += len(claimed)
                    if not await self._send_batch(issue_id, claimed):
                        break  # paused, cancelled or stopping
                    if self.stop.is_set() or time.monotonic() - started >= KEEP_GOING_SECONDS:
                        break  # transactional mail gets its turn this often
                    # The pool is still sending this batch's tail: claim the next
                    # batch now instead of letting the connections run dry.
                    claimed = await self._claim(issue_id)
            finally:
                self.current_issue_id = None
                await self._settle()
            await self._finish(issue_id)
            return handled
        return 0

    async def _claim(self, issue_id: int) -> list[queue.Claimed]:
        return await queue.claim(
            self.database,
            self.worker_id,
            issue_id,
            self.settings.batch_size,
            self.lease_seconds,
        )

    def _kick_flush(self) -> None:
        """Write outcomes in the background once enough have gathered, one write at a time.

        Sent but not yet written is what a crash would send again. That is at
        most the group gathering plus the group being written: two groups of
        at most a quarter batch (and 100) plus what arrives during one write,
        so a crash resends less than one batch.
        """
        flushing = self._flushing
        if flushing is not None and (
            not flushing.done() or (not flushing.cancelled() and flushing.exception() is not None)
        ):
            return  # one write at a time; a failed one is raised by the batch loop
        if self.outcomes.due(self.flush_every):
            self._flushing = asyncio.create_task(self.outcomes.flush(self.database))

    async def _settle(self) -> None:
        """Every message handed over has an outcome, and every outcome is written."""
        await self.smtp.drain()
        flushing, self._flushing = self._flushing, None
        try:
            if flushing is not None:
                await flushing
        finally:
            await self.outcomes.flush(self.database)

    async def _finish(self, issue_id: int) -> None:
        if await self.database.fetchval("finish_issue", issue_id):
            self._messages.pop(issue_id, None)
            log.info("issue %s sent: every delivery is final", issue_id)

    async def _message_for(self, issue_id: int) -> IssueMessage | None:
        cached = self._messages.get(issue_id)
        if cached and time.monotonic() - cached[0] < MESSAGE_MAX_AGE:
            return cached[1]
        row = await self.database.fetchrow("issue_for_sending", issue_id)
        if row is None or row["status"] != "sending":
            return None
        message = IssueMessage(
            self.settings,
            issue_id=issue_id,
            subject=row["subject"] or "",
            html_body=row["rendered_html"] or "",
            text_body=row["rendered_text"] or "",
            signer=self.signer,
        )
        self._messages[issue_id] = (time.monotonic(), message)
        return message

    # A batch goes out chunk by chunk, in four steps: take rate tokens
    # (_take_tokens), check the chunk (_check_chunk), hand what passed to
    # the pool (_hand_over), record each outcome as the pool reports it
    # (_record_sent / _record_failed / _record_released, written in groups
    # by _kick_flush).

    async def _send_batch(self, issue_id: int, claimed: list[queue.Claimed]) -> bool:
        """Hand a claimed batch to the pool; True if all of it went (none given back).

        Returns once the last message is queued, not sent: the caller settles
        (:meth:`_settle`) before it looks at the issue's state.

        Round trips to PostgreSQL are commits or wait for a busy server, and
        would leave the SMTP connections idle while they run. So when the
        bucket's burst holds two chunks (high rates: taking a chunk's tokens
        early stays within the burst the bucket allows anyway) the next chunk
        is prepared -- tokens taken, send-time check done -- while this one is
        queued; it is still checked before any of it goes to SMTP.
        """
        pending = [c.id for c in claimed]
        message = await self._message_for(issue_id)
        if message is None:
            self.outcomes.released.extend(pending)
            return False
        claims = {c.id: c for c in claimed}
        ahead = self.limiter.capacity >= 2 * CHUNK
        position = 0  # pending[:position] were handed to the pool or skipped
        upcoming: asyncio.Task[Prepared] | None = None
        try:
            while position < len(pending) and not self.stop.is_set():
                if upcoming is None:
                    upcoming = self._prepare(issue_id, pending[position:])
                chunk, gate = await upcoming
                upcoming = None
                if gate is None:  # stop requested while waiting for tokens
                    break
                if not gate.issue_sending:  # paused or cancelled: give it all back
                    log.info("issue %s no longer sending; releasing the batch", issue_id)
                    break
                position += len(chunk)
                if ahead and position < len(pending):
                    upcoming = self._prepare(issue_id, pending[position:])
                await self._hand_over(message, gate, claims)
                await self._raise_failed_write()
        finally:
            if upcoming is not None:  # prepared but not handed over: back to the queue
                upcoming.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await upcoming
            self.outcomes.released.extend(pending[position:])
        return position == len(pending)

    def _prepare(self, issue_id: int, pending: list[int]) -> asyncio.Task[Prepared]:
        """The next chunk of ``pending``, in the background: its tokens, then its check."""

        async def prepare() -> Prepared:
            granted = await self._take_tokens(len(pending))
            if not granted:
                return [], None
            chunk = pending[:granted]
            return chunk, await self._check_chunk(issue_id, chunk)

        return asyncio.create_task(prepare())

    async def _take_tokens(self, wanted: int) -> int:
        """Up to a chunk's worth from the global rate limit; 0 if asked to stop meanwhile."""
        return await self.limiter.take(min(wanted, CHUNK), self.stop)

    async def _check_chunk(self, issue_id: int, chunk: list[int]) -> queue.Gate:
        """The send-time check: issue still sending, subscribers still active, rows still ours."""
        return await queue.check(self.database, issue_id, chunk, self.worker_id)

    async def _hand_over(
        self, message: IssueMessage, gate: queue.Gate, claims: dict[int, queue.Claimed]
    ) -> None:
        """Skip what the check refused, give the rest to the pool."""
        self.outcomes.skipped.update(gate.skip)
        for row in gate.send:
            recipient = Recipient(
                row["id"], row["subscriber_id"], row["public_id"], row["email"], row["name"]
            )
            # What recording a failure needs: the claim, and whom the check found.
            self._handed[recipient.delivery_id] = (
                claims[recipient.delivery_id],
                recipient.subscriber_id,
            )
            await self.smtp.submit(self._job(message, recipient))

    def _record_sent(self, job: Job, _reply: Reply) -> None:
        self._handed.pop(job.key, None)
        self.outcomes.sent.append(job.key)
        self.sent_total += 1
        self._kick_flush()

    def _record_failed(self, job: Job, exc: SendError) -> None:
        claimed, subscriber_id = self._handed.pop(job.key)
        self.outcomes.errors.append(
            Failure(
                claimed.id,
                subscriber_id,
                claimed.attempts,
                claimed.deferrals,
                exc,
                claimed.pushbacks,
            )
        )
        self._kick_flush()

    def _record_released(self, job: Job) -> None:
        self._handed.pop(job.key, None)
        self.outcomes.released.append(job.key)
        self._kick_flush()

    async def _raise_failed_write(self) -> None:
        """A failed background write of outcomes ends the round (rows come back by lease)."""
        flushing = self._flushing
        if (
            flushing is not None
            and flushing.done()
            and not flushing.cancelled()
            and flushing.exception() is not None
        ):
            await flushing

    def _job(self, message: IssueMessage, recipient: Recipient) -> Job:
        tokens = self.tokens

        def render(eight_bit: bool) -> tuple[bytes, bool]:
            token = tokens.unsubscribe(recipient.public_id)
            data = message.render(recipient, token, eight_bit=eight_bit)
            return data, eight_bit and message.needs_8bit

        return Job(
            key=recipient.delivery_id,
            sender=message.envelope_sender(recipient.delivery_id),
            recipient=recipient.email,
            render=render,
            on_sent=self._record_sent,
            on_error=self._record_failed,
            on_released=self._record_released,
        )
