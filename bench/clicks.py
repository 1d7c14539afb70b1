"""Click redirect throughput and latency against a running server, beside GET /healthz.

    .venv/bin/python bench/clicks.py [--seconds 10] [--connections 50]

Starts `newsletter serve` (one process) on a fresh database -- the server in
$NEWSLETTER_TEST_DATABASE_URL if set, else an embedded PostgreSQL -- with one
issue that has started sending, and loads GET /c/<issue>/<item>/<sig> (a
phone's User-Agent, so every request is a counted click) with wrk, installed
with apt-get when missing. The reference is the same server answering
GET /healthz at the same concurrency; the goal is >= 0.5x that rate with
p99 < 20 ms. Afterwards the server is stopped with SIGTERM and the stored
count must equal the number of redirects it answered (its own /metrics, on
the internal METRICS_PORT):
exact, nothing lost on shutdown, and written in a handful of row updates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import asyncpg
from common import SECRET, ServerDatabase, wait_for_health

# The wrk helpers of bench/signup.py, beside this script.
from signup import ensure_wrk, run_wrk

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.editorial import issues
from newsletter.editorial.rendering import click_url
from newsletter.ops.audit import Actor
from tests.conftest import free_port
from tests.support.processes import serve_env

PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
LUA_PHONE = f'wrk.headers["User-Agent"] = "{PHONE}"\n'
# The route label newsletter_http_requests_total carries for the redirect.
SERVED = re.compile(
    r'newsletter_http_requests_total\{method="GET",route="/c/[^"]*",status="302"\} (\S+)'
)


async def started_issue(database_url: str, base_url: str) -> tuple[int, str]:
    """An issue with one linked news item, started; its id and the item's click link."""
    settings = Settings.from_env(
        {
            "NEWSLETTER_DATABASE_URL": database_url,
            "NEWSLETTER_SECRET_KEY": SECRET,
            "NEWSLETTER_BASE_URL": base_url,
        }
    )
    db = await Database.connect(database_url, min_size=1, max_size=2)
    try:
        item_id = await db.pool.fetchval(
            "INSERT INTO news_items (title, link) VALUES ($1, $2) RETURNING id",
            "김포 한강 야간축제",
            "https://www.gimpo.go.kr/news/1",
        )
        row = await issues.create(
            db, Actor(name="bench"), issues.IssueFields("벤치마크 호", "", [item_id])
        )
        async with db.transaction() as conn:
            await issues.start_issue(conn, row["id"], settings)
        return row["id"], click_url(settings, row["id"], item_id)
    finally:
        await db.close()


async def stored(url: str, issue_id: int) -> tuple[int, int]:
    conn = await asyncpg.connect(url)
    try:
        clicks = await conn.fetchval(
            "SELECT coalesce(sum(clicks), 0) FROM click_counts WHERE issue_id = $1", issue_id
        )
        # Row versions written to the counter table: the cost the batching saves.
        await asyncio.sleep(1.5)  # table statistics reach pg_stat a moment after commit
        writes = await conn.fetchval(
            "SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE relname = 'click_counts'"
        )
        return int(clicks), int(writes or 0)
    finally:
        await conn.close()


def served(metrics_base: str) -> int:
    with urllib.request.urlopen(metrics_base + "/metrics", timeout=5) as answer:  # noqa: S310
        text = answer.read().decode()
    return sum(int(float(m)) for m in SERVED.findall(text))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    wrk = ensure_wrk()

    database = ServerDatabase()
    database_url = database.url

    port, metrics_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    issue_id, link = asyncio.run(started_issue(database_url, base))
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
        env=serve_env(
            database_url, SECRET_KEY=SECRET, BASE_URL=base, METRICS_PORT=str(metrics_port)
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_health(base)
        # Warm both paths (connection pool, prepared statements, link cache).
        run_wrk(wrk, base + "/healthz", "", 2, args.connections)
        run_wrk(wrk, link, LUA_PHONE, 2, args.connections)
        health = run_wrk(wrk, base + "/healthz", "", args.seconds, args.connections)
        click = run_wrk(wrk, link, LUA_PHONE, args.seconds, args.connections)
        time.sleep(0.5)  # requests wrk gave up on at the end are still answered
        answered = served(f"http://127.0.0.1:{metrics_port}")
    finally:
        # At once, while the last clicks are still in the server's memory.
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    clicks, writes = asyncio.run(stored(database_url, issue_id))
    database.drop()

    ratio = click["rate"] / health["rate"]
    print(
        f"\nGET /c/... vs GET /healthz — {args.connections} connections, "
        f"{args.seconds}s each, one server process, {os.cpu_count()} cores shared with wrk"
    )
    print(f"{'':18}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx/3xx':>13}")
    for label, figures in (("GET /healthz", health), ("GET /c/ (click)", click)):
        print(
            f"{label:18}{figures['rate']:>10.0f}{figures['p50_ms']:>10.1f}"
            f"{figures['p99_ms']:>10.1f}{figures['bad']:>13.0f}"
        )
    print(
        f"click / healthz ratio: {ratio:.2f} (goal >= 0.50); "
        f"click p99 {click['p99_ms']:.1f} ms (goal < 20 ms)"
    )
    print(
        f"redirects answered: {answered}, clicks stored after SIGTERM: {clicks} "
        f"({'exact' if clicks == answered else 'MISMATCH'}), "
        f"row writes to click_counts: {writes}"
    )
    ok = ratio >= 0.5 and click["p99_ms"] < 20 and click["bad"] == 0 and clicks == answered
    print("goals met" if ok else "GOALS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
