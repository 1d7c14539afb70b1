"""What a worker does beside sending, each job on its own clock and in its own
task: a long daily job never delays putting back a dead worker's rows.

The heartbeat keeps our leases alive, the liveness lock tells other workers
we are alive (``liveness.py``), the rows of dead workers are put back about
once a second; the rest is housekeeping any worker may do (starting
scheduled issues, the daily lifecycle, pruning logs that name IPs).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from newsletter.audience import lifecycle
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.delivery.liveness import Liveness
from newsletter.delivery.relays import Relays
from newsletter.editorial import issues
from newsletter.ops import metrics

log = logging.getLogger("newsletter.worker")

# How often each worker looks for rows of dead workers (a cheap statement per
# queue) and checks its own liveness lock: a killed worker's mail is sent again
# within about this, plus a claim.
RECOVERY_SECONDS = 1.0
RELAY_REPORT_SECONDS = 5.0


@dataclass
class PeriodicJob:
    """Something the worker does every ``interval`` seconds beside sending."""

    name: str
    interval: float
    run: Callable[[], Awaitable[object]]
    next_at: float = 0.0


@dataclass
class Chores:
    database: Database
    settings: Settings
    worker_id: str
    lease_seconds: float
    liveness: Liveness
    relays: Relays
    # The issue this worker is sending now, for the heartbeat (ops see it).
    current_issue: Callable[[], int | None]
    jobs: list[PeriodicJob] = field(init=False)

    def __post_init__(self) -> None:
        self.jobs = [
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
            PeriodicJob("daily lifecycle", 60.0, self.daily_lifecycle),
        ]

    async def run(self) -> None:
        """Every job, each in its own task, until cancelled."""
        tasks = [asyncio.create_task(self._repeat(job), name=job.name) for job in self.jobs]
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

    async def heartbeat(self) -> None:
        await self.database.execute("worker_heartbeat", self.worker_id, self.current_issue())
        metrics.heartbeat()
        await self.database.execute("extend_delivery_leases", self.worker_id, self.lease_seconds)
        await self.database.execute("extend_outbox_leases", self.worker_id, self.lease_seconds)

    async def report_relays(self) -> None:
        """Each relay's counts since the last report, added up in PostgreSQL for the stats."""
        rows = self.relays.report()
        try:
            await self.database.execute("relay_report", rows)
        except BaseException:
            self.relays.unreported(rows)
            raise

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

    async def prune_dead_workers(self) -> None:
        await self.database.execute("prune_dead_workers", max(600.0, self.lease_seconds * 10))
        await self.database.execute("prune_relay_health")

    async def start_due_issues(self) -> None:
        """The scheduler: any worker may start a due issue; issues.py makes it once only."""
        started = await issues.start_due_issues(self.database, self.settings)
        if started:
            log.info("started scheduled issues %s", started)

    async def prune_signup_hits(self) -> None:
        await self.database.execute("prune_signup_hits")
        # The signup form's spent proof-of-work answers expire on the same scale.
        await self.database.execute("prune_spent_challenges")

    async def daily_lifecycle(self) -> None:
        await lifecycle.run_daily_jobs(self.database, self.settings, datetime.now(UTC))
