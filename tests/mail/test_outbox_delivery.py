"""Transactional mail through the outbox: never inline, never lost, never doubled."""

from __future__ import annotations

import asyncio
from email import policy
from email.parser import BytesParser

import httpx

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.core.tokens import Tokens
from newsletter.delivery.worker import Worker
from newsletter.mail import outbox
from tests.conftest import SmtpServer, drain
from tests.support.delivery import add_subscribers, address, fast_worker, start_issue

SIGNUP = {"email": "resident@example.com", "name": "김포 시민", "consent": "on"}


async def make_due_now(db: Database) -> None:
    """Stand-in for the backoff delay passing."""
    await db.pool.execute("UPDATE outbox SET next_attempt_at = now() WHERE status = 'queued'")


async def test_smtp_down_then_up_delivers_exactly_once(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    response = await client.post("/subscribe", data=SIGNUP)
    assert response.status_code == 200  # the page does not depend on SMTP at all

    await drain(settings, db)
    row = await db.pool.fetchrow("SELECT status, attempts, deferrals, last_error FROM outbox")
    assert row is not None
    assert row["status"] == "queued"
    assert row["attempts"] == 0  # an outage is not counted against MAX_ATTEMPTS
    assert row["deferrals"] == 1
    assert row["last_error"]

    smtp_server.start()
    await make_due_now(db)
    await drain(settings, db)
    await make_due_now(db)
    await drain(settings, db)
    assert len(smtp_server.handler.to(SIGNUP["email"])) == 1
    assert await db.pool.fetchval("SELECT status FROM outbox") == "sent"


async def test_permanent_refusal_is_not_retried(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    smtp_server.handler.rcpt_reply[SIGNUP["email"]] = "550 5.1.1 no such user"
    await client.post("/subscribe", data=SIGNUP)
    await drain(settings, db)
    await make_due_now(db)
    await drain(settings, db)
    row = await db.pool.fetchrow("SELECT status, attempts, smtp_code FROM outbox")
    assert row is not None
    assert (row["status"], row["attempts"], row["smtp_code"]) == ("failed", 1, 550)


async def test_transient_refusals_give_up_after_max_attempts(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    settings = settings.replace(max_attempts=3)
    smtp_server.handler.rcpt_reply[SIGNUP["email"]] = "452 4.2.2 mailbox full"
    await client.post("/subscribe", data=SIGNUP)
    for _ in range(5):
        await drain(settings, db)
        await make_due_now(db)
    row = await db.pool.fetchrow("SELECT status, attempts, smtp_code FROM outbox")
    assert row is not None
    assert (row["status"], row["attempts"], row["smtp_code"]) == ("failed", 3, 452)


async def test_mail_is_well_formed_utf8_with_korean_subject(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    await client.post("/subscribe", data=SIGNUP)
    await drain(settings, db)
    [captured] = smtp_server.handler.to(SIGNUP["email"])
    raw = captured.data
    assert raw.isascii() or b"8bit" in raw  # no raw UTF-8 in headers without 8BITMIME
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "[김포시 뉴스레터] 구독 확인을 부탁드립니다"
    assert b"=?utf-8?" in raw.split(b"\r\n\r\n", 1)[0].lower()  # RFC 2047 on the wire
    assert message["Message-ID"] and message["Date"]
    parts = {part.get_content_type(): part for part in message.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    for part in parts.values():
        assert part.get_content_charset() == "utf-8"
        assert "김포시 뉴스레터" in part.get_content()
        # The name was typed by whoever typed the address: it is not echoed to the inbox.
        assert "김포 시민" not in part.get_content()
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998


async def test_two_workers_never_send_the_same_mail(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    for index in range(settings.signup_limit_per_ip_per_hour):
        await client.post("/subscribe", data={"email": f"r{index}@example.com", "consent": "on"})
    small_batches = settings.replace(batch_size=4)
    first, second = Worker(small_batches, db, "w1"), Worker(small_batches, db, "w2")

    async def run(worker: Worker) -> None:
        while await worker.run_once():
            await asyncio.sleep(0)
        await worker.smtp.close()

    await asyncio.gather(run(first), run(second))
    recipients = [r for m in smtp_server.handler.messages for r in m.rcpt_tos]
    assert len(recipients) == len(set(recipients))
    sent: int = await db.pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'sent'")
    assert sent == len(recipients) == settings.signup_limit_per_ip_per_hour


async def test_notices_to_one_address_are_capped_per_day(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    # Confirming and leaving over and over: each is a real change with its
    # own notice, but one mailbox gets only a day's share of mail.
    tokens = Tokens(settings.secret_key)
    await client.post("/subscribe", data={"email": "yoyo@example.com", "consent": "on"})
    found = await db.fetchrow("get_subscriber_by_email", "yoyo@example.com")
    assert found is not None
    for _ in range(6):
        # Pending again, as after a fresh signup (whose own limits are tested elsewhere).
        await db.pool.execute(
            "UPDATE subscribers SET status = 'pending', unsubscribed_at = NULL WHERE id = $1",
            found["id"],
        )
        confirm = tokens.confirm(found["public_id"])
        assert (await client.post("/confirm", data={"token": confirm})).status_code == 200
        await drain(settings, db)
        leave = tokens.unsubscribe(found["public_id"])
        assert (await client.post(f"/unsubscribe?token={leave}")).status_code == 200
        await drain(settings, db)
    assert len(smtp_server.handler.to("yoyo@example.com")) == outbox.NOTICES_PER_ADDRESS_PER_DAY
    assert await db.pool.fetchval("SELECT status FROM subscribers") == "unsubscribed"


async def test_an_issue_goes_out_while_a_flood_of_notices_waits(
    db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    settings = settings.replace(batch_size=20)
    await add_subscribers(db, 31)  # r00031 is the flooded mailbox, the others read the issue
    flooded = await db.fetchrow("get_subscriber_by_email", address(31))
    assert flooded is not None
    await db.pool.execute(
        """
        INSERT INTO outbox (kind, priority, recipient, subscriber_id, payload)
        SELECT 'opt_in_notice', $1, $2, $3,
               jsonb_build_object('subscriber_id', $3::bigint, 'name', NULL,
                                  'at', now(), 'language', 'ko')
        FROM generate_series(1, 200)
        """,
        outbox.PRIORITY_NOTICE,
        address(31),
        flooded["id"],
    )
    await db.pool.execute(
        "UPDATE subscribers SET status = 'unsubscribed' WHERE id = $1", flooded["id"]
    )
    issue_id = await start_issue(db, settings)
    worker = fast_worker(settings, db, "flood")
    try:
        for _ in range(2):
            await worker.run_once()
    finally:
        await worker.smtp.close()
    readers = {address(n) for n in range(1, 31)}
    got_issue = {r for m in smtp_server.handler.messages for r in m.rcpt_tos if r in readers}
    assert got_issue == readers  # the whole issue in the first two rounds
    waiting = await db.pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'queued'")
    assert waiting >= 200 - 2 * settings.batch_size  # the notices still wait their turn
    sent = await db.pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE issue_id = $1 AND status = 'sent'", issue_id
    )
    assert sent == 30
