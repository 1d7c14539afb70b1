"""Worker processes dying: SIGKILL (the dead worker's liveness lock is free at
once, so another worker takes over long before the lease runs out; lease
expiry for what the lock cannot tell), SIGTERM (graceful: in-flight finishes,
the rest is given back), and a worker that loses its liveness lock's
connection but lives on."""

from __future__ import annotations

import asyncio
import signal
import socket

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.delivery import claim as queue
from newsletter.delivery import outcomes
from newsletter.delivery.smtp import PushBack, ServerTrouble, TransientError
from newsletter.delivery.worker import Worker
from newsletter.mail import outbox
from tests.conftest import SmtpServer, make_settings
from tests.support.delivery import (
    add_subscribers,
    address,
    assert_each_got_one,
    assert_nobody_skipped,
    fast_worker,
    handler_of,
    running,
    start_issue,
    status_counts,
    timed_smtp,
    wait_for_status,
)
from tests.support.processes import kill_after, spawn_worker, wait_for_messages, worker_env

__all__ = ["timed_smtp"]  # fixture


def crash_env(database_url: str, server: SmtpServer, **settings: str) -> dict[str, str]:
    return worker_env(
        database_url,
        server.target,
        **{"RATE_PER_SECOND": "300", "BATCH_SIZE": "50", "SMTP_CONNECTIONS": "4", **settings},
    )


async def test_sigkilled_worker_process_is_taken_over(
    database_url: str, db: Database, timed_smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, timed_smtp.target, rate_per_second=300.0)
    await add_subscribers(db, 600)
    issue_id = await start_issue(db, settings)
    process = await spawn_worker(crash_env(database_url, timed_smtp))
    await kill_after(process, timed_smtp, 150)
    assert await status_counts(db, issue_id) != {"sent": 600}, "finished before the kill"

    async with running(fast_worker(settings, db, "survivor")):
        await wait_for_status(db, issue_id, "sent", timeout=60)

    assert_nobody_skipped(handler_of(timed_smtp), 600, duplicates_at_most=50, what="one batch")
    assert await status_counts(db, issue_id) == {"sent": 600}


async def test_sigterm_lets_in_flight_mail_finish_and_gives_the_rest_back(
    database_url: str, db: Database, timed_smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, timed_smtp.target, rate_per_second=100.0)
    await add_subscribers(db, 400)
    issue_id = await start_issue(db, settings)
    env = crash_env(database_url, timed_smtp, RATE_PER_SECOND="100", BATCH_SIZE="200")
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
    await worker.chores.requeue_expired()
    assert await status_counts(db, issue_id) == {"queued": 5}
    assert await db.pool.fetchval("SELECT status FROM outbox") == "queued"

    async with running(worker):
        await wait_for_status(db, issue_id, "sent", timeout=30)
    assert await db.pool.fetchval("SELECT status FROM outbox") == "sent"
    assert len(timed_smtp.handler.to(address(1))) == 2  # the confirmation and the issue


async def test_sigkilled_worker_mail_is_taken_over_long_before_its_lease_runs_out(
    database_url: str, db: Database, timed_smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, timed_smtp.target, rate_per_second=200.0)
    await add_subscribers(db, 400)
    issue_id = await start_issue(db, settings)
    env = crash_env(database_url, timed_smtp, RATE_PER_SECOND="200", BATCH_SIZE="100")
    process = await spawn_worker(env, lease_seconds=60)
    dead = f"{socket.gethostname()}:{process.pid}"
    await kill_after(process, timed_smtp, 60)
    held = await db.pool.fetchrow(
        "SELECT count(*) AS n, min(lease_until) AS until FROM deliveries"
        " WHERE status = 'sending' AND worker = $1",
        dead,
    )
    assert held is not None and held["n"] > 0, "the worker held nothing when it died"

    async with running(fast_worker(settings, db, "survivor", lease_seconds=60.0)):
        await wait_for_status(db, issue_id, "sent", timeout=60)
        # Everything went out while the dead worker's leases were still running.
        assert await db.pool.fetchval("SELECT now() < $1", held["until"])

    handler = handler_of(timed_smtp)
    assert_nobody_skipped(handler, 400, duplicates_at_most=25, what="one flush group")
    assert await status_counts(db, issue_id) == {"sent": 400}


