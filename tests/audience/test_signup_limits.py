"""The signup-limit log holds client IPs: the worker keeps it to one day."""

from __future__ import annotations

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.delivery.worker import Worker


async def test_worker_prunes_limit_hits_older_than_a_day(db: Database, settings: Settings) -> None:
    await db.pool.execute(
        "INSERT INTO signup_hits (bucket, at) VALUES "
        "('ip:198.51.100.1', now() - interval '25 hours'), ('ip:198.51.100.2', now())"
    )
    worker = Worker(settings, db)
    assert any(job.name == "prune signup limit log" for job in worker.periodic)
    await worker.prune_signup_hits()
    left = await db.pool.fetch("SELECT bucket FROM signup_hits")
    assert [row["bucket"] for row in left] == ["ip:198.51.100.2"]
