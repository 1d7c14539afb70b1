"""The issue page offers exactly what the issue's state allows (the domain's
table): nothing to pause or cancel once a send is over, no 발송 취소 on a
draft, and send actions on an empty issue shown disabled with the reason
before anyone is asked to confirm. Through the console's HTTP, logged in."""

from __future__ import annotations

import html
import re

import httpx

from newsletter.core.db import Database
from tests.support.console import login, make_user, page_csrf

BUTTON = re.compile(r'<button[^>]*id="action-([a-z-]+)"[^>]*>')


def offered(page: str) -> dict[str, str]:
    """The action buttons on a page: their name and their tag (class, disabled)."""
    return {m.group(1): m.group(0) for m in BUTTON.finditer(page)}


async def an_issue(db: Database, status: str, *, items: bool = True) -> int:
    item = await db.pool.fetchval(
        "INSERT INTO news_items (title, link) VALUES ('소식', 'https://www.gimpo.go.kr/n/1') "
        "RETURNING id"
    )
    issue_id: int = await db.pool.fetchval(
        "INSERT INTO issues (title, news_item_ids, status, number, started_at) "
        "VALUES ('3월 소식', $1, $2, CASE WHEN $2 = 'draft' THEN NULL ELSE 1 END, "
        "CASE WHEN $2 = 'draft' THEN NULL ELSE now() END) RETURNING id",
        [item] if items else [],
        status,
    )
    return issue_id


async def test_a_sent_issue_offers_no_pause_or_cancel(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    issue_id = await an_issue(db, "sent")
    page = await client.get(f"/admin/issues/{issue_id}")
    assert page.status_code == 200
    assert offered(page.text) == {}
    assert "일시 정지…" not in page.text and "발송 취소…" not in page.text


async def test_the_buttons_follow_the_send_when_it_ends(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    issue_id = await an_issue(db, "sending")
    page = await client.get(f"/admin/issues/{issue_id}")
    assert set(offered(page.text)) == {"pause", "cancel"}
    # The page stays open while the workers finish; its live update brings the buttons along.
    await db.pool.execute(
        "UPDATE issues SET status = 'sent', finished_at = now() WHERE id = $1", issue_id
    )
    live = await client.get(f"/admin/issues/{issue_id}/live")
    assert live.status_code == 286  # over: the page stops asking
    assert offered(live.text) == {}
    assert re.search(r'<div id="actions" hidden hx-swap-oob="true">', live.text)
    # Someone who clicks the stale button anyway is told why, in Korean.
    csrf = await page_csrf(client, f"/admin/issues/{issue_id}")
    stale = await client.post(f"/admin/issues/{issue_id}/pause", data={"csrf_token": csrf})
    assert stale.status_code == 409
    assert "이미 발송한 호" in html.unescape(stale.text)


async def test_a_draft_offers_no_cancel(client: httpx.AsyncClient, db: Database) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    issue_id = await an_issue(db, "draft")
    page = await client.get(f"/admin/issues/{issue_id}")
    buttons = offered(page.text)
    assert set(buttons) == {"send-now", "delete"}
    assert "발송 취소" not in page.text
    assert 'class="primary"' in buttons["send-now"] and "disabled" not in buttons["send-now"]
    csrf = await page_csrf(client, f"/admin/issues/{issue_id}")
    cancel = await client.post(f"/admin/issues/{issue_id}/cancel", data={"csrf_token": csrf})
    assert cancel.status_code == 409
    said = html.unescape(cancel.text)
    assert "'초안' 상태라서 취소할 수 없습니다" in said
    assert await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", issue_id) == "draft"


async def test_an_empty_issue_shows_why_it_cannot_be_sent_before_any_confirmation(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    issue_id = await an_issue(db, "draft", items=False)
    page = await client.get(f"/admin/issues/{issue_id}")
    said = html.unescape(page.text)
    buttons = offered(page.text)
    assert "disabled" in buttons["send-now"] and "disabled" not in buttons["delete"]
    assert "아직 뉴스 항목이 없습니다" in said
    assert re.search(r'<button type="submit" id="schedule" disabled', page.text)
    # Asking anyway gets the reason, not the confirmation page.
    csrf = await page_csrf(client, f"/admin/issues/{issue_id}")
    asked = await client.post(f"/admin/issues/{issue_id}/send-now", data={"csrf_token": csrf})
    assert asked.status_code == 409
    assert "아직 뉴스 항목이 없습니다" in html.unescape(asked.text)
    assert 'id="confirm"' not in asked.text
    # An item added, the same page offers the send.
    item = await db.pool.fetchval("INSERT INTO news_items (title) VALUES ('새 소식') RETURNING id")
    await db.pool.execute("UPDATE issues SET news_item_ids = $2 WHERE id = $1", issue_id, [item])
    ready = offered((await client.get(f"/admin/issues/{issue_id}")).text)
    assert "disabled" not in ready["send-now"]
