"""Cost of the ops figures at 100,000 deliveries, beside a plain count(*).

    .venv/bin/python bench/stats.py [--deliveries 100000] [--runs 40]

Builds a fresh database (the server in $NEWSLETTER_TEST_DATABASE_URL, else
postgresql://postgres@127.0.0.1:5432/postgres) with one issue of N deliveries
in a mid-send state (60 % sent over the last 30 minutes, failures, bounces,
retries, rows in flight), then times, over the same table:

* reference: ``SELECT count(*) FROM deliveries`` (what any figure costs at least
  if it has to look at every row);
* ``stats.issue_stats`` (one issue, with chart and error codes) and
  ``stats.overview`` (everything GET /api/v1/stats returns), each one REPEATABLE
  READ snapshot, as the API runs them;
* the same after 30 % of the rows were just updated and not yet vacuumed (what
  the figures cost while workers are busy: the visibility map is cleared for the
  touched pages, so the index-only scan visits the heap for them);
* the per-issue aggregate with only 0001's (issue_id, status) index, to show
  what the covering index of 0006_ops.sql buys.

Prints median and p95 in milliseconds and the ratio to the reference.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter.core.db import QUERIES, Connection, Database, migrate
from newsletter.core.settings import Settings
from newsletter.ops import stats

ADMIN_URL = os.environ.get(
    "NEWSLETTER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def seed(conn: Connection, deliveries: int) -> int:
    await conn.execute(
        """
        INSERT INTO subscribers (email, status, confirmed_at, created_at)
        SELECT 'bench' || i || '@example.com', 'active', now() - (i % 730) * interval '1 day',
               now() - (i % 730) * interval '1 day'
        FROM generate_series(1, $1) AS i
        """,
        deliveries,
    )
    issue_id: int = await conn.fetchval(
        "INSERT INTO issues (title, status, started_at, number) "
        "VALUES ('bench', 'sending', now() - interval '30 minutes', 1) RETURNING id"
    )
    # A realistic mix: 60 % sent over 30 minutes, 1 % failed, 0.5 % bounced,
    # 0.5 % waiting to retry, 20 rows in flight, the rest queued.
    await conn.execute(
        """
        INSERT INTO deliveries (issue_id, subscriber_id, status, attempts, smtp_code, sent_at,
                                last_error)
        SELECT $1, id, status, attempts, code,
               CASE WHEN status IN ('sent', 'bounced')
                    THEN now() - (id % 1800) * interval '1 second' END,
               CASE WHEN code >= 400 THEN 'refused by the receiving server' END
        FROM (
            SELECT id,
                   CASE WHEN id % 1000 < 600 THEN 'sent'
                        WHEN id % 1000 < 610 THEN 'failed'
                        WHEN id % 1000 < 615 THEN 'bounced'
                        WHEN id % 5000 = 700 THEN 'sending'
                        ELSE 'queued' END AS status,
                   CASE WHEN id % 1000 BETWEEN 615 AND 619 THEN 2
                        WHEN id % 1000 < 615 OR id % 5000 = 700 THEN 1 ELSE 0 END AS attempts,
                   CASE WHEN id % 1000 < 600 THEN 250
                        WHEN id % 1000 < 610 THEN 550
                        WHEN id % 1000 < 615 THEN 552
                        WHEN id % 1000 < 620 THEN 451 END AS code
            FROM subscribers
        ) AS plan
        """,
        issue_id,
    )
    await conn.execute("VACUUM ANALYZE deliveries")
    await conn.execute("VACUUM ANALYZE subscribers")
    return issue_id


async def timed(runs: int, call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    for _ in range(3):  # warm caches and prepared statements
        await call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def line(label: str, figures: tuple[float, float], reference: float) -> None:
    median, p95 = figures
    print(f"  {label:<58} {median:8.2f} ms  p95 {p95:8.2f} ms  x{median / reference:6.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()

    name = f"nl_bench_stats_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(ADMIN_URL, name)
    try:
        await migrate(url)
        db = await Database.connect(url, min_size=2, max_size=4)
        settings = Settings.from_env(
            {
                "NEWSLETTER_DATABASE_URL": url,
                "NEWSLETTER_SECRET_KEY": "bench-Qz7vR2kLp9XwN4tB6yHc3mJ8",
            }
        )
        try:
            async with db.pool.acquire() as conn:
                issue_id = await seed(conn, args.deliveries)
                version = await conn.fetchval("SHOW server_version")
            print(f"PostgreSQL {version}, {args.deliveries:,} deliveries, {args.runs} runs each")

            async def count_all() -> object:
                return await db.pool.fetchval("SELECT count(*) FROM deliveries")

            async def counts_only() -> object:
                return await db.pool.fetch(QUERIES.stats_delivery_groups, [issue_id])

            reference = await timed(args.runs, count_all)
            print("settled (vacuumed) table:")
            line("reference: SELECT count(*) FROM deliveries", reference, reference[0])
            line(
                "stats_delivery_groups (the one pass per issue)",
                await timed(args.runs, counts_only),
                reference[0],
            )
            line(
                "issue_stats(): GET /api/v1/issues/{id}/stats",
                await timed(args.runs, lambda: stats.issue_stats(db, settings, issue_id)),
                reference[0],
            )
            line(
                "overview(): GET /api/v1/stats",
                await timed(args.runs, lambda: stats.overview(db, settings)),
                reference[0],
            )
            line(
                "metrics_snapshot(): GET /metrics database part",
                await timed(args.runs, lambda: stats.metrics_snapshot(db, settings)),
                reference[0],
            )

            # Workers just touched 30 % of the rows; autovacuum has not run yet.
            await db.pool.execute("ALTER TABLE deliveries SET (autovacuum_enabled = false)")
            await db.pool.execute("UPDATE deliveries SET attempts = attempts + 1 WHERE id % 10 < 3")
            reference_busy = await timed(args.runs, count_all)
            print("30 % of rows just updated, not vacuumed (a send in full swing):")
            line("reference: SELECT count(*) FROM deliveries", reference_busy, reference_busy[0])
            line(
                "issue_stats(): GET /api/v1/issues/{id}/stats",
                await timed(args.runs, lambda: stats.issue_stats(db, settings, issue_id)),
                reference_busy[0],
            )
            line(
                "overview(): GET /api/v1/stats",
                await timed(args.runs, lambda: stats.overview(db, settings)),
                reference_busy[0],
            )
            await db.pool.execute("VACUUM ANALYZE deliveries")

            plan = await db.pool.fetch(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + QUERIES.stats_delivery_groups,
                [issue_id],
            )
            print("plan of stats_delivery_groups (settled):")
            for row in plan:
                print("    " + row[0])

            # Without 0006: only 0001's (issue_id, status) index.
            await db.pool.execute("DROP INDEX deliveries_issue_stats")
            await db.pool.execute(
                "CREATE INDEX deliveries_issue_status ON deliveries (issue_id, status)"
            )
            await db.pool.execute("VACUUM ANALYZE deliveries")
            print("for comparison, without the covering index (0001's index only):")
            line(
                "stats_delivery_groups (the one pass per issue)",
                await timed(args.runs, counts_only),
                reference[0],
            )
        finally:
            await db.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
