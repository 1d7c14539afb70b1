"""The delivery record and the safe resend from the console: after a relay
outage past the maximum age, ops read on the issue's page why residents did
not get it, in words, press "다시 보내기", confirm, and exactly those get it
once; admins also see who; a second press is refused in Korean."""

from __future__ import annotations

import html

import httpx

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from tests.conftest import SmtpServer
from tests.ops.test_delivery_record import delivery_round, issue_copies, outage_then_resend_setup
from tests.support.console import login, make_user, page_csrf
from tests.support.delivery import address


async def test_ops_read_why_and_resend_exactly_once_from_the_console(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    issue_id = await outage_then_resend_setup(client, db, settings, smtp_server)
    smtp_server.start()
    smtp_server.handler.messages.clear()
    ops = await make_user(db, "ops")
    await login(client, ops.email)

    for start in ("/admin", f"/admin/issues/{issue_id}"):  # the dashboard, the issue
        page = await client.get(start)
        assert f'href="/admin/issues/{issue_id}/deliveries"' in page.text, start
    record = await client.get(f"/admin/issues/{issue_id}/deliveries")
    assert record.status_code == 200
    said = html.unescape(record.text)
    assert "실패 4통 — 사유별" in said
    assert "중계 서버에 연결하지 못한 채 3일이 지나 포기" in said
    assert "없는 메일 주소" in said and ">550<" in said
    assert 'id="resend-count">2통' in said  # r5 has unsubscribed since
    assert "관리자만 볼 수 있습니다" in said and address(3) not in said
    skipped = html.unescape(
        (await client.get(f"/admin/issues/{issue_id}/deliveries?status=skipped")).text
    )
    assert "발송 중에 수신 거부함" in skipped

    csrf = await page_csrf(client, f"/admin/issues/{issue_id}/deliveries")
    asked = await client.post(f"/admin/issues/{issue_id}/resend", data={"csrf_token": csrf})
    assert asked.status_code == 200
    assert "2통을 다시 보낼까요?" in html.unescape(asked.text)
    assert await db.pool.fetchval("SELECT round FROM issues WHERE id = $1", issue_id) == 1
    confirmed = {"csrf_token": csrf, "confirmed": "yes"}
    started = await client.post(f"/admin/issues/{issue_id}/resend", data=confirmed)
    assert started.status_code == 303
    assert started.headers["location"] == f"/admin/issues/{issue_id}"
    again = await client.post(f"/admin/issues/{issue_id}/resend", data=confirmed)
    assert again.status_code == 409
    assert "아직 2차 발송이 끝나지 않았습니다" in html.unescape(again.text)

    await delivery_round(settings, db)
    assert [issue_copies(smtp_server, n) for n in range(1, 7)] == [0, 0, 1, 1, 0, 0]
    after = html.unescape((await client.get(f"/admin/issues/{issue_id}")).text)
    assert "2통을 다시 보내기 시작했습니다 (2차 발송)" in after
    assert 'id="rounds"' in after and "2차" in after and ops.name in after
    nothing_left = await client.post(f"/admin/issues/{issue_id}/resend", data=confirmed)
    assert nothing_left.status_code == 409
    assert "다시 보낼 메일이 없습니다" in html.unescape(nothing_left.text)


async def test_an_admin_sees_who_and_the_read_is_recorded(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    issue_id = await outage_then_resend_setup(client, db, settings, smtp_server)
    admin = await make_user(db, "admin")
    await login(client, admin.email)
    record = html.unescape((await client.get(f"/admin/issues/{issue_id}/deliveries")).text)
    for n in (1, 3, 4, 5):
        assert address(n) in record
    assert "Recipient address rejected" in record  # the server's own reply, for admins
    assert address(2) not in record  # delivered
    # The access log says whose data was shown: the four who did not get it.
    read = await db.pool.fetchrow(
        "SELECT subscriber_ids, row_count FROM access_log WHERE action = 'deliveries.addresses'"
    )
    assert read is not None and read["row_count"] == 4
    shown = await db.pool.fetch(
        "SELECT email FROM subscribers WHERE id = ANY($1::bigint[]) ORDER BY id",
        read["subscriber_ids"],
    )
    assert [r["email"] for r in shown] == [address(n) for n in (1, 3, 4, 5)]


async def test_an_issue_not_yet_sent_cannot_be_resent(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    issue_id = await db.pool.fetchval("INSERT INTO issues (title) VALUES ('초안') RETURNING id")
    await login(client, editor.email)
    page = html.unescape((await client.get(f"/admin/issues/{issue_id}/deliveries")).text)
    assert "이 종류의 메일은 없습니다" in page and 'id="resend"' not in page
    csrf = await page_csrf(client, f"/admin/issues/{issue_id}")
    refused = await client.post(
        f"/admin/issues/{issue_id}/resend", data={"csrf_token": csrf, "confirmed": "yes"}
    )
    assert refused.status_code == 409
    assert "'초안' 상태인 호는 다시 보낼 수 없습니다" in html.unescape(refused.text)
