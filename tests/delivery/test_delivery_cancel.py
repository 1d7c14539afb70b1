"""Cancelling an issue while workers hold some of its mail leaves nothing stuck."""

from __future__ import annotations

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.editorial import issues
from newsletter.ops.audit import Actor
from tests.support.delivery import add_subscribers, start_issue, status_counts

EDITOR = Actor(name="편집자")


async def claim(db: Database, issue_id: int, count: int, lease_seconds: float) -> list[int]:
    rows = await db.pool.fetch(
        "UPDATE deliveries SET status = 'sending', worker = 'w1', attempts = attempts + 1,"
        " lease_until = now() + make_interval(secs => $3)"
        " WHERE id IN (SELECT id FROM deliveries WHERE issue_id = $1 AND status = 'queued'"
        " ORDER BY id LIMIT $2) RETURNING id",
        issue_id,
        count,
        lease_seconds,
    )
    return [r["id"] for r in rows]


async def test_cancel_while_a_worker_holds_a_batch(db: Database, settings: Settings) -> None:
    await add_subscribers(db, 60)
    issue_id = await start_issue(db, settings)
    held = await claim(db, issue_id, 20, 60)  # a live worker's batch
    expired = await claim(db, issue_id, 10, -1)  # a dead worker's batch

    await issues.cancel(db, EDITOR, issue_id)
    assert await status_counts(db, issue_id) == {"skipped": 30, "sending": 30}

    # The live worker finds the issue cancelled at its send-time check and hands
    # its rows back; the dead worker's lease runs out and any worker sweeps it.
    await db.execute("deliveries_release", held, "w1")
    await db.execute("requeue_expired_deliveries", "test:sweeper")
    # Every row is final: nothing shows as queued or in flight on a cancelled issue.
    assert await status_counts(db, issue_id) == {"skipped": 60}
    assert len(expired) == 10


async def test_pause_still_puts_held_mail_back_in_the_queue(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 10)
    issue_id = await start_issue(db, settings)
    held = await claim(db, issue_id, 4, 60)
    await issues.pause(db, EDITOR, issue_id)
    await db.execute("deliveries_release", held, "w1")
    assert await status_counts(db, issue_id) == {"queued": 10}
    attempts = await db.pool.fetchval(
        "SELECT max(attempts) FROM deliveries WHERE issue_id = $1", issue_id
    )
    assert attempts == 0  # handing back does not spend an attempt
