"""Consent over time: re-confirmation, lapse, retention purge, erasure (time-travel tests)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from typing import Any

import httpx
import time_machine

from newsletter.audience import lifecycle, subscribers
from newsletter.audience.subscribers import Evidence, suppression_hash
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.core.tokens import SubscriberRef, Tokens
from newsletter.mail.transactional import MailContext, render_outbox
from tests.conftest import SmtpServer, drain
from tests.support.roster import ADMIN, import_text, status_of

START = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)  # 09:00 in Seoul


async def _outbox(db: Database, kind: str) -> list[dict[str, Any]]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT o.kind, o.recipient, o.payload, s.public_id FROM outbox o "
            "LEFT JOIN subscribers s ON s.id = o.subscriber_id WHERE o.kind = $1 ORDER BY o.id",
            kind,
        )
    # The payload as the worker renders it: with the subscriber's public id.
    return [
        {**dict(row), "payload": {**row["payload"], "public_id": row["public_id"]}} for row in rows
    ]


async def _queue_issue_for(db: Database, email: str) -> int:
    async with db.transaction() as conn:
        issue_id: int = await conn.fetchval(
            "INSERT INTO issues (title, status) VALUES ('소식', 'sending') RETURNING id"
        )
        await conn.execute(
            "INSERT INTO deliveries (issue_id, subscriber_id) "
            "SELECT $1, id FROM subscribers WHERE email = $2",
            issue_id,
            email,
        )
    return issue_id


async def test_reconfirmation_then_lapse_then_retention_purge(
    db: Database, settings: Settings, client: httpx.AsyncClient
) -> None:
    with time_machine.travel(START, tick=True):
        await import_text(
            db,
            settings,
            "email,name,subscribed_at,source\n"
            "old@example.com,오래된,2024-01-01,설문\n"
            "silent@example.com,무응답,2024-01-01,설문\n"
            "fresh@example.com,최근,2025-12-01,설문\n",
            now=datetime.now(UTC),
        )
        result = await lifecycle.run_daily_jobs(db, settings, datetime.now(UTC))
        assert result == {"lapsed": 0, "reconfirm_sent": 2, "purged": 0, "access_log_purged": 0}
        # Same day again (another worker, another tick): nothing.
        assert await lifecycle.run_daily_jobs(db, settings, datetime.now(UTC)) == {}

        mails = await _outbox(db, "reconfirm")
        assert sorted(m["recipient"] for m in mails) == ["old@example.com", "silent@example.com"]
        old_mail = next(m for m in mails if m["recipient"] == "old@example.com")
        context = MailContext(settings, Tokens(settings.secret_key))
        message = render_outbox(context, "reconfirm", "old@example.com", old_mail["payload"])
        text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        assert "2년마다" in text
        assert re.search(r"2026년 02월 09일 \d\d:\d\d \(KST\)", text)  # the deadline, in Seoul time
        match = re.search(r"/reconfirm\?token=([\w.\-]+)", text)
        assert match
        page = await client.get(f"/reconfirm?token={match.group(1)}")
        assert page.status_code == 200 and "수신 동의 유지" in page.text
        answer = await client.post("/reconfirm", data={"token": match.group(1)})
        assert answer.status_code == 200 and "유지되었습니다" in answer.text

        found = await db.fetchrow("get_subscriber_by_email", "old@example.com")
        assert found is not None
        old = await db.fetchrow("roster_get", found["id"])
        assert old is not None and old["reconfirm_sent_at"] is None
        assert abs(old["last_consent_at"] - datetime.now(UTC)) < timedelta(minutes=1)
        [notice] = await _outbox(db, "reconfirm_notice")
        assert notice["recipient"] == "old@example.com"
        rendered = render_outbox(context, "reconfirm_notice", "old@example.com", notice["payload"])
        assert "재확인 처리 결과" in str(rendered["Subject"])

        issue_id = await _queue_issue_for(db, "silent@example.com")

    with time_machine.travel(START + timedelta(days=31), tick=True):
        result = await lifecycle.run_daily_jobs(db, settings, datetime.now(UTC))
        assert result == {"lapsed": 1, "reconfirm_sent": 0, "purged": 0, "access_log_purged": 0}
        assert await status_of(db, "silent@example.com") == "lapsed"
        assert await status_of(db, "old@example.com") == "active"
        notices = await _outbox(db, "reconfirm_notice")
        assert [n["recipient"] for n in notices][-1] == "silent@example.com"
        assert notices[-1]["payload"]["result"] == "lapsed"
        async with db.pool.acquire() as conn:
            status = await conn.fetchval(
                "SELECT status FROM deliveries WHERE issue_id = $1", issue_id
            )
        assert status == "skipped"  # a lapsed address gets no more issues

    with time_machine.travel(START + timedelta(days=31 + 31), tick=True):
        result = await lifecycle.run_daily_jobs(db, settings, datetime.now(UTC))
        assert result["purged"] == 1
        assert await status_of(db, "silent@example.com") is None
        async with db.pool.acquire() as conn:
            kept = await conn.fetchrow(
                "SELECT subscriber_id, status FROM deliveries WHERE issue_id = $1", issue_id
            )
            departed = await conn.fetchval(
                "SELECT count(*) FROM departed_addresses WHERE email_hash = $1",
                suppression_hash(db.address_key, "silent@example.com"),
            )
            leftovers = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE recipient = 'silent@example.com'"
            )
        assert kept is not None and kept["subscriber_id"] is None  # counts stay, the person goes
        assert departed == 1
        assert leftovers == 0
        # An admin cannot bring them back by import ...
        report = await import_text(db, settings, "silent@example.com\n", now=datetime.now(UTC))
        assert report.skipped == 1 and "left" in report.skipped_rows[0].reason
        # ... but the resident can subscribe again themselves (double opt-in).
        await subscribers.sign_up(
            db,
            settings,
            email="silent@example.com",
            name=None,
            consent=True,
            evidence=Evidence(None, None, "/subscribe", settings.consent_version),
        )
        assert await status_of(db, "silent@example.com") == "pending"


async def test_daily_job_runs_once_with_several_workers(db: Database, settings: Settings) -> None:
    with time_machine.travel(START, tick=True):
        await import_text(db, settings, "a@example.com,,2020-01-01,x\n", now=datetime.now(UTC))
        now = datetime.now(UTC)
        results = await asyncio.gather(
            *(lifecycle.run_daily_jobs(db, settings, now) for _ in range(4))
        )
        assert sorted(bool(r) for r in results) == [False, False, False, True]
        assert len(await _outbox(db, "reconfirm")) == 1
        # The next local day runs again (and finds nothing new to send).
        tomorrow = await lifecycle.run_daily_jobs(db, settings, now + timedelta(days=1))
        assert tomorrow == {"lapsed": 0, "reconfirm_sent": 0, "purged": 0, "access_log_purged": 0}


async def test_unsubscribed_data_destroyed_after_retention(
    db: Database, settings: Settings
) -> None:
    settings = settings.replace(retention_days=30)
    with time_machine.travel(START, tick=True):
        await import_text(db, settings, "leaver@example.com,떠남\n", now=datetime.now(UTC))
        row = await db.fetchrow("get_subscriber_by_email", "leaver@example.com")
        assert row is not None
        await subscribers.unsubscribe(
            db,
            ref=SubscriberRef(public_id=row["public_id"]),
            evidence=Evidence(None, None, "/unsubscribe", settings.consent_version),
        )
    async with db.transaction() as conn:  # the database clock is not travelling
        await conn.execute(
            "UPDATE subscribers SET unsubscribed_at = $1 WHERE id = $2", START, row["id"]
        )
    with time_machine.travel(START + timedelta(days=29), tick=True):
        assert (await lifecycle.run_daily_jobs(db, settings, datetime.now(UTC)))["purged"] == 0
        assert await status_of(db, "leaver@example.com") == "unsubscribed"
    with time_machine.travel(START + timedelta(days=30, hours=1), tick=True):
        assert (await lifecycle.run_daily_jobs(db, settings, datetime.now(UTC)))["purged"] == 1
        assert await status_of(db, "leaver@example.com") is None
        async with db.pool.acquire() as conn:
            events = await conn.fetchval(
                "SELECT count(*) FROM consent_events WHERE subscriber_id = $1", row["id"]
            )
        assert events == 0


async def test_erase_keeps_counts_and_a_hash_but_not_the_address(
    db: Database, settings: Settings
) -> None:
    await import_text(db, settings, "erase-me@example.com,지움\n")
    issue_id = await _queue_issue_for(db, "erase-me@example.com")
    erased = await lifecycle.erase_address(db, settings, email="erase-me@example.com", actor=ADMIN)
    assert erased.subscriber_id is not None
    async with db.pool.acquire() as conn:
        delivery = await conn.fetchrow(
            "SELECT subscriber_id, status FROM deliveries WHERE issue_id = $1", issue_id
        )
        reason = await conn.fetchval(
            "SELECT reason FROM suppressions WHERE email_hash = $1",
            suppression_hash(db.address_key, "erase-me@example.com"),
        )
        audit_rows = await conn.fetch(
            "SELECT actor, action, target, details::text AS details, occurred_at FROM audit_log "
            "WHERE action = 'subscriber.erase'"
        )
        anywhere = await conn.fetchval(
            "SELECT count(*) FROM consent_events WHERE subscriber_id = $1", erased.subscriber_id
        )
    assert delivery is not None
    assert (delivery["subscriber_id"], delivery["status"]) == (None, "skipped")
    assert reason == "erased"
    [entry] = audit_rows
    assert entry["actor"] == "test admin"
    assert entry["target"] == f"subscriber:{erased.subscriber_id}"
    assert "erase-me" not in json.dumps(dict(entry), default=str)
    assert anywhere == 0
    # Erasing an unknown address still keeps it out for good.
    unknown = await lifecycle.erase_address(db, settings, email="never@example.com", actor=ADMIN)
    assert unknown.subscriber_id is None
    report = await import_text(db, settings, "never@example.com\n")
    assert report.skipped == 1


async def test_a_reconfirmation_link_acts_once_however_often_it_is_posted(
    db: Database, settings: Settings, client: httpx.AsyncClient, smtp_server: SmtpServer
) -> None:
    with time_machine.travel(START, tick=True):
        await import_text(
            db,
            settings,
            "email,name,subscribed_at,source\nold@example.com,오래된,2024-01-01,설문\n",
            now=datetime.now(UTC),
        )
        await lifecycle.run_daily_jobs(db, settings, datetime.now(UTC))
        [request_mail] = await _outbox(db, "reconfirm")
        context = MailContext(settings, Tokens(settings.secret_key))
        message = render_outbox(context, "reconfirm", "old@example.com", request_mail["payload"])
        text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        match = re.search(r"/reconfirm\?token=([\w.\-]+)", text)
        assert match
        token = match.group(1)
        # The same link posted 50 times, five at a time as a script would.
        for _ in range(10):
            answers = await asyncio.gather(
                *(client.post("/reconfirm", data={"token": token}) for _ in range(5))
            )
            for answer in answers:
                assert answer.status_code == 200 and "유지되었습니다" in answer.text

    found = await db.fetchrow("get_subscriber_by_email", "old@example.com")
    assert found is not None
    events = await db.pool.fetchval(
        "SELECT count(*) FROM consent_events WHERE subscriber_id = $1 AND kind = 'reconfirm'",
        found["id"],
    )
    assert events == 1
    assert len(await _outbox(db, "reconfirm_notice")) == 1
    # What the resident's mailbox gets from the real worker: the request, one result.
    await drain(settings, db)
    subjects = [
        str(BytesParser(policy=policy.default).parsebytes(mail.data)["Subject"])
        for mail in smtp_server.handler.to("old@example.com")
    ]
    assert len(subjects) == 2
    assert sum("재확인 처리 결과" in subject for subject in subjects) == 1
