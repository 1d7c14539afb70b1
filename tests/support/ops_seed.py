"""Test data for the ops view: subscribers, an issue and its deliveries, via SQL.

Deliveries are written directly so a test can state exactly which figures it
expects (and so the stats can be tested apart from the delivery engine).
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.core.db import Database


@dataclass(frozen=True)
class Seeded:
    issue_id: int
    recipients: int


async def make_subscribers(db: Database, count: int, *, prefix: str = "r") -> list[int]:
    rows = await db.pool.fetch(
        """
        INSERT INTO subscribers (email, status, confirmed_at, last_consent_at)
        SELECT $2 || i || '@example.com', 'active', now(), now()
        FROM generate_series(1, $1) AS i
        RETURNING id
        """,
        count,
        f"{prefix}{count}-",
    )
    return [r["id"] for r in rows]


async def make_issue(
    db: Database, *, status: str = "sending", started_seconds_ago: float | None = 120.0
) -> int:
    issue_id: int = await db.pool.fetchval(
        """
        INSERT INTO issues (title, status, subject, started_at, number)
        VALUES ('시정 소식 11월호', $1, '시정 소식', now() - make_interval(secs => $2),
                (SELECT coalesce(max(number), 0) + 1 FROM issues))
        RETURNING id
        """,
        status,
        started_seconds_ago,
    )
    if started_seconds_ago is None:
        await db.pool.execute("UPDATE issues SET started_at = NULL WHERE id = $1", issue_id)
    return issue_id


async def seed_issue(
    db: Database,
    *,
    queued: int = 0,
    sending: int = 0,
    sent: int = 0,
    failed: int = 0,
    bounced: int = 0,
    skipped: int = 0,
    retrying: int = 0,
    status: str = "sending",
    sent_seconds_ago: float = 10.0,
    started_seconds_ago: float | None = 120.0,
) -> Seeded:
    """One issue whose deliveries are in exactly the given states.

    failed rows get SMTP 550, bounced 552, retrying rows (queued after a
    failed attempt) 451; sent rows went ``sent_seconds_ago``.
    """
    total = queued + sending + sent + failed + bounced + skipped + retrying
    subscriber_ids = await make_subscribers(db, total, prefix=f"s{await _next(db)}-")
    issue_id = await make_issue(db, status=status, started_seconds_ago=started_seconds_ago)
    plan = (
        [("queued", 0, None, False)] * queued
        + [("sending", 1, None, False)] * sending
        + [("sent", 1, 250, True)] * sent
        + [("failed", 1, 550, False)] * failed
        + [("bounced", 1, 552, True)] * bounced
        + [("skipped", 0, None, False)] * skipped
        + [("queued", 2, 451, False)] * retrying
    )
    await db.pool.executemany(
        """
        INSERT INTO deliveries (issue_id, subscriber_id, status, attempts, smtp_code, sent_at)
        VALUES ($1, $2, $3, $4, $5,
                CASE WHEN $6 THEN now() - make_interval(secs => $7) END)
        """,
        [
            (issue_id, sid, st, attempts, code, has_sent, sent_seconds_ago)
            for sid, (st, attempts, code, has_sent) in zip(subscriber_ids, plan, strict=True)
        ],
    )
    return Seeded(issue_id=issue_id, recipients=total)


async def _next(db: Database) -> int:
    value: int = await db.pool.fetchval("SELECT count(*) FROM issues")
    return value
