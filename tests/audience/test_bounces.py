"""Bounces arriving later as messages: parsed with flufl.bounce, matched by
VERP return path, Message-ID or address, and the bounce policy applied."""

from __future__ import annotations

import asyncio
import mailbox
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from newsletter.app import create_app
from newsletter.audience import bounces
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.core.signing import OUTBOX_MSGID_PURPOSE, OUTBOX_VERP_PURPOSE, signature
from newsletter.mail import outbox
from newsletter.ops.apikeys import create_key
from tests.conftest import ROOT, SmtpServer, drain, make_settings
from tests.support.console import login, make_user
from tests.support.delivery import add_subscribers, address, start_issue


def dsn(
    *,
    to: str,
    recipient: str,
    status: str = "5.1.1",
    action: str = "failed",
    diagnostic: str = "smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown",
    original_headers: str = "",
) -> bytes:
    """An RFC 3464 delivery status notification as Postfix writes it."""
    return (
        f"From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n"
        f"To: {to}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        f"\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
        f"I'm sorry to have to inform you that your message could not be delivered.\r\n"
        f"\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: {diagnostic.format(r=recipient)}\r\n"
        f"\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{original_headers or 'Subject: something'}\r\n"
        f"\r\n--B--\r\n"
    ).encode()


async def sent_issue(db: Database, settings: Settings, count: int = 5) -> int:
    await add_subscribers(db, count)
    issue_id = await start_issue(db, settings)
    await drain(settings, db)
    return issue_id


async def subscriber(db: Database, email: str) -> dict[str, object]:
    row = await db.fetchrow("get_subscriber_by_email", email)
    assert row is not None
    return dict(row)


async def ops_headers(db: Database, role: str = "ops") -> dict[str, str]:
    async with db.transaction() as conn:
        _, key = await create_key(conn, role=role, name=f"test-{role}")
    return {"authorization": f"Bearer {key}", "content-type": "message/rfc822"}


async def test_dsn_to_the_verp_address_suppresses_that_subscriber(
    database_url: str, db: Database, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database_url, smtp_server.target, bounce_address="bounce@gimpo.go.kr")
    issue_id = await sent_issue(db, settings)
    [mail] = smtp_server.handler.to(address(3))
    assert mail.mail_from.startswith("bounce+") and mail.mail_from.endswith("@gimpo.go.kr")

    # The remote MTA bounces to the envelope sender and names a different
    # (rewritten) address: VERP still finds the right subscriber.
    body = dsn(to=mail.mail_from, recipient="alias-of-r3@example.com")
    response = await client.post("/api/v1/bounces", content=body, headers=await ops_headers(db))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "applied"
    [applied] = result["applied"]
    assert applied["matched_by"] == "verp" and applied["action"] == "suppressed"

    row = await subscriber(db, address(3))
    assert row["status"] == "suppressed"
    assert "5.1.1" in str(row["suppressed_reason"])
    status = await db.pool.fetchval(
        "SELECT status FROM deliveries WHERE issue_id = $1 AND subscriber_id = $2",
        issue_id,
        row["id"],
    )
    assert status == "bounced"
    assert (await subscriber(db, address(4)))["status"] == "active"


