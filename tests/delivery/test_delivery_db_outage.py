"""PostgreSQL drops the worker's connections mid-send: the worker carries on and
every recipient still gets exactly one copy."""

from __future__ import annotations

import asyncio

import asyncpg

from newsletter.core.db import QUERIES, Database, _init_connection
from tests.conftest import SmtpServer, make_settings
from tests.support.delivery import (
    add_subscribers,
    fast_worker,
    handler_of,
    running,
    start_issue,
    status_counts,
    timed_smtp,
    wait_for_status,
)

__all__ = ["timed_smtp"]  # fixture


async def victim_database(database_url: str) -> Database:
    """A worker pool whose server connections can be picked out and killed."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=5,
        init=_init_connection,
        server_settings={"application_name": "victim-worker"},
    )
    database = Database(pool=pool, queries=QUERIES)
    database.address_key = await pool.fetchval(QUERIES.address_hash_key)
    return database


async def test_worker_survives_its_database_connections_being_killed(
    database_url: str, db: Database, timed_smtp: SmtpServer
) -> None:
    # 150 messages/s: the send lasts several seconds, so the kill lands mid-send.
    settings = make_settings(database_url, timed_smtp.target, rate_per_second=150.0, batch_size=50)
    await add_subscribers(db, 900)
    issue_id = await start_issue(db, settings)
    victim = await victim_database(database_url)
    killed = 0
    try:
        async with running(fast_worker(settings, victim, "victim")):
            while len(handler_of(timed_smtp).counts()) < 200:
                await asyncio.sleep(0.05)
            for _ in range(3):  # kill, let it reconnect, kill again
                killed += await db.pool.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'victim-worker'"
                )
                await asyncio.sleep(0.7)
            await wait_for_status(db, issue_id, "sent", timeout=120)
    finally:
        await victim.close()

    assert killed >= 3
    counts = handler_of(timed_smtp).counts()
    assert len(counts) == 900, "somebody was skipped"
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= settings.batch_size  # only mail in flight at a kill may repeat
    assert await status_counts(db, issue_id) == {"sent": 900}
