"""Sending an issue end to end: real PostgreSQL, real SMTP servers (aiosmtpd),
several workers at once, failures, pause/resume, unsubscribe mid-send."""

from __future__ import annotations

import asyncio

from newsletter.audience import subscribers
from newsletter.audience.subscribers import Evidence
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.core.tokens import SubscriberRef
from newsletter.editorial import issues
from tests.conftest import SmtpServer, make_settings
from tests.support.delivery import (
    EDITOR,
    add_subscribers,
    address,
    assert_each_got_one,
    fast_worker,
    handler_of,
    issue_status,
    max_per_window,
    running,
    start_issue,
    status_counts,
    timed_smtp,
    wait_for_status,
)

__all__ = ["timed_smtp"]  # fixture


def settings_for(database_url: str, server: SmtpServer, **overrides: object) -> Settings:
    return make_settings(database_url, server.target, **overrides)


async def test_two_workers_send_each_recipient_exactly_one_copy(
    database_url: str, db: Database, timed_smtp: SmtpServer
) -> None:
    settings = settings_for(database_url, timed_smtp, smtp_connections=4, batch_size=100)
    await add_subscribers(db, 2000)
    issue_id = await start_issue(db, settings)
    assert await status_counts(db, issue_id) == {"queued": 2000}

    db2 = await Database.connect(database_url, min_size=1, max_size=5)
    try:
        async with running(fast_worker(settings, db, "one"), fast_worker(settings, db2, "two")):
            await wait_for_status(db, issue_id, "sent", timeout=120)
    finally:
        await db2.close()

    assert_each_got_one(handler_of(timed_smtp), 2000)
    assert await status_counts(db, issue_id) == {"sent": 2000}
    finished = await db.pool.fetchval("SELECT finished_at FROM issues WHERE id = $1", issue_id)
    assert finished is not None


async def test_server_refusing_with_421_for_a_while_then_everyone_gets_it(
    database_url: str, db: Database, smtp_server: SmtpServer
) -> None:
    settings = settings_for(database_url, smtp_server, smtp_connections=3, max_attempts=2)
    await add_subscribers(db, 60)
    issue_id = await start_issue(db, settings)
    smtp_server.handler.data_reply = "421 4.7.0 Too many requests, try later"
    async with running(fast_worker(settings, db, "one")):
        await asyncio.sleep(1.5)
        # However long the refusal lasts, nothing is failed and the issue stays open.
        assert await issue_status(db, issue_id) == "sending"
        assert "failed" not in await status_counts(db, issue_id)
        smtp_server.handler.data_reply = None
        await wait_for_status(db, issue_id, "sent", timeout=60)
    assert await status_counts(db, issue_id) == {"sent": 60}
    delivered = {r.lower() for m in smtp_server.handler.messages for r in m.rcpt_tos}
    assert delivered == {address(n) for n in range(1, 61)}


async def test_450_too_many_requests_never_uses_up_attempts(
    database_url: str, db: Database, smtp_server: SmtpServer
) -> None:
    settings = settings_for(database_url, smtp_server, smtp_connections=2, max_attempts=2)
    await add_subscribers(db, 20)
    issue_id = await start_issue(db, settings)
    for n in range(1, 21):  # the receiving server throttles us per recipient
        smtp_server.handler.rcpt_reply[address(n)] = "450 4.7.28 Too many requests, slow down"
    async with running(fast_worker(settings, db, "one")):
        await asyncio.sleep(1.5)  # several rounds: far more than max_attempts=2
        assert await issue_status(db, issue_id) == "sending"
        counts = await status_counts(db, issue_id)
        assert "failed" not in counts
        attempts = await db.pool.fetchval(
            "SELECT max(attempts) FROM deliveries WHERE issue_id = $1", issue_id
        )
        assert attempts <= 1  # a throttling reply is not the recipient's failure
        smtp_server.handler.rcpt_reply.clear()
        await wait_for_status(db, issue_id, "sent", timeout=60)
    assert await status_counts(db, issue_id) == {"sent": 20}
    suppressed = await db.pool.fetchval(
        "SELECT count(*) FROM subscribers WHERE status = 'suppressed'"
    )
    assert suppressed == 0


