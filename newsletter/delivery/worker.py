"""The worker loop: claim due mail from PostgreSQL, send it, record the outcome.

Any number of workers on any number of hosts may run; they coordinate only
through the database (``FOR UPDATE SKIP LOCKED`` plus a lease, and the
shared rate-limit bucket).

Each round: transactional mail (outbox) first, then batches of the oldest
sending issue for up to KEEP_GOING_SECONDS (the next batch is claimed while
the pool still sends the last one's tail). A batch is sent chunk by chunk:
take rate tokens, check the chunk (issue still sending, subscribers still
active), hand it to the SMTP pool. Pause, cancel, unsubscribe and erase
therefore take effect for every message not yet handed over. A stop request
(SIGTERM) lets the messages in flight finish and gives the rest of the batch back.

Periodic jobs run beside the loop (:attr:`Worker.periodic`), each in its own
task: the heartbeat that keeps our leases alive, the liveness lock that tells
other workers we are alive (delivery/liveness.py), putting back the rows of
dead workers about once a second, and whatever other modules register (e.g.
starting scheduled issues).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from typing import Any

from newsletter.audience import lifecycle
from newsletter.core.db import Database, Record
from newsletter.core.dkim import signer_for
from newsletter.core.settings import Settings
from newsletter.core.tokens import Tokens
from newsletter.delivery import claim as queue
from newsletter.delivery import failures
from newsletter.delivery.failures import Verdict
from newsletter.delivery.liveness import Liveness
from newsletter.delivery.message import IssueMessage, Recipient, dot_stuff
from newsletter.delivery.pool import Job, SmtpPool
from newsletter.delivery.ratelimit import RateLimiter
from newsletter.delivery.smtp import Reply, SendError
from newsletter.editorial import issues
from newsletter.mail.transactional import MailContext, UnknownMailKind, outbox_mail
from newsletter.ops import metrics

log = logging.getLogger("newsletter.worker")

LEASE_SECONDS = 60.0
# How often each worker looks for rows of dead workers (a cheap statement per
# queue) and checks its own liveness lock: a killed worker's mail is sent again
# within about this, plus a claim.
RECOVERY_SECONDS = 1.0
IDLE_POLL_SECONDS = 0.5
CHUNK = 64  # messages per rate-limit take and send-time check
KEEP_GOING_SECONDS = 1.0  # claim batch after batch of one issue for this long
MESSAGE_MAX_AGE = 600.0  # rebuild an issue's message (fresh Date) after this
# Transactional mail in server trouble: 10 s, 20 s ... at most 5 min apart (someone
# waits for their confirmation link), given up after the link's lifetime.
OUTBOX_DEFER_SECONDS = 10.0
OUTBOX_DEFER_CAP_SECONDS = 300.0
SMTP_POLICY = policy.SMTP
RELAY_REPORT_SECONDS = 5.0


# A prepared chunk: its delivery ids and the send-time check's answer (None:
# asked to stop while waiting for tokens).
Prepared = tuple[list[int], queue.Gate | None]


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class PeriodicJob:
    """Something the worker does every ``interval`` seconds beside sending."""

    name: str
    interval: float
    run: Callable[[], Awaitable[object]]
    next_at: float = 0.0


@dataclass
class Worker:
    settings: Settings
    database: Database
    worker_id: str = field(default_factory=default_worker_id)
    lease_seconds: float = LEASE_SECONDS
    retry_base_seconds: float = queue.RETRY_SECONDS  # 4xx: 30 s, 60 s, 2 min … (jittered)
    reconnect_base_seconds: float = 1.0
    defer_seconds: float = queue.DEFER_SECONDS  # server trouble outlasting the inline retries
    delivery_max_age_seconds: float = queue.DELIVERY_MAX_AGE_SECONDS
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.tokens = Tokens(self.settings.secret_key, self.settings.confirm_max_age_seconds)
        self.mail_context = MailContext(self.settings, self.tokens)
        # RATE_PER_SECOND and SMTP_CONNECTIONS are ceilings: the limiter learns
        # the rate the relays take, the pool the connections (ratelimit.py, relays.py).
        self.limiter = RateLimiter(
            self.database, self.settings.rate_per_second, self.settings.rate_per_hour
        )
        self.smtp = SmtpPool(
            self.settings.smtp_relays,
            self.settings.smtp_connections,
            stop=self.stop,
            backoff_base=self.reconnect_base_seconds,
            # One checked chunk may wait while the next is being checked.
            queue_size=CHUNK,
            pace=self.limiter,
        )
        self.outcomes = queue.Outcomes(
            self.settings.max_attempts,
            queue.delivery_waits(
                self.retry_base_seconds, self.defer_seconds, self.delivery_max_age_seconds
            ),
            worker_id=self.worker_id,
        )
        self.outbox_waits = failures.Waits(
            retry=failures.Backoff(self.retry_base_seconds, queue.RETRY_CAP_SECONDS),
            defer=failures.Backoff(OUTBOX_DEFER_SECONDS, OUTBOX_DEFER_CAP_SECONDS),
            max_age=float(self.settings.confirm_max_age_seconds),
            push_back=failures.PUSH_BACK_PAUSES,
        )
        self.signer = signer_for(self.settings)
        self.liveness = Liveness(self.settings.database_url)
        self.current_issue_id: int | None = None
        self.sent_total = 0
        self._messages: dict[int, tuple[float, IssueMessage]] = {}
        self._link_task: asyncio.Task[None] | None = None
        self._flushing: asyncio.Task[None] | None = None  # outcomes being written
        # Deliveries handed to the pool, until it reports them: (claim, subscriber id).
        self._handed: dict[int, tuple[queue.Claimed, int | None]] = {}
        self.flush_every = max(1, min(queue.FLUSH_EVERY, self.settings.batch_size // 4))
        self.periodic: list[PeriodicJob] = [
            PeriodicJob("heartbeat", self.lease_seconds / 4, self.heartbeat),
            PeriodicJob("report relays", RELAY_REPORT_SECONDS, self.report_relays),
            PeriodicJob("keep the liveness lock", RECOVERY_SECONDS, self.keep_liveness),
            PeriodicJob(
                "put back rows of dead workers",
                min(RECOVERY_SECONDS, self.lease_seconds / 2),
                self.requeue_expired,
            ),
            PeriodicJob("prune dead workers", 300.0, self.prune_dead_workers),
            PeriodicJob("start scheduled issues", 5.0, self.start_due_issues),
            # Signup-limit hits older than a day count for nothing (and name IPs).
            PeriodicJob("prune signup limit log", 3600.0, self.prune_signup_hits),
            # Re-confirm, lapse, purge: a no-op unless this is the day's first run anywhere.
            PeriodicJob(
                "daily lifecycle",
                60.0,
                lambda: lifecycle.run_daily_jobs(self.database, self.settings, datetime.now(UTC)),
            ),
        ]

    # --- lifecycle ---------------------------------------------------------

    async def prune_signup_hits(self) -> None:
        await self.database.execute("prune_signup_hits")
        # The signup form's spent proof-of-work answers expire on the same scale.
        await self.database.execute("prune_spent_challenges")

    async def run(self, stop: asyncio.Event | None = None) -> None:
        if stop is not None and stop is not self.stop:
            self._link(stop)
        host, _, pid = self.worker_id.rpartition(":")
        lock_key = await self.liveness.take()
        await self.database.execute(
            "worker_register",
            self.worker_id,
            host or socket.gethostname(),
            int(pid) if pid.isdigit() else os.getpid(),
            lock_key,
        )
        # Rows marked with our id now were left by a predecessor with the same
        # id (a restarted container: same host, same pid) that died holding them.
        deliveries = await self.database.execute("requeue_own_deliveries", self.worker_id)
        mails = await self.database.execute("requeue_own_outbox", self.worker_id)
        if deliveries != "UPDATE 0" or mails != "UPDATE 0":
            log.warning(
                "put back what a previous %s held: %s / outbox %s",
                self.worker_id,
                deliveries,
                mails,
            )
        log.info("worker %s started", self.worker_id)
        periodic = asyncio.create_task(self._run_periodic(), name="periodic")
        failures = 0
        try:
            while not self.stop.is_set():
                try:
                    if failures:
                        await self._give_back_own_rows()
                    worked = await self.run_once()
                    failures = 0
                except Exception:
                    # Database restarts, network blips: log, wait, carry on.
                    # Rows this worker still holds are given back first thing
                    # once the database answers again (the heartbeat would
                    # otherwise keep their leases alive for ever).
                    failures += 1
                    log.exception("worker round failed (%s in a row)", failures)
                    worked = 0
                    await self._sleep(min(30.0, 0.5 * 2**failures))
                if not worked:
                    await self._sleep(IDLE_POLL_SECONDS)
        finally:
            periodic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await periodic
            await self.smtp.close()
            with contextlib.suppress(Exception):
                await self.report_relays()
            with contextlib.suppress(Exception):
                await self.database.execute("worker_unregister", self.worker_id)
            await self.liveness.release()
            log.info("worker %s stopped after sending %s", self.worker_id, self.sent_total)

    def _link(self, outer: asyncio.Event) -> None:
        """Mirror an externally owned stop event (signal handler) into ours."""

        async def watch() -> None:
            await outer.wait()
            self.stop.set()

        self._link_task = asyncio.get_running_loop().create_task(watch())

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _run_periodic(self) -> None:
        """Each job in its own task: a long daily job never delays putting back a dead
        worker's rows."""
        tasks = [asyncio.create_task(self._repeat(job), name=job.name) for job in self.periodic]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _repeat(self, job: PeriodicJob) -> None:
        while True:
            delay = job.next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            job.next_at = time.monotonic() + job.interval
            try:
                await job.run()
            except Exception:
                log.exception("periodic job %r failed", job.name)

    async def report_relays(self) -> None:
        """Each relay's counts since the last report, added up in PostgreSQL for the stats."""
        rows = self.smtp.relays.report()
        try:
            await self.database.execute("relay_report", rows)
        except BaseException:
            self.smtp.relays.unreported(rows)
            raise

    async def heartbeat(self) -> None:
        await self.database.execute("worker_heartbeat", self.worker_id, self.current_issue_id)
        metrics.heartbeat()
        await self.database.execute("extend_delivery_leases", self.worker_id, self.lease_seconds)
        await self.database.execute("extend_outbox_leases", self.worker_id, self.lease_seconds)

    async def _give_back_own_rows(self) -> None:
        await self.smtp.drain()
        deliveries = await self.database.execute("requeue_own_deliveries", self.worker_id)
        mails = await self.database.execute("requeue_own_outbox", self.worker_id)
        log.warning("after a failed round, gave back %s / outbox %s", deliveries, mails)

    async def keep_liveness(self) -> None:
        key = await self.liveness.keep()
        if key is not None:
            await self.database.execute("worker_lock_retaken", self.worker_id, key)
            log.warning("liveness lock taken again (key %s)", key)

    async def requeue_expired(self) -> None:
        """Put back what dead workers held, in both queues: one job, one rule."""
        deliveries = await self.database.execute("requeue_expired_deliveries", self.worker_id)
        mails = await self.database.execute("requeue_expired_outbox", self.worker_id)
        if deliveries != "UPDATE 0" or mails != "UPDATE 0":
            log.warning(
                "put back rows of a dead worker: deliveries %s / outbox %s", deliveries, mails
            )

    async def start_due_issues(self) -> None:
        """The scheduler: any worker may start a due issue; issues.py makes it once only."""
        started = await issues.start_due_issues(self.database, self.settings)
        if started:
            log.info("started scheduled issues %s", started)

    async def prune_dead_workers(self) -> None:
        await self.database.execute("prune_dead_workers", max(600.0, self.lease_seconds * 10))
        await self.database.execute("prune_relay_health")

    # --- one round ---------------------------------------------------------

    async def run_once(self) -> int:
        """Send one round (transactional mail first); return how many were claimed.

        First, never instead: a round sends at most one batch of transactional
        mail and then at least one batch of the sending issue, so however much
        transactional mail is due (a flood of notices, a wave of signups) the
        issue keeps at least about half of the send rate.
        """
        handled = await self._outbox_batch()
        return handled + await self._delivery_batch()

    # --- transactional mail ------------------------------------------------

    async def _outbox_batch(self) -> int:
        rows = await self.database.fetch(
            "claim_outbox", self.worker_id, self.settings.batch_size, self.lease_seconds
        )
        if not rows:
            return 0
        results: dict[int, Reply | SendError | None] = {}

        def sent(job: Job, reply: Reply) -> None:
            results[job.key] = reply

        def failed(job: Job, exc: SendError) -> None:
            results[job.key] = exc

        def released(job: Job) -> None:
            results[job.key] = None

        unsent = [row["id"] for row in rows]
        tokens = 0  # taken from the global rate limit, not yet used
        try:
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
                        self.mail_context, row["id"], row["kind"], row["recipient"], _payload(row)
                    )
                except (UnknownMailKind, KeyError, ValueError) as exc:
                    log.error("outbox %s cannot be rendered: %r", row["id"], exc)
                    await self.database.execute(
                        "outbox_failed", row["id"], f"render: {exc!r}", None
                    )
                    unsent.remove(row["id"])
                    continue
                data = dot_stuff(mail.data)
                results[row["id"]] = None
                unsent.remove(row["id"])
                tokens -= 1
                await self.smtp.submit(
                    Job(
                        key=row["id"],
                        sender=mail.sender,
                        recipient=row["recipient"],
                        render=_prebuilt(data),
                        on_sent=sent,
                        on_error=failed,
                        on_released=released,
                    )
                )
        finally:
            await self.smtp.drain()
            by_id = {row["id"]: row for row in rows}
            for outbox_id, result in results.items():
                await self._record_outbox(by_id[outbox_id], result)
            if unsent:
                await self.database.execute("outbox_release", unsent, self.worker_id)
        return len(rows)

    async def _record_outbox(self, row: Record, result: Reply | SendError | None) -> None:
        """Write one outcome; a failure's verdict is failures.verdict's, as for deliveries."""
        if isinstance(result, Reply):
            await self.database.execute("outbox_sent", row["id"], result.code, None)
            return
        if result is None:
            await self.database.execute("outbox_release", [row["id"]], self.worker_id)
            return
        decision = failures.verdict(result, row["attempts"], self.settings.max_attempts)
        delay = self.outbox_waits.delay(
            decision, row["attempts"], row["deferrals"], row["pushbacks"]
        )
        verdict = decision.verdict
        if verdict is Verdict.PUSH_BACK or verdict is Verdict.DEFER:
            # Not an attempt, however long it lasts: someone waits for this
            # mail; given up only once the confirm link would be stale.
            status = await self.database.fetchval(
                "outbox_defer",
                row["id"],
                delay,
                str(result),
                result.code,
                self.outbox_waits.max_age,
                1 if verdict is Verdict.DEFER else 0,
                self.worker_id,
                1 if verdict is Verdict.PUSH_BACK else 0,
            )
            if status == "failed":
                log.error("outbox %s failed: server trouble past its maximum age", row["id"])
        elif verdict is Verdict.BOUNCE or verdict is Verdict.GIVE_UP:
            log.warning("outbox %s failed for good: %s", row["id"], result)
            await self.database.execute("outbox_failed", row["id"], str(result), result.code)
        else:
            await self.database.execute(
                "outbox_retry", row["id"], delay, str(result), result.code, self.worker_id
            )

    # --- issue deliveries --------------------------------------------------

    async def _delivery_batch(self) -> int:
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
            queue.Failure(
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


async def run_worker(
    settings: Settings,
    *,
    database: Database | None = None,
    stop: asyncio.Event | None = None,
    lease_seconds: float = LEASE_SECONDS,
) -> None:
    owned = database is None
    db = database or await Database.connect(_require_url(settings))
    try:
        worker = Worker(settings, db, lease_seconds=lease_seconds)
        await worker.run(stop)
    finally:
        if owned:
            await db.close()


def _require_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise RuntimeError("NEWSLETTER_DATABASE_URL is not set")
    return settings.database_url