async def test_a_signed_dsn_keeps_its_enhanced_code_and_no_address(
    database_url: str, db: Database, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    """The report's words are kept for ops (why the subscriber was suppressed,
    the bounce event, the delivery's last reply) with the address masked, and
    its enhanced code in the delivery's own column for the delivery record."""
    settings = make_settings(database_url, smtp_server.target, bounce_address="bounce@gimpo.go.kr")
    issue_id = await sent_issue(db, settings)
    [mail] = smtp_server.handler.to(address(2))
    body = dsn(to=mail.mail_from, recipient=address(2))
    response = await client.post("/api/v1/bounces", content=body, headers=await ops_headers(db))
    assert response.json()["status"] == "applied", response.text

    row = await db.pool.fetchrow(
        "SELECT d.status, d.enhanced_code, d.last_error, s.suppressed_reason, b.detail"
        " FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
        " JOIN bounce_events b ON b.delivery_id = d.id WHERE s.email = $1",
        address(2),
    )
    assert row is not None
    assert (row["status"], row["enhanced_code"]) == ("bounced", "5.1.1")
    for kept in (row["last_error"], row["suppressed_reason"], row["detail"]):
        assert address(2) not in kept
        assert "<r***@example.com>: Recipient address rejected: User unknown" in kept
    answer = await client.get(
        f"/api/v1/issues/{issue_id}/deliveries?status=bounced", headers=await ops_headers(db)
    )
    [reason] = answer.json()["reasons"]
    assert reason["reason"] == "bounced_unknown"


def soft_dsn(to: str, recipient: str, *, original_headers: str = "", report_id: str = "") -> bytes:
    body = dsn(
        to=to,
        recipient=recipient,
        status="5.2.2",
        diagnostic="smtp; 552 5.2.2 Mailbox full",
        original_headers=original_headers,
    )
    if report_id:  # the reporting MTA's own Message-ID for its report
        body = f"Message-ID: <{report_id}@mx.example.com>\r\n".encode() + body
    return body


async def test_match_by_message_id_and_soft_bounce_threshold_across_deliveries(
    database_url: str, db: Database, smtp_server: SmtpServer
) -> None:
    settings = make_settings(database_url, smtp_server.target)  # no VERP
    await sent_issue(db, settings)
    [mail] = smtp_server.handler.to(address(1))
    message_id = str(mail.message["Message-ID"])

    by_id = await bounces.process(
        db,
        settings,
        dsn(
            to="news@gimpo.go.kr",
            recipient="forwarded@elsewhere.example",
            original_headers=f"Message-ID: {message_id}\r\nSubject: x",
        ),
    )
    assert [(a.matched_by, a.action) for a in by_id.applied] == [("message-id", "suppressed")]
    assert (await subscriber(db, address(1)))["status"] == "suppressed"

    # Mailbox full is soft: one count per delivery, suppressed at the
    # threshold -- three issues, three genuine (signed) reports.
    for n in range(1, bounces.SOFT_BOUNCE_LIMIT + 1):
        if n > 1:
            await start_issue(db, settings)
            await drain(settings, db)
        mail = smtp_server.handler.to(address(2))[-1]
        result = await bounces.process(
            db,
            settings,
            soft_dsn(
                "news@gimpo.go.kr",
                address(2),
                original_headers=f"Message-ID: {mail.message['Message-ID']}",
            ),
        )
        [applied] = result.applied
        assert applied.matched_by == "message-id"
        row = await subscriber(db, address(2))
        assert row["soft_bounces"] == n
        expected = "suppressed" if n == bounces.SOFT_BOUNCE_LIMIT else "active"
        assert row["status"] == expected

    # A delay notice is not a bounce.
    delayed = await bounces.process(
        db,
        settings,
        dsn(to="news@gimpo.go.kr", recipient=address(4), status="4.4.7", action="delayed"),
    )
    assert delayed.applied == [] and delayed.ignored
    assert (await subscriber(db, address(4)))["status"] == "active"

    unknown = await bounces.process(
        db, settings, dsn(to="news@gimpo.go.kr", recipient="stranger@example.net")
    )
    assert unknown.unmatched == ["stranger@example.net"]


async def test_an_unsigned_bounce_naming_an_address_changes_nobody_and_ops_see_it(
    db: Database, settings: Settings, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    """Anyone can mail the bounce mailbox: a hard-bounce DSN naming a
    subscriber's address, without our VERP or Message-ID, must not silence them."""
    await sent_issue(db, settings, count=3)
    headers = await ops_headers(db)
    forged = dsn(to="news@gimpo.go.kr", recipient=address(2))
    response = await client.post("/api/v1/bounces", content=forged, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "unverified"
    assert [(a["matched_by"], a["action"]) for a in body["applied"]] == [("address", "unverified")]
    row = await subscriber(db, address(2))
    assert row["status"] == "active" and row["soft_bounces"] == 0

    # The next issue still goes to them.
    await start_issue(db, settings)
    await drain(settings, db)
    assert len(smtp_server.handler.to(address(2))) == 2

    # Ops see the report: a count on /api/v1/stats and /ops, the list (masked).
    stats = (await client.get("/api/v1/stats", headers=headers)).json()
    assert stats["unverified_bounces"] == 1
    watcher = await make_user(db, "ops")
    await login(client, watcher.email)
    page = await client.get("/admin/ops")
    assert page.status_code == 200, page.text
    assert "서명 없는 반송 보고" in page.text and "<strong>1</strong>건" in page.text
    listed = (await client.get("/api/v1/bounces/unverified", headers=headers)).json()
    [item] = listed["items"]
    assert item["subscriber_id"] == row["id"] and item["kind"] == "hard"
    assert address(2) not in str(item["detail"]) and "@example.com" in str(item["detail"])


async def test_each_report_is_applied_once_and_a_delivery_counts_one_soft_bounce(
    database_url: str, db: Database, smtp_server: SmtpServer
) -> None:
    settings = make_settings(database_url, smtp_server.target, bounce_address="bounce@gimpo.go.kr")
    await sent_issue(db, settings, count=2)
    [mail] = smtp_server.handler.to(address(1))
    report = soft_dsn(mail.mail_from, address(1), report_id="report-1")

    # A cron job re-reading the mailbox hands in the same report three times.
    first, *repeats = [await bounces.process(db, settings, report) for _ in range(3)]
    assert [a.action for a in first.applied] == ["counted"]
    assert [r.status for r in repeats] == ["duplicate", "duplicate"]
    # The same bytes without a Message-ID are known by their hash.
    no_id = soft_dsn(mail.mail_from, address(1))
    assert (await bounces.process(db, settings, no_id)).applied[0].action == "already counted"
    assert (await bounces.process(db, settings, no_id)).status == "duplicate"
    # The relay reports the same delivery again under new Message-IDs: still one.
    for n in (2, 3, 4):
        again = await bounces.process(
            db, settings, soft_dsn(mail.mail_from, address(1), report_id=f"report-{n}")
        )
        assert [a.action for a in again.applied] == ["already counted"]
    row = await subscriber(db, address(1))
    assert row["status"] == "active" and row["soft_bounces"] == 1


async def test_bounce_size_cap_on_the_api_and_the_command(
    database_url: str, db: Database, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    settings = make_settings(database_url, smtp_server.target, bounce_max_bytes=4096)
    app = create_app(settings, db)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    headers = await ops_headers(db)
    big = dsn(to="news@gimpo.go.kr", recipient="x@example.org") + b"x" * 5000
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        refused = await http.post("/api/v1/bounces", content=big, headers=headers)
        assert refused.status_code == 413, refused.text
        assert refused.json()["error"] == "payload_too_large"
        assert "BOUNCE_MAX_BYTES" in refused.json()["detail"]
        small = dsn(to="news@gimpo.go.kr", recipient="x@example.org")
        assert (
            await http.post("/api/v1/bounces", content=small, headers=headers)
        ).status_code == 200

    box = mailbox.mbox(tmp_path / "b.mbox")
    box.add(big)
    box.close()
    out = await _bounces_command(
        database_url, settings, tmp_path / "b.mbox", NEWSLETTER_BOUNCE_MAX_BYTES="4096"
    )
    assert "messages: 1" in out and "too large: 1" in out


async def _bounces_command(database_url: str, settings: Settings, mbox: Path, **extra: str) -> str:
    env = {
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_SECRET_KEY": settings.secret_key,
        "PATH": "/usr/bin:/bin",
        **extra,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "newsletter",
        "bounces",
        "--mbox",
        str(mbox),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_forged_verp_signature_matches_nothing(
    database_url: str, db: Database, smtp_server: SmtpServer
) -> None:
    settings = make_settings(database_url, smtp_server.target, bounce_address="bounce@gimpo.go.kr")
    await sent_issue(db, settings, count=2)
    result = await bounces.process(
        db, settings, dsn(to="bounce+1-aaaaaaaa@gimpo.go.kr", recipient="nobody@example.org")
    )
    assert result.applied == [] and result.unmatched == ["nobody@example.org"]
    assert (await subscriber(db, address(1)))["status"] == "active"


async def test_bounce_api_guards_and_content_type(db: Database, client: httpx.AsyncClient) -> None:
    body = dsn(to="news@gimpo.go.kr", recipient="x@example.org")
    assert (await client.post("/api/v1/bounces", content=body)).status_code == 401
    editor = await ops_headers(db, role="editor")
    assert (await client.post("/api/v1/bounces", content=body, headers=editor)).status_code == 403
    ops = await ops_headers(db)
    wrong = await client.post(
        "/api/v1/bounces", content=b"{}", headers={**ops, "content-type": "application/json"}
    )
    assert wrong.status_code == 415 and wrong.json()["error"] == "unsupported_media_type"
    empty = await client.post("/api/v1/bounces", content=b"", headers=ops)
    assert empty.status_code == 400


async def test_bounces_command_reads_an_mbox(
    database_url: str, db: Database, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    settings = make_settings(database_url, smtp_server.target, bounce_address="bounce@gimpo.go.kr")
    await sent_issue(db, settings, count=3)
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    for n in (1, 2):
        [mail] = smtp_server.handler.to(address(n))
        box.add(dsn(to=mail.mail_from, recipient=address(n)))
    box.close()
    env = {
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_SECRET_KEY": settings.secret_key,
        "NEWSLETTER_BOUNCE_ADDRESS": "bounce@gimpo.go.kr",
        "PATH": "/usr/bin:/bin",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "newsletter",
        "bounces",
        "--mbox",
        str(tmp_path / "bounces.mbox"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "messages: 2, suppressed: 2" in out.decode()
    assert (await subscriber(db, address(1)))["status"] == "suppressed"
    assert (await subscriber(db, address(3)))["status"] == "active"


# --- transactional mail: bounces found by the outbox row's own signature ------


VERP = {"bounce_address": "bounce@gimpo.go.kr"}


async def queued_mail(
    db: Database, settings: Settings, kind: str, email: str, *, status: str | None = None
) -> int:
    """One transactional mail to a subscriber (``status`` set first, as a flow
    would have left them), sent by the worker; returns its outbox id."""
    subscriber_id = (await subscriber(db, email))["id"]
    assert isinstance(subscriber_id, int)
    if status is not None:
        await db.pool.execute(
            "UPDATE subscribers SET status = $2 WHERE id = $1", subscriber_id, status
        )
    now = datetime.now(UTC)
    payload = {
        "at": now.isoformat(),
        "consented_at": (now - timedelta(days=730)).isoformat(),
        "deadline": (now + timedelta(days=30)).isoformat(),
    }
    async with db.transaction() as conn:
        outbox_id = await outbox.enqueue(conn, kind, email, payload, subscriber_id=subscriber_id)
    await drain(settings, db)
    return outbox_id


async def outbox_row(db: Database, outbox_id: int) -> dict[str, object]:
    row = await db.pool.fetchrow("SELECT status, last_error FROM outbox WHERE id = $1", outbox_id)
    assert row is not None
    return dict(row)


async def test_a_bounced_confirmation_found_by_its_verp_fails_its_row_and_suppresses(
    database_url: str, db: Database, smtp_server: SmtpServer, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database_url, smtp_server.target, **VERP)
    signup = await client.post("/subscribe", data={"email": "new@example.com", "consent": "on"})
    assert signup.status_code == 200
    await drain(settings, db)
    [mail] = smtp_server.handler.to("new@example.com")
    assert re.fullmatch(r"bounce\+o\d+-[a-z2-7]{8}@gimpo\.go\.kr", mail.mail_from)
    outbox_id = int(mail.mail_from.split("+o")[1].split("-")[0])

    # The receiving MTA bounces to the envelope sender (the address never existed).
    response = await client.post(
        "/api/v1/bounces",
        content=dsn(to=mail.mail_from, recipient="new@example.com"),
        headers=await ops_headers(db),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "applied"
    [applied] = body["applied"]
    assert (applied["matched_by"], applied["action"]) == ("verp", "suppressed")
    assert applied["outbox_id"] == outbox_id and applied["delivery_id"] is None

    row = await subscriber(db, "new@example.com")
    assert row["status"] == "suppressed" and "5.1.1" in str(row["suppressed_reason"])
    mail_row = await outbox_row(db, outbox_id)
    assert mail_row["status"] == "failed"
    assert str(mail_row["last_error"]).startswith("bounced (hard): 5.1.1")


async def test_a_bounced_notice_to_a_leaver_is_recorded_and_changes_nobody(
    db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    """Matched by the signed Message-ID quoted in the DSN (no VERP configured)."""
    await add_subscribers(db, 1)
    outbox_id = await queued_mail(db, settings, "opt_out_notice", address(1), status="unsubscribed")
    [mail] = smtp_server.handler.to(address(1))
    message_id = str(mail.message["Message-ID"])
    assert message_id.startswith(f"<nl.tx.{outbox_id}.")

    result = await bounces.process(
        db,
        settings,
        dsn(
            to="news@gimpo.go.kr",
            recipient=address(1),
            original_headers=f"Message-ID: {message_id}",
        ),
    )
    assert [(a.matched_by, a.action, a.outbox_id) for a in result.applied] == [
        ("message-id", "recorded", outbox_id)
    ]
    assert (await subscriber(db, address(1)))["status"] == "unsubscribed"
    assert (await outbox_row(db, outbox_id))["status"] == "failed"
    # Recorded as a genuine bounce, not among the unsigned ones ops must judge.
    assert await db.fetchval("unverified_bounce_count", 30) == 0


async def test_a_transactional_mail_counts_one_soft_bounce_however_often_reported(
    database_url: str, db: Database, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    settings = make_settings(database_url, smtp_server.target, **VERP)
    await add_subscribers(db, 1)
    outbox_id = await queued_mail(db, settings, "reconfirm", address(1))
    [mail] = smtp_server.handler.to(address(1))
    actions = [
        [
            a.action
            for a in (
                await bounces.process(
                    db, settings, soft_dsn(mail.mail_from, address(1), report_id=f"r{n}")
                )
            ).applied
        ]
        for n in range(3)
    ]
    assert actions == [["counted"], ["already counted"], ["already counted"]]
    row = await subscriber(db, address(1))
    assert row["status"] == "active" and row["soft_bounces"] == 1
    assert str((await outbox_row(db, outbox_id))["last_error"]).startswith("bounced (soft): 5.2.2")
    # The one bounce event names the mail it is about.
    events = "SELECT count(*) FROM bounce_events WHERE outbox_id = $1 AND verified"
    assert await db.pool.fetchval(events, outbox_id) == 1
    # The mailbox command tells that outcome too (it once left unknown actions out).
    box = mailbox.mbox(tmp_path / "again.mbox")
    box.add(soft_dsn(mail.mail_from, address(1), report_id="r-cli"))
    box.close()
    out = await _bounces_command(
        database_url,
        settings,
        tmp_path / "again.mbox",
        NEWSLETTER_BOUNCE_ADDRESS="bounce@gimpo.go.kr",
    )
    assert "already counted: 1" in out, out


async def test_a_bounced_test_copy_names_no_subscriber(
    database_url: str, db: Database, smtp_server: SmtpServer
) -> None:
    settings = make_settings(database_url, smtp_server.target, **VERP)
    await add_subscribers(db, 1)  # someone whose address the editor's is not
    payload = {"subject": "시험", "text": "본문\n", "html": "<p>본문</p>"}
    async with db.transaction() as conn:
        outbox_id = await outbox.enqueue(conn, "test_issue", "editor@gimpo.go.kr", payload)
    await drain(settings, db)
    [mail] = smtp_server.handler.to("editor@gimpo.go.kr")
    result = await bounces.process(
        db, settings, dsn(to=mail.mail_from, recipient="editor@gimpo.go.kr")
    )
    assert [(a.action, a.subscriber_id, a.outbox_id) for a in result.applied] == [
        ("recorded", None, outbox_id)
    ]
    assert (await outbox_row(db, outbox_id))["status"] == "failed"
    assert (await subscriber(db, address(1)))["status"] == "active"


def test_outbox_and_delivery_ids_are_signed_apart() -> None:
    """Outbox row 7 and delivery 7 share a number, never an identifier: each
    one's tag in the other's form proves nothing."""
    secret = "test-secret"
    delivery_tag = signature(secret, "verp", 7)
    outbox_tag = signature(secret, OUTBOX_VERP_PURPOSE, 7)
    assert delivery_tag != outbox_tag
    cases = {
        f"bounce+o7-{delivery_tag}@gimpo.go.kr": ([], []),
        f"bounce+7-{outbox_tag}@gimpo.go.kr": ([], []),
        f"bounce+O7-{outbox_tag.upper()}@gimpo.go.kr": ([], [7]),  # a case-folding server
        f"bounce+7-{delivery_tag}@gimpo.go.kr": ([7], []),
    }
    for to, (deliveries, outboxes) in cases.items():
        parsed = bounces.parse(dsn(to=to, recipient="x@example.org"), secret)
        assert (parsed.delivery_ids, parsed.outbox_ids) == (deliveries, outboxes), to
    msgid_tag = signature(secret, OUTBOX_MSGID_PURPOSE, 7)
    quoted = dsn(
        to="news@gimpo.go.kr",
        recipient="x@example.org",
        original_headers=f"Message-ID: <nl.tx.7.{msgid_tag}@gimpo.go.kr>\r\n"
        f"References: <nl.tx.8.{msgid_tag}@gimpo.go.kr> <nl.1.7.{msgid_tag}@gimpo.go.kr>",
    )
    parsed = bounces.parse(quoted, secret)
    assert (parsed.delivery_ids, parsed.outbox_ids) == ([], [7])
