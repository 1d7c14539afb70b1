"""The worker: claim due mail from PostgreSQL, send it, record the outcome.

Any number of workers on any number of hosts may run; they coordinate only
through the database (``FOR UPDATE SKIP LOCKED`` plus a lease, and the
shared rate-limit bucket).

This module wires the pieces and runs the loop. Each round
(:meth:`Worker.run_once`, the one place that decides which queue goes
first): transactional mail (``outbox.py``) first, then a stretch of the
oldest sending issue (``issue_batches.py``). A stop request (SIGTERM) lets
the messages in flight finish and gives the rest back. Periodic jobs run
beside the loop (``chores.py``): the heartbeat that keeps our leases alive,
the liveness lock, putting back the rows of dead workers, starting
scheduled issues and the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field

from newsletter.core.db import Database
from newsletter.core.dkim import signer_for
from newsletter.core.settings import Settings
from newsletter.core.tokens import Tokens
from newsletter.delivery import claim as queue
from newsletter.delivery import outbox
from newsletter.delivery.chores import Chores
from newsletter.delivery.issue_batches import CHUNK, IssueBatches
from newsletter.delivery.liveness import Liveness
from newsletter.delivery.outbox import OutboxQueue
from newsletter.delivery.pool import SmtpPool
from newsletter.delivery.ratelimit import RateLimiter
from newsletter.mail.transactional import MailContext

log = logging.getLogger("newsletter.worker")

LEASE_SECONDS = 60.0
IDLE_POLL_SECONDS = 0.5


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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
        settings = self.settings
        tokens = Tokens(settings.secret_key, settings.confirm_max_age_seconds)
        # RATE_PER_SECOND and SMTP_CONNECTIONS are ceilings: the limiter learns
        # the rate the relays take, the pool the connections (ratelimit.py, relays.py).
        self.limiter = RateLimiter(self.database, settings.rate_per_second, settings.rate_per_hour)
        self.smtp = SmtpPool(
            settings.smtp_relays,
            settings.smtp_connections,
            stop=self.stop,
            backoff_base=self.reconnect_base_seconds,
            # One checked chunk may wait while the next is being checked.
            queue_size=CHUNK,
            pace=self.limiter,
        )
        self.liveness = Liveness(settings.database_url)
        self.outbox = OutboxQueue(
            database=self.database,
            settings=settings,
            worker_id=self.worker_id,
            lease_seconds=self.lease_seconds,
            mail=MailContext(settings, tokens),
            limiter=self.limiter,
            smtp=self.smtp,
            stop=self.stop,
            waits=outbox.outbox_waits(
                self.retry_base_seconds,
                queue.RETRY_CAP_SECONDS,
                float(settings.confirm_max_age_seconds),
            ),
        )
        self.issues = IssueBatches(
            database=self.database,
            settings=settings,
            worker_id=self.worker_id,
            lease_seconds=self.lease_seconds,
            tokens=tokens,
            signer=signer_for(settings),
            limiter=self.limiter,
            smtp=self.smtp,
            stop=self.stop,
            outcomes=queue.Outcomes(
                settings.max_attempts,
                queue.delivery_waits(
                    self.retry_base_seconds, self.defer_seconds, self.delivery_max_age_seconds
                ),
                worker_id=self.worker_id,
            ),
        )
        self.chores = Chores(
            database=self.database,
            settings=settings,
            worker_id=self.worker_id,
            lease_seconds=self.lease_seconds,
            liveness=self.liveness,
            relays=self.smtp.relays,
            current_issue=lambda: self.issues.current_issue_id,
        )
        self._link_task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------

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
        periodic = asyncio.create_task(self.chores.run(), name="periodic")
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
                await self.chores.report_relays()
            with contextlib.suppress(Exception):
                await self.database.execute("worker_unregister", self.worker_id)
            await self.liveness.release()
            log.info("worker %s stopped after sending %s", self.worker_id, self.issues.sent_total)

    def _link(self, outer: asyncio.Event) -> None:
        """Mirror an externally owned stop event (signal handler) into ours."""

        async def watch() -> None:
            await outer.wait()
            self.stop.set()

        self._link_task = asyncio.get_running_loop().create_task(watch())

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _give_back_own_rows(self) -> None:
        await self.smtp.drain()
        deliveries = await self.database.execute("requeue_own_deliveries", self.worker_id)
        mails = await self.database.execute("requeue_own_outbox", self.worker_id)
        log.warning("after a failed round, gave back %s / outbox %s", deliveries, mails)

    # --- one round ---------------------------------------------------------

    async def run_once(self) -> int:
        """One round; how many rows were claimed.

        Which queue goes first is decided here and only here: transactional
        mail (someone waits for their link), then a stretch of an issue,
        which returns after KEEP_GOING_SECONDS so the outbox gets its turn.
        First, never instead: a round sends at most one batch of transactional
        mail and then always a stretch of the sending issue, so however much
        transactional mail is due (a flood of notices, a wave of signups) the
        issue keeps at least about half of the send rate.
        """
        handled = await self.outbox.send_batch()
        return handled + await self.issues.send_round()


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
