"""Transactional mail through the outbox: never inline, never lost, never doubled."""

from __future__ import annotations

import asyncio
from email import policy
from email.parser import BytesParser

import httpx

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.delivery.worker import Worker
from tests.conftest import SmtpServer, drain

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