async def test_550_recipients_fail_and_are_suppressed_the_rest_delivered(
    database_url: str, db: Database, smtp_server: SmtpServer
) -> None:
    settings = settings_for(database_url, smtp_server)
    await add_subscribers(db, 50)
    bad = {address(7), address(23)}
    for rcpt in bad:
        smtp_server.handler.rcpt_reply[rcpt] = "550 5.1.1 No such user here"
    smtp_server.handler.rcpt_reply[address(30)] = "452 4.2.2 Mailbox full, try later"
    issue_id = await start_issue(db, settings)
    async with running(fast_worker(settings, db, "one", retry_base_seconds=0.05)):
        await asyncio.sleep(0.5)
        del smtp_server.handler.rcpt_reply[address(30)]  # the 4xx clears up
        await wait_for_status(db, issue_id, "sent", timeout=60)

    assert await status_counts(db, issue_id) == {"sent": 48, "failed": 2}
    for rcpt in bad:
        row = await db.fetchrow("get_subscriber_by_email", rcpt)
        assert row is not None and row["status"] == "suppressed"
        assert "550" in row["suppressed_reason"]
        assert smtp_server.handler.to(rcpt) == []
    retried = await db.fetchrow("get_subscriber_by_email", address(30))
    assert retried is not None and retried["status"] == "active"  # a 4xx is not a bounce
    assert retried["soft_bounces"] == 0
    assert len(smtp_server.handler.to(address(30))) == 1


async def test_rate_limit_holds_across_two_workers(
    database_url: str, db: Database, timed_smtp: SmtpServer
) -> None:
    settings = settings_for(database_url, timed_smtp, rate_per_second=50.0, batch_size=40)
    await add_subscribers(db, 250)
    issue_id = await start_issue(db, settings)
    db2 = await Database.connect(database_url, min_size=1, max_size=5)
    try:
        async with running(fast_worker(settings, db, "one"), fast_worker(settings, db2, "two")):
            await wait_for_status(db, issue_id, "sent", timeout=60)
    finally:
        await db2.close()
    arrivals = handler_of(timed_smtp).arrivals
    assert len(arrivals) == 250
    assert max_per_window(arrivals) <= 55


async def test_pause_then_resume_sends_everyone_once(
    database_url: str, db: Database, timed_smtp: SmtpServer
) -> None:
    settings = settings_for(database_url, timed_smtp, rate_per_second=200.0, batch_size=50)
    await add_subscribers(db, 300)
    issue_id = await start_issue(db, settings)
    handler = handler_of(timed_smtp)
    async with running(fast_worker(settings, db, "one")):
        while len(handler.messages) < 60:
            await asyncio.sleep(0.02)
        await issues.pause(db, EDITOR, issue_id)
        await asyncio.sleep(0.3)  # one chunk may still be on the wire
        paused_at = len(handler.messages)
        await asyncio.sleep(0.7)
        assert len(handler.messages) == paused_at, "mail kept going out while paused"
        assert paused_at < 300
        counts = await status_counts(db, issue_id)
        assert counts.get("sending", 0) == 0, "a paused issue's batch was not released"
        await issues.resume(db, EDITOR, issue_id)
        await wait_for_status(db, issue_id, "sent", timeout=60)
    assert_each_got_one(handler, 300)
    assert await status_counts(db, issue_id) == {"sent": 300}


async def test_unsubscribe_mid_send_stops_mail_to_that_address(
    database_url: str, db: Database, timed_smtp: SmtpServer
) -> None:
    # A slow rate and big batches: the leaver's delivery is already claimed
    # by the worker when they unsubscribe, so only the send-time check saves it.
    settings = settings_for(database_url, timed_smtp, rate_per_second=100.0, batch_size=200)
    await add_subscribers(db, 200)
    leaver = address(150)
    issue_id = await start_issue(db, settings)
    handler = handler_of(timed_smtp)
    async with running(fast_worker(settings, db, "one")):
        while len(handler.messages) < 20:
            await asyncio.sleep(0.01)
        claimed = await db.pool.fetchval(
            "SELECT d.status FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
            "WHERE s.email = $1",
            leaver,
        )
        assert claimed == "sending"
        row = await db.fetchrow("get_subscriber_by_email", leaver)
        assert row is not None
        await subscribers.unsubscribe(
            db,
            ref=SubscriberRef(public_id=row["public_id"]),
            evidence=Evidence(None, None, "test", settings.consent_version),
        )
        await wait_for_status(db, issue_id, "sent", timeout=60)
    leaver_mail = [
        m for m in handler.to(leaver) if "수신 거부 처리" not in str(m.message["Subject"])
    ]
    assert leaver_mail == []
    assert await status_counts(db, issue_id) == {"sent": 199, "skipped": 1}