async def test_worker_that_loses_its_lock_connection_takes_the_lock_again(
    database_url: str, db: Database, timed_smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, timed_smtp.target, rate_per_second=100.0)
    await add_subscribers(db, 300)
    issue_id = await start_issue(db, settings)
    worker = fast_worker(settings, db, "one", lease_seconds=60.0)
    handler = handler_of(timed_smtp)
    async with running(worker):
        await wait_for_messages(timed_smtp, 30)
        lost = worker.liveness.backend_pid
        assert lost is not None
        # The database ends that session (as a restart or an idle-connection killer would).
        assert await db.pool.fetchval("SELECT pg_terminate_backend($1)", lost)
        async with asyncio.timeout(20):
            while worker.liveness.backend_pid in (None, lost):
                await asyncio.sleep(0.05)
        # The lock stands again and the workers row names its key, so other
        # workers see this one alive.
        key = await db.pool.fetchval(
            "SELECT lock_key FROM workers WHERE worker_id = $1", worker.worker_id
        )
        holder = await db.pool.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = 1852602219 AND objid = $1::int::oid AND objsubid = 2",
            key,
        )
        assert holder == worker.liveness.backend_pid
        assert len(handler.messages) < 300, "finished before the lock came back"
        await wait_for_status(db, issue_id, "sent", timeout=60)
    # It never took its own rows back meanwhile: nobody got a second copy.
    assert_each_got_one(handler, 300)


async def test_late_outcomes_of_a_worker_whose_rows_were_taken_over_leave_them_alone(
    db: Database, settings: Settings
) -> None:
    """A worker cut off past its lease (or whose lock connection died) comes back
    and writes what its sends met: a push-back, a 4xx, rows it did not send.
    Another worker holds those rows now; they stay its own, or it would lose
    them mid-send and a third claim would mail the same people again."""
    await add_subscribers(db, 4)
    issue_id = await start_issue(db, settings)
    old = await queue.claim(db, "test:old", issue_id, 10, lease_seconds=-1)  # lease ran out
    await db.execute("requeue_expired_deliveries", "test:new")
    new = await queue.claim(db, "test:new", issue_id, 10, lease_seconds=60)
    assert sorted(c.id for c in new) == sorted(c.id for c in old)

    late = queue.Outcomes(settings.max_attempts, worker_id="test:old")
    pushed = PushBack(450, "4.7.1 Error: too much mail from 127.0.0.1", stage="mail")
    refused = TransientError(451, "4.3.0 Temporary local problem", stage="rcpt")
    trouble = ServerTrouble(None, "connection lost", stage="data")
    late.errors = [
        outcomes.Failure(c.id, c.subscriber_id, c.attempts, c.deferrals, error)
        for c, error in zip(old, (pushed, refused, trouble), strict=False)
    ]
    late.released = [old[3].id]
    await late.flush(db)

    rows = await db.pool.fetch("SELECT status, worker, attempts FROM deliveries")
    assert {(r["status"], r["worker"], r["attempts"]) for r in rows} == {("sending", "test:new", 2)}
    gate = await queue.check(db, issue_id, [c.id for c in new], "test:new")
    assert len(gate.send) == 4, "the new holder may no longer send what it claimed"


async def test_late_outcomes_of_transactional_mail_taken_over_leave_it_alone(
    db: Database, settings: Settings
) -> None:
    """The same for the outbox: a confirmation another worker now sends stays its own."""
    for n in range(3):
        async with db.transaction() as conn:
            await outbox.enqueue(conn, "confirm", address(n), {"subscriber_id": 1})
    old = await db.fetch("claim_outbox", "test:old", 10, -1)  # lease ran out
    await db.execute("requeue_expired_outbox", "test:new")
    assert len(await db.fetch("claim_outbox", "test:new", 10, 60)) == 3

    late = Worker(settings, db, worker_id="test:old")
    await late.outbox.record(old[0], PushBack(421, "4.7.0 Try again later", stage="mail"))
    await late.outbox.record(old[1], TransientError(451, "4.3.0 busy", stage="rcpt"))
    await late.outbox.record(old[2], None)  # given back unsent

    rows = await db.pool.fetch("SELECT status, worker, attempts FROM outbox")
    assert {(r["status"], r["worker"], r["attempts"]) for r in rows} == {("sending", "test:new", 2)}
