"""Delivery and audience figures: exact counts, consistency while workers run, access."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from newsletter.audience import bounces
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.ops import metrics, stats
from newsletter.ops.apikeys import create_key
from tests.conftest import SmtpServer, bearer, make_settings
from tests.support.delivery import (
    add_subscribers,
    address,
    fast_worker,
    running,
    start_issue,
    wait_for_status,
)
from tests.support.ops_seed import make_subscribers, seed_issue

Client = httpx.AsyncClient


async def key_for(db: Database, role: str) -> dict[str, str]:
    async with db.pool.acquire() as conn:
        _, key = await create_key(conn, role=role, name=f"{role} test")
    return {"authorization": f"Bearer {key}"}


async def test_issue_figures_are_exact(client: Client, db: Database) -> None:
    seeded = await seed_issue(
        db, queued=5, sending=2, sent=30, failed=3, bounced=2, skipped=1, retrying=4
    )
    ops = await key_for(db, "ops")
    response = await client.get(f"/api/v1/issues/{seeded.issue_id}/stats", headers=ops)
    assert response.status_code == 200, response.text
    figures = response.json()
    assert figures["recipients"] == 47
    assert (figures["queued"], figures["sending"]) == (9, 2)  # retrying rows wait in the queue
    assert (figures["sent"], figures["failed"], figures["bounced"], figures["skipped"]) == (
        30,
        3,
        2,
        1,
    )
    assert figures["done"] == 36
    assert figures["progress"] == pytest.approx(36 / 47)
    assert figures["attempts"] == 2 * 1 + 30 + 3 + 2 + 4 * 2
    # 32 messages accepted 10 s ago (sent + later bounced), over the last minute.
    assert figures["rate_per_second"] == pytest.approx(32 / 60, abs=0.01)
    # 11 left at the measured pace (well under the 1000/s limit).
    assert figures["eta_seconds"] == pytest.approx(11 / (32 / 60), rel=0.02)
    assert figures["error_codes"] == [
        {"code": 451, "count": 4},
        {"code": 550, "count": 3},
        {"code": 552, "count": 2},
    ]
    assert figures["started_at"] is not None and figures["finished_at"] is None
    chart = figures["sends_per_minute"]
    assert len(chart) == stats.CHART_MINUTES
    assert sum(m["sent"] for m in chart) == 32


async def test_eta_uses_the_rate_limit_before_any_message_went(
    db: Database, settings: Settings
) -> None:
    seeded = await seed_issue(db, queued=100, started_seconds_ago=2)
    slow = settings.replace(rate_per_second=20.0, rate_per_hour=3600)  # 1/s by the hour
    figures = await stats.issue_stats(db, slow, seeded.issue_id)
    assert figures.rate_per_second == 0
    assert figures.rate_limit_per_second == 1.0
    assert figures.eta_seconds == 100.0


async def test_paused_issue_has_no_eta_and_finished_one_is_complete(
    db: Database, settings: Settings
) -> None:
    paused = await seed_issue(db, queued=3, sent=2, status="paused")
    assert (await stats.issue_stats(db, settings, paused.issue_id)).eta_seconds is None
    done = await seed_issue(db, sent=4, failed=1, status="sent")
    figures = await stats.issue_stats(db, settings, done.issue_id)
    assert figures.progress == 1.0 and figures.eta_seconds == 0.0


async def test_overview_counts_subscribers_and_growth(client: Client, db: Database) -> None:
    await make_subscribers(db, 4)
    await db.pool.execute(
        "INSERT INTO subscribers (email, status) VALUES ('p1@example.com', 'pending'),"
        " ('p2@example.com', 'pending')"
    )
    await db.pool.execute(
        "INSERT INTO subscribers (email, status, unsubscribed_at) "
        "VALUES ('gone@example.com', 'unsubscribed', now())"
    )
    await seed_issue(db, queued=2, sent=1)
    ops = await key_for(db, "admin")
    response = await client.get("/api/v1/stats", headers=ops)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["subscribers"] == {
        "pending": 2,
        "active": 7,  # 4 + the 3 recipients of the seeded issue
        "unsubscribed": 1,
        "suppressed": 0,
        "lapsed": 0,
    }
    growth = body["growth"]
    assert len(growth) == stats.GROWTH_DAYS
    assert growth[-1]["signups"] == 10
    assert growth[-1]["confirmations"] == 7
    assert growth[-1]["leaves"] == 1
    assert sum(day["signups"] for day in growth[:-1]) == 0
    [issue] = body["issues"]
    assert (issue["recipients"], issue["queued"], issue["sent"]) == (3, 2, 1)


async def test_stats_need_an_ops_or_admin_key(client: Client, db: Database) -> None:
    seeded = await seed_issue(db, queued=1)
    for path in ("/api/v1/stats", f"/api/v1/issues/{seeded.issue_id}/stats"):
        assert (await client.get(path)).status_code == 401
        editor = await client.get(path, headers=await key_for(db, "editor"))
        assert editor.status_code == 403
        assert editor.json()["error"] == "forbidden"
        assert (await client.get(path, headers=await key_for(db, "ops"))).status_code == 200
    missing = await client.get("/api/v1/issues/999999/stats", headers=await key_for(db, "ops"))
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    bad = await client.get("/api/v1/stats?issues=0", headers=await key_for(db, "ops"))
    assert bad.status_code in (400, 422)


async def _fake_worker(db: Database, issue_id: int, stop: asyncio.Event) -> None:
    """Moves deliveries queued -> sending -> sent/failed/bounced the way workers do:
    claim a batch with SKIP LOCKED, then settle each row in its own statement."""
    while not stop.is_set():
        claimed = await db.pool.fetch(
            """
            WITH due AS (
                SELECT id FROM deliveries WHERE issue_id = $1 AND status = 'queued'
                ORDER BY id LIMIT 7 FOR UPDATE SKIP LOCKED
            )
            UPDATE deliveries d SET status = 'sending', attempts = d.attempts + 1
            FROM due WHERE d.id = due.id RETURNING d.id
            """,
            issue_id,
        )
        if not claimed:
            return
        for row in claimed:
            outcome = random.choice(["sent"] * 8 + ["failed", "bounced"])
            await db.pool.execute(
                "UPDATE deliveries SET status = $2, sent_at = CASE WHEN $2 <> 'failed' "
                "THEN now() END, smtp_code = CASE $2 WHEN 'sent' THEN 250 ELSE 550 END "
                "WHERE id = $1",
                row["id"],
                outcome,
            )
            await asyncio.sleep(0)


async def test_figures_stay_consistent_while_workers_send(
    database_url: str, db: Database, settings: Settings
) -> None:
    seeded = await seed_issue(db, queued=600)
    workers_db = await Database.connect(database_url, min_size=4, max_size=8)
    stop = asyncio.Event()
    workers = [
        asyncio.create_task(_fake_worker(workers_db, seeded.issue_id, stop)) for _ in range(4)
    ]
    seen: list[stats.IssueStats] = []
    try:
        while not all(w.done() for w in workers):
            seen.append(await stats.issue_stats(db, settings, seeded.issue_id))
            overview = await stats.overview(db, settings)
            seen.extend(overview.issues)
    finally:
        stop.set()
        await asyncio.gather(*workers)
        await workers_db.close()
    seen.append(await stats.issue_stats(db, settings, seeded.issue_id))
    assert len(seen) > 3
    previous_done = 0
    for figures in seen:
        parts = [
            figures.queued,
            figures.sending,
            figures.sent,
            figures.failed,
            figures.bounced,
            figures.skipped,
        ]
        assert min(parts) >= 0
        assert sum(parts) == figures.recipients == 600
        assert 0.0 <= figures.progress <= 1.0
        assert 0 <= figures.done <= figures.recipients
        assert figures.rate_per_second >= 0
        assert figures.eta_seconds is None or figures.eta_seconds >= 0
        assert figures.done >= previous_done  # snapshots never run backwards
        previous_done = figures.done
    final = seen[-1]
    assert final.done == 600 and final.progress == 1.0


async def test_figures_after_a_real_send_with_failures_and_bounces(
    client: Client, database_url: str, db: Database, smtp_server: SmtpServer
) -> None:
    """The delivery engine sends to a real SMTP server that refuses two
    addresses; three DSN bounces arrive later. Stats, /metrics and the worker's
    own SMTP histogram all agree with the database."""
    settings = make_settings(database_url, smtp_server.target)
    await add_subscribers(db, 30)
    for n in (4, 9):
        smtp_server.handler.rcpt_reply[address(n)] = "550 5.1.1 No such user here"
    latency_before = smtp_count("ok")
    issue_id = await start_issue(db, settings)
    async with running(fast_worker(settings, db, "stats")):
        await wait_for_status(db, issue_id, "sent", timeout=60)
    bounced = await db.pool.fetch(
        "SELECT id, subscriber_id FROM deliveries WHERE issue_id = $1 AND status = 'sent' "
        "ORDER BY id LIMIT 3",
        issue_id,
    )
    for row in bounced:  # DSNs arriving after the send
        async with db.transaction() as conn:
            await bounces.apply(
                conn,
                subscriber_id=row["subscriber_id"],
                delivery_id=row["id"],
                kind="hard",
                source="dsn",
                code=550,
                detail="5.1.1 user unknown",
            )

    response = await client.get(
        f"/api/v1/issues/{issue_id}/stats", headers=await key_for(db, "ops")
    )
    figures = response.json()
    truth = await db.pool.fetchrow(
        "SELECT count(*) AS recipients, count(*) FILTER (WHERE status = 'sent') AS sent, "
        "count(*) FILTER (WHERE status = 'failed') AS failed, "
        "count(*) FILTER (WHERE status = 'bounced') AS bounced, "
        "sum(attempts) AS attempts FROM deliveries WHERE issue_id = $1",
        issue_id,
    )
    assert truth is not None
    assert (truth["recipients"], truth["sent"], truth["failed"], truth["bounced"]) == (30, 25, 2, 3)
    assert figures["recipients"] == 30
    assert (figures["sent"], figures["failed"], figures["bounced"]) == (25, 2, 3)
    assert (figures["queued"], figures["sending"], figures["skipped"]) == (0, 0, 0)
    assert figures["attempts"] == truth["attempts"]
    assert figures["status"] == "sent" and figures["progress"] == 1.0
    assert figures["eta_seconds"] == 0.0 and figures["finished_at"] is not None
    # The two refusals explain themselves; the DSN bounces count under `bounced`.
    assert figures["error_codes"] == [{"code": 550, "count": 2}]
    assert sum(m["sent"] for m in figures["sends_per_minute"]) == 28  # bounced were accepted

    families = {
        f.name: f.samples
        for f in text_string_to_metric_families(
            (await client.get("/metrics", headers=await bearer(db, "ops"))).text
        )
    }
    counters = {
        (s.labels["result"], s.labels["code"]): s.value
        for s in families["newsletter_messages"]
        if s.labels.get("issue_id") == str(issue_id) and s.name.endswith("_total")
    }
    assert counters == {("sent", "2xx"): 28, ("failed", "550"): 2, ("bounced", "dsn"): 3}

    # The worker ran in this process, so its own SMTP histogram saw every hand-over.
    assert smtp_count("ok") - latency_before >= 28
    assert smtp_count("permanent") >= 2


def smtp_count(outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "newsletter_smtp_send_seconds_count", {"outcome": outcome}
    )
    return value or 0.0
