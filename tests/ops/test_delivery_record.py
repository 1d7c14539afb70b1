"""The delivery record and the safe resend, end to end: a relay outage longer
than the maximum age fails deliveries (the row times are moved back, as a
time machine for PostgreSQL's clock), ops read why each resident did not get
the issue, and a resend -- asked for twice at once -- delivers exactly those
once. Real PostgreSQL, a real aiosmtpd relay, the API over HTTP."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import httpx

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.core.tokens import Tokens
from newsletter.delivery import claim
from newsletter.delivery.worker import Worker
from newsletter.ops import delivery_record, status_view, words
from tests.audience.test_bounces import dsn
from tests.conftest import SmtpServer, bearer, make_settings
from tests.ops.test_status_cli import run_cli
from tests.support.delivery import add_subscribers, address, start_issue, status_counts

Client = httpx.AsyncClient
SUBJECT = "11월 김포시 소식"  # tests.support.delivery.start_issue's title
MAILBOX_UNKNOWN = "550 5.1.1 <r00001@example.com>: Recipient address rejected: User unknown"


async def delivery_round(settings: Settings, db: Database) -> None:
    """A worker until nothing is due; deferred mail waits its (default) pause."""
    worker = Worker(settings, db, worker_id="test:record", reconnect_base_seconds=0.01)
    try:
        for _ in range(20):
            if not await worker.run_once():
                break
    finally:
        await worker.smtp.close()


def issue_copies(smtp_server: SmtpServer, n: int) -> int:
    """Copies of the issue (not the opt-out notices) resident ``n`` received."""
    return sum(
        1 for mail in smtp_server.handler.to(address(n)) if mail.message["Subject"] == SUBJECT
    )


async def due_now(db: Database, issue_id: int, *numbers: int) -> None:
    await db.pool.execute(
        "UPDATE deliveries d SET next_attempt_at = now() FROM subscribers s"
        " WHERE s.id = d.subscriber_id AND d.issue_id = $1 AND s.email = ANY($2::text[])",
        issue_id,
        [address(n) for n in numbers],
    )


async def unsubscribe(client: Client, settings: Settings, db: Database, n: int) -> None:
    public_id = await db.pool.fetchval(
        "SELECT public_id FROM subscribers WHERE email = $1", address(n)
    )
    token = Tokens(settings.secret_key).unsubscribe(public_id)
    answer = await client.post("/unsubscribe", data={"token": token})
    assert answer.status_code == 200


async def outage_then_resend_setup(
    client: Client, db: Database, settings: Settings, smtp_server: SmtpServer
) -> int:
    """Six residents: r1 mailbox unknown, r2 delivered, r3-r5 failed by an outage
    past the maximum age (r5 then unsubscribes), r6 unsubscribed during the send."""
    await add_subscribers(db, 6)
    smtp_server.stop()  # the relay is down from the start
    issue_id = await start_issue(db, settings)
    await delivery_round(settings, db)
    counts = await status_counts(db, issue_id)
    assert counts == {"queued": 6}, counts  # deferred, not failed: server trouble
    await unsubscribe(client, settings, db, 6)

    # The relay comes back for a while: r1 is refused, r2 delivered.
    smtp_server.handler.rcpt_reply[address(1)] = MAILBOX_UNKNOWN
    smtp_server.start()
    await db.pool.execute(
        "UPDATE deliveries SET next_attempt_at = now() + interval '1 hour' WHERE issue_id = $1",
        issue_id,
    )
    await due_now(db, issue_id, 1, 2)
    await delivery_round(settings, db)

    # Down again, and it stays down: three days later (moved back in the rows,
    # as PostgreSQL's clock cannot be) r3-r5 are given up.
    smtp_server.stop()
    await db.pool.execute(
        "UPDATE deliveries SET created_at = created_at - make_interval(secs => $2),"
        " next_attempt_at = now() WHERE issue_id = $1 AND status = 'queued'",
        issue_id,
        claim.DELIVERY_MAX_AGE_SECONDS + 60,
    )
    await delivery_round(settings, db)
    assert await status_counts(db, issue_id) == {"sent": 1, "failed": 4, "skipped": 1}
    assert await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", issue_id) == "sent"
    await unsubscribe(client, settings, db, 5)
    return issue_id


async def test_outage_past_the_maximum_age_then_resend_delivers_exactly_those_once(
    client: Client, db: Database, database_url: str, settings: Settings, smtp_server: SmtpServer
) -> None:
    issue_id = await outage_then_resend_setup(client, db, settings, smtp_server)
    assert [issue_copies(smtp_server, n) for n in range(1, 7)] == [0, 1, 0, 0, 0, 0]
    smtp_server.handler.messages.clear()
    ops, admin = await bearer(db, "ops"), await bearer(db, "admin")

    # Ops see why, in words, with counts -- and no addresses.
    url = f"/api/v1/issues/{issue_id}/deliveries"
    failed = (await client.get(url, params={"status": "failed"}, headers=ops)).json()
    assert failed["total"] == 4 and failed["items"] is None
    reasons = {(r["reason"], r["smtp_code"]): r for r in failed["reasons"]}
    assert set(reasons) == {("relay_unreachable", None), ("mailbox_unknown", 550)}
    assert reasons[("relay_unreachable", None)]["count"] == 3
    assert reasons[("relay_unreachable", None)]["resendable"] is True
    # r5 has unsubscribed since: a resend would take two of the three.
    assert reasons[("relay_unreachable", None)]["resend_would_take"] == 2
    assert failed["resendable"] == 2
    assert "3일" in reasons[("relay_unreachable", None)]["words"]
    assert reasons[("mailbox_unknown", 550)]["resendable"] is False
    assert "없는 메일 주소" in reasons[("mailbox_unknown", 550)]["words"]
    skipped = (await client.get(url, params={"status": "skipped"}, headers=ops)).json()
    assert [(r["reason"], r["count"]) for r in skipped["reasons"]] == [("unsubscribed", 1)]
    assert "수신 거부" in skipped["reasons"][0]["words"]

    # An admin sees who, paged; and that read is in the audit trail.
    page1 = (await client.get(url, params={"limit": 3}, headers=admin)).json()
    page2 = (
        await client.get(url, params={"limit": 3, "after": page1["next_after"]}, headers=admin)
    ).json()
    assert page2["next_after"] is None
    items = page1["items"] + page2["items"]
    assert [i["email"] for i in items] == [address(n) for n in (1, 3, 4, 5)]
    first = items[0]
    assert (first["reason"], first["smtp_code"], first["resendable"]) == (
        "mailbox_unknown",
        550,
        False,
    )
    assert "5.1.1" in first["detail"]
    assert all(i["reason"] == "relay_unreachable" and i["resendable"] for i in items[1:])
    reads = await db.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'personal_data.read.deliveries.addresses'"
    )
    assert reads == 2

    # The CSV: addresses for the admin, counts for everybody else.
    export = f"/api/v1/issues/{issue_id}/deliveries/export"
    admin_csv = await client.get(export, params={"status": "failed"}, headers=admin)
    assert admin_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(admin_csv.text)))
    assert [r["email"] for r in rows] == [address(n) for n in (1, 3, 4, 5)]
    assert rows[0]["smtp_code"] == "550" and rows[1]["resendable"] == "yes"
    ops_csv = list(csv.DictReader(io.StringIO((await client.get(export, headers=ops)).text)))
    assert "email" not in ops_csv[0]
    assert {(r["status"], r["reason"], r["count"]) for r in ops_csv} == {
        ("failed", "relay_unreachable", "3"),
        ("failed", "mailbox_unknown", "1"),
        ("skipped", "unsubscribed", "1"),
    }
    assert "@" not in (await client.get(export, headers=ops)).text

    # Two editors press "resend" at the same moment: one round, once.
    smtp_server.start()
    editors = [await bearer(db, "editor", f"editor {n}") for n in (1, 2)]
    answers = await asyncio.gather(
        *(client.post(f"/api/v1/issues/{issue_id}/resend", headers=h) for h in editors)
    )
    assert sorted(a.status_code for a in answers) == [202, 409]
    accepted = next(a for a in answers if a.status_code == 202).json()
    # r5 unsubscribed meanwhile: not sent again. Bounced r1, delivered r2, skipped r6 neither.
    assert (accepted["round"], accepted["requeued"]) == (2, 2)
    assert accepted["issue"]["status"] == "sending"
    again = await client.post(f"/api/v1/issues/{issue_id}/resend", headers=editors[0])
    assert again.status_code == 409 and "still sending" in again.json()["detail"]
    # A resent issue is still not editable.
    edit = await client.put(
        f"/api/v1/issues/{issue_id}", json={"title": "고친 제목"}, headers=editors[0]
    )
    assert edit.status_code == 409

    await delivery_round(settings, db)
    assert [issue_copies(smtp_server, n) for n in range(1, 7)] == [0, 0, 1, 1, 0, 0]
    assert await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", issue_id) == "sent"
    assert await status_counts(db, issue_id) == {"sent": 3, "failed": 2, "skipped": 1}

    # Stats show the second round; the audit trail the one resend.
    stats: dict[str, Any] = (
        await client.get(f"/api/v1/issues/{issue_id}/stats", headers=ops)
    ).json()
    assert stats["round"] == 2
    first_round, second_round = stats["rounds"]
    assert (first_round["round"], first_round["deliveries"]) == (1, 6)
    assert (first_round["sent"], first_round["failed"], first_round["skipped"]) == (1, 2, 1)
    assert (second_round["round"], second_round["deliveries"], second_round["sent"]) == (2, 2, 2)
    assert second_round["requested_by"] in ("editor 1", "editor 2")
    assert first_round["finished_at"] is not None and second_round["finished_at"] is not None
    assert second_round["started_at"] >= first_round["finished_at"]
    resends = await db.pool.fetch("SELECT details FROM audit_log WHERE action = 'issue.resend'")
    assert len(resends) == 1
    code, status = await run_cli(database_url, "status")
    assert code == 0 and "발송 차수" in status and "2차" in status
    # Nothing left that is not the recipients' own doing.
    nothing = await client.post(f"/api/v1/issues/{issue_id}/resend", headers=editors[0])
    assert nothing.status_code == 409 and "nothing to resend" in nothing.json()["detail"]


async def test_resend_is_refused_for_issues_that_are_not_sent(
    client: Client, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 2)
    issue_id = await start_issue(db, settings)
    editor = await bearer(db, "editor")
    sending = await client.post(f"/api/v1/issues/{issue_id}/resend", headers=editor)
    assert sending.status_code == 409 and "still sending" in sending.json()["detail"]
    draft = (await client.post("/api/v1/issues", json={"title": "초안"}, headers=editor)).json()
    refused = await client.post(f"/api/v1/issues/{draft['id']}/resend", headers=editor)
    assert refused.status_code == 409 and "only a sent issue" in refused.json()["detail"]
    missing = await client.post("/api/v1/issues/987654/resend", headers=editor)
    assert missing.status_code == 404
    assert (await client.post(f"/api/v1/issues/{issue_id}/resend")).status_code == 401


async def test_cancelling_a_resend_round_leaves_the_issue_sent(
    client: Client, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    issue_id = await outage_then_resend_setup(client, db, settings, smtp_server)
    editor = await bearer(db, "editor")
    resent = await client.post(f"/api/v1/issues/{issue_id}/resend", headers=editor)
    assert resent.status_code == 202
    cancelled = await client.post(f"/api/v1/issues/{issue_id}/cancel", headers=editor)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "sent"
    counts = await status_counts(db, issue_id)
    assert counts == {"sent": 1, "failed": 2, "skipped": 3}
    ops = await bearer(db, "ops")
    skipped = (
        await client.get(
            f"/api/v1/issues/{issue_id}/deliveries", params={"status": "skipped"}, headers=ops
        )
    ).json()
    assert {(r["reason"], r["count"]) for r in skipped["reasons"]} == {
        ("unsubscribed", 1),
        ("cancelled", 2),
    }


async def test_deferred_deliveries_say_what_they_wait_for(
    client: Client, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    await add_subscribers(db, 3)
    smtp_server.handler.rcpt_reply[address(1)] = "450 4.2.1 Mailbox busy, try later"
    smtp_server.handler.rcpt_reply[address(2)] = "421 4.7.0 Too many connections, slow down"
    issue_id = await start_issue(db, settings)
    await delivery_round(settings, db)
    ops = await bearer(db, "ops")
    deferred = (
        await client.get(
            f"/api/v1/issues/{issue_id}/deliveries", params={"status": "deferred"}, headers=ops
        )
    ).json()
    assert {(r["reason"], r["smtp_code"], r["count"]) for r in deferred["reasons"]} == {
        ("waiting_retry", 450, 1),
        ("waiting_relay", 421, 1),
    }
    bad = await client.get(
        f"/api/v1/issues/{issue_id}/deliveries", params={"status": "lost"}, headers=ops
    )
    assert bad.status_code in (400, 422)


def test_the_words_match_the_maximum_age() -> None:
    assert claim.DELIVERY_MAX_AGE_SECONDS == 3 * 24 * 3600
    assert words.MAX_AGE_WORDS == "3일"


def test_newsletter_status_and_the_record_say_the_same_of_a_refusal() -> None:
    # `newsletter status` groups by SMTP code, the record by reason: one set of words.
    for code in (550, 551, 552, 553, 554):
        record = delivery_record.explain("failed", "refused", code, None)
        assert status_view.explain_code(code) == record.words


async def test_a_later_bounce_is_explained_and_never_resent(
    client: Client, db: Database, database_url: str, smtp_server: SmtpServer
) -> None:
    settings = make_settings(database_url, smtp_server.target, bounce_address="bounce@gimpo.go.kr")
    await add_subscribers(db, 3)
    issue_id = await start_issue(db, settings)
    await delivery_round(settings, db)
    [mail] = smtp_server.handler.to(address(2))
    bounce = await client.post(
        "/api/v1/bounces",
        content=dsn(to=mail.mail_from, recipient=address(2)),
        headers={**await bearer(db, "ops"), "content-type": "message/rfc822"},
    )
    assert bounce.status_code == 200, bounce.text
    admin = await bearer(db, "admin")
    record = (
        await client.get(
            f"/api/v1/issues/{issue_id}/deliveries", params={"status": "bounced"}, headers=admin
        )
    ).json()
    [item] = record["items"]
    assert (item["email"], item["reason"], item["resendable"]) == (
        address(2),
        "bounced_unknown",
        False,
    )
    assert "반송" in item["words"] and item["bounced_at"] is not None
    again = await client.post(f"/api/v1/issues/{issue_id}/resend", headers=admin)
    assert again.status_code == 409 and "nothing to resend" in again.json()["detail"]
