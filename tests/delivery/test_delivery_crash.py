"""Worker processes dying: SIGKILL (lease expiry hands the rest to another
worker) and SIGTERM (graceful: in-flight finishes, the rest is given back)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from newsletter.core.db import Database
from newsletter.mail import outbox
from tests.conftest import ROOT, TEST_SECRET_KEY, SmtpServer, make_settings
from tests.support.delivery import (
    add_subscribers,
    address,
    fast_worker,
    handler_of,
    running,
    start_issue,
    status_counts,
    timed_smtp,
    wait_for_status,
)

__all__ = ["timed_smtp"]  # fixture


def worker_env(database_url: str, server: SmtpServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        {
            "NEWSLETTER_DATABASE_URL": database_url,
            "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
            "NEWSLETTER_BASE_URL": "https://newsletter.gimpo.go.kr",
            "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{server.port}",
            "NEWSLETTER_RATE_PER_SECOND": "300",
            "NEWSLETTER_BATCH_SIZE": "50",
            "NEWSLETTER_SMTP_CONNECTIONS": "4",
        }
    )
    env.update(extra)
    return env


async def spawn_worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "newsletter",
        "worker",
        "--lease-seconds",
        "2",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def wait_for_messages(server: SmtpServer, count: int, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while len(server.handler.messages) < count:
            await asyncio.sleep(0.02)


async def test_sigkilled_worker_process_is_taken_over(
    database_url: str, db: Database, timed_smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, timed_smtp.target, rate_per_second=300.0)
    await add_subscribers(db, 600)
    issue_id = await start_issue(db, settings)
    process = await spawn_worker(worker_env(database_url, timed_smtp))
    try:
        await wait_for_messages(timed_smtp, 150)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert await status_counts(db, issue_id) != {"sent": 600}, "finished before the kill"

    async with running(fast_worker(settings, db, "survivor")):
        await wait_for_status(db, issue_id, "sent", timeout=60)

    counts = handler_of(timed_smtp).counts()
    assert len(counts) == 600, "somebody was skipped"
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= 50, f"{duplicates} duplicates, more than one batch"
    assert await status_counts(db, issue_id) == {"sent": 600}


async def test_sigterm_lets_in_flight_mail_finish_and_gives_the_rest_back(
    database_url: str, db: Database, timed_smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, timed_smtp.target, rate_per_second=100.0)
    await add_subscribers(db, 400)
    issue_id = await start_issue(db, settings)
    env = worker_env(
        database_url, timed_smtp, NEWSLETTER_RATE_PER_SECOND="100", NEWSLETTER_BATCH_SIZE="200"
    )
    process = await spawn_worker(env)
    await wait_for_messages(timed_smtp, 40)
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 20) == 0

    counts = await status_counts(db, issue_id)
    # Nothing left claimed: what was sent is recorded, the rest is queued again.
    assert counts.get("sending", 0) == 0
    assert counts["sent"] == len(timed_smtp.handler.messages)
    assert counts["queued"] == 400 - counts["sent"]
    alive = await db.pool.fetchval("SELECT count(*) FROM workers")
    assert alive == 0

    async with running(fast_worker(settings, db, "next")):
        await wait_for_status(db, issue_id, "sent", timeout=60)
    assert set(handler_of(timed_smtp).counts().values()) == {1}


async def test_expired_leases_of_both_queues_come_back_through_one_job(
    database_url: str, db: Database, timed_smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, timed_smtp.target)
    await add_subscribers(db, 5)
    issue_id = await start_issue(db, settings)
    async with db.transaction() as conn:
        await outbox.enqueue(conn, "confirm", address(1), {"subscriber_id": 1}, subscriber_id=1)
    # A worker died holding all of it; its leases ran out a second ago.
    for table in ("deliveries", "outbox"):
        await db.pool.execute(
            f"UPDATE {table} SET status = 'sending', worker = 'gone:1', attempts = 1,"  # noqa: S608
            " lease_until = now() - interval '1 second'"
        )
    worker = fast_worker(settings, db, "sweeper")
    await worker.requeue_expired()
    assert await status_counts(db, issue_id) == {"queued": 5}
    assert await db.pool.fetchval("SELECT status FROM outbox") == "queued"

    async with running(worker):
        await wait_for_status(db, issue_id, "sent", timeout=30)
    assert await db.pool.fetchval("SELECT status FROM outbox") == "sent"
    assert len(timed_smtp.handler.to(address(1))) == 2  # the confirmation and the issue
