"""Issues over the editors' API: drafts, preview, test-send, scheduling, transitions,
and starting a send exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.editorial import issues
from newsletter.editorial.rendering import click_url
from tests.conftest import SmtpServer, bearer, drain

Client = httpx.AsyncClient
XSS = "<script>alert('x')</script>"
SOON = (datetime.now(UTC) + timedelta(days=30)).replace(tzinfo=None, microsecond=0).isoformat()


async def news_items(client: Client, headers: dict[str, str], count: int = 2) -> list[int]:
    ids = []
    first = not (await client.get("/api/v1/news-items", headers=headers)).json()["total"]
    for n in range(1, count + 1):
        response = await client.post(
            "/api/v1/news-items",
            json={
                "title": f"김포 소식 {n} {XSS}",
                "summary": f"요약 {n}",
                "body": f"<p>본문 {n}</p>",
                "link": f"https://www.gimpo.go.kr/news/{n}" + ("" if first else f"?{uuid4()}"),
            },
            headers=headers,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def draft(client: Client, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    ids = await news_items(client, headers)
    body = {"title": "3월 김포 소식", "intro": "봄 소식을 전합니다.", "news_item_ids": ids} | fields
    response = await client.post("/api/v1/issues", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["status"] == "draft"
    return created


async def add_subscribers(db: Database, active: int, other: int = 0) -> None:
    await db.pool.execute(
        "INSERT INTO subscribers (email, status) "
        "SELECT 'r' || g || '@example.com', 'active' FROM generate_series(1, $1) g",
        active,
    )
    await db.pool.execute(
        "INSERT INTO subscribers (email, status) "
        "SELECT 'u' || g || '@example.com', 'unsubscribed' FROM generate_series(1, $1) g",
        other,
    )


async def test_auth_and_roles(client: Client, db: Database) -> None:
    assert (await client.get("/api/v1/issues")).status_code == 401
    ops = await bearer(db, "ops")
    assert (await client.get("/api/v1/issues", headers=ops)).status_code == 403
    assert (
        await client.post("/api/v1/issues", json={"title": "x"}, headers=ops)
    ).status_code == 403


async def test_draft_crud_and_validation(client: Client, db: Database) -> None:
    headers = await bearer(db)
    issue = await draft(client, headers)
    assert len(issue["news_item_ids"]) == 2
    path = f"/api/v1/issues/{issue['id']}"
    reordered = list(reversed(issue["news_item_ids"]))
    updated = await client.put(
        path, json={"title": "새 제목", "news_item_ids": reordered}, headers=headers
    )
    assert updated.status_code == 200
    assert updated.json()["news_item_ids"] == reordered and updated.json()["intro"] == ""
    listed = (await client.get("/api/v1/issues?status=draft", headers=headers)).json()
    assert [i["id"] for i in listed["items"]] == [issue["id"]] and listed["total"] == 1

    for bad in (
        {"title": ""},
        {"title": "x", "news_item_ids": [999999]},
        {"title": "x", "news_item_ids": [1, 1]},
        {"title": "x", "news_item_ids": list(range(1, 60))},
        {"title": "x" * 500},
        {"title": "x", "intro": "a\u0000b"},
        {"title": "x", "news_item_ids": "1,2"},
    ):
        response = await client.post("/api/v1/issues", json=bad, headers=headers)
        assert response.status_code == 422, (bad, response.text)
    huge = await client.post(
        "/api/v1/issues", json={"title": "x", "intro": "가" * 2_000_000}, headers=headers
    )
    assert huge.status_code == 413

    # A news item in a draft cannot vanish under it.
    in_use = await client.delete(f"/api/v1/news-items/{reordered[0]}", headers=headers)
    assert in_use.status_code == 409

    assert (await client.delete(path, headers=headers)).status_code == 204
    assert (await client.get(path, headers=headers)).status_code == 404
    actions = [r["action"] for r in await db.pool.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-3:] == ["issue.create", "issue.update", "issue.delete"]


async def test_unknown_ids_are_404(client: Client, db: Database) -> None:
    headers = await bearer(db)
    for method, suffix, body in (
        ("GET", "", None),
        ("PUT", "", {"title": "x"}),
        ("DELETE", "", None),
        ("GET", "/preview", None),
        ("POST", "/test-send", {"addresses": ["a@example.com"]}),
        ("POST", "/schedule", {"send_at": SOON}),
        ("POST", "/send-now", None),
        ("POST", "/pause", None),
        ("POST", "/resume", None),
        ("POST", "/cancel", None),
    ):
        for issue_id in (424242, 9223372036854775807):
            response = await client.request(
                method, f"/api/v1/issues/{issue_id}{suffix}", json=body, headers=headers
            )
            assert response.status_code == 404, (method, suffix, response.text)
            assert response.json()["error"] == "not_found"


async def test_preview_is_what_subscribers_get(
    client: Client, db: Database, settings: Settings
) -> None:
    headers = await bearer(db)
    issue = await draft(client, headers, is_advertisement=True)
    html = await client.get(f"/api/v1/issues/{issue['id']}/preview", headers=headers)
    assert html.status_code == 200
    assert html.headers.get_list("content-type") == ["text/html; charset=utf-8"]
    assert "김포 소식 1" in html.text and "김포 소식 2" in html.text
    # Item links go through the counted redirect, which leads to the item's own link.
    first_item = issue["news_item_ids"][0]
    redirect = click_url(settings, issue["id"], first_item)
    assert f'href="{redirect}"' in html.text and "gimpo.go.kr/news/1" not in html.text
    followed = await client.get(redirect.removeprefix(settings.base_url))
    assert followed.status_code == 302
    assert followed.headers["location"] == "https://www.gimpo.go.kr/news/1"
    assert "<script>alert" not in html.text and "&lt;script&gt;" in html.text
    assert "구독자님, 안녕하세요." in html.text and "%%" not in html.text
    assert "https://newsletter.gimpo.go.kr/archive/1" in html.text  # the number it will get
    assert "<title>(광고) 3월 김포 소식</title>" in html.text
    text = await client.get(f"/api/v1/issues/{issue['id']}/preview?format=text", headers=headers)
    assert text.headers.get_list("content-type") == ["text/plain; charset=utf-8"]
    assert f"김포 소식 1 {XSS}" in text.text  # plain text needs no escaping
    assert "수신 거부: https://newsletter.gimpo.go.kr/unsubscribe?token=preview" in text.text
    bad = await client.get(f"/api/v1/issues/{issue['id']}/preview?format=pdf", headers=headers)
    assert bad.status_code in (400, 422)


async def test_test_send_arrives_marked(
    client: Client, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    headers = await bearer(db)
    issue = await draft(client, headers, title="김포시 소식 — 봄호, 아주 긴 제목 " * 3)
    url = f"/api/v1/issues/{issue['id']}/test-send"
    too_many = await client.post(
        url, json={"addresses": [f"e{n}@example.com" for n in range(11)]}, headers=headers
    )
    assert too_many.status_code == 422
    invalid = await client.post(url, json={"addresses": ["not-an-address"]}, headers=headers)
    assert invalid.status_code == 422
    assert (await client.post(url, json={"addresses": []}, headers=headers)).status_code == 422

    sent = await client.post(
        url, json={"addresses": ["editor@example.com", "boss@example.com"]}, headers=headers
    )
    assert sent.status_code == 202 and sent.json()["queued"] == 2
    assert smtp_server.handler.messages == []  # through the outbox, not inline
    await drain(settings, db)
    [mail] = smtp_server.handler.to("editor@example.com")
    message = mail.message
    assert str(message["Subject"]) == "[TEST] " + " ".join(issue["title"].split())
    assert message.get_content_type() == "multipart/alternative"
    for line in mail.data.split(b"\r\n"):
        assert len(line) <= 998
    for name in ("List-Id", "List-Unsubscribe", "List-Unsubscribe-Post"):
        raw = next(
            line
            for line in mail.data.split(b"\r\n\r\n")[0].split(b"\r\n")
            if line.lower().startswith(name.lower().encode() + b":")
        )
        assert b"=?" not in raw
    assert message["Message-ID"] and message["Date"]
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    assert html_part is not None and text_part is not None
    html = html_part.get_content()
    second = click_url(settings, issue["id"], issue["news_item_ids"][1])
    assert "김포 소식 1" in html and f'href="{second}"' in html
    assert "<script>alert" not in html
    assert "김포 소식 2" in text_part.get_content()
    assert await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", issue["id"]) == "draft"

    # The copy's unsubscribe button (RFC 8058 one-click, or the link opened)
    # names nobody: it answers plainly instead of with an "invalid link" error.
    target = str(message["List-Unsubscribe"]).split("<", 1)[1].split(">", 1)[0]
    path = target.removeprefix(settings.base_url)
    one_click = await client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200
    assert "미리 보기의 수신 거부 링크입니다" in one_click.text
    opened = await client.get(path)
    assert opened.status_code == 200 and "아무것도 바꾸지 않습니다" in opened.text


async def test_schedule_rules(client: Client, db: Database, settings: Settings) -> None:
    headers = await bearer(db)
    issue = await draft(client, headers)
    url = f"/api/v1/issues/{issue['id']}/schedule"
    for bad in ("2020-01-01T09:00:00", "yesterday", "", "2026-13-45T99:00", "3000-01-01T00:00:00"):
        response = await client.post(url, json={"send_at": bad}, headers=headers)
        assert response.status_code == 422, (bad, response.text)
    local = (datetime.now(UTC) + timedelta(days=2)).astimezone(issues_tz(settings))
    naive = local.replace(tzinfo=None, microsecond=0).isoformat()
    # Offline, the check cannot reach the items' links: problems, sent despite them.
    scheduled = await client.post(
        url, json={"send_at": naive, "despite_problems": True}, headers=headers
    )
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["status"] == "scheduled"
    stored = await db.pool.fetchval("SELECT send_at FROM issues WHERE id = $1", issue["id"])
    assert stored == local.replace(microsecond=0)  # naive meant Asia/Seoul
    explicit = await client.post(
        url, json={"send_at": SOON + "Z", "despite_problems": True}, headers=headers
    )
    assert explicit.status_code == 200  # rescheduling is allowed
    locked = await client.put(f"/api/v1/issues/{issue['id']}", json={"title": "x"}, headers=headers)
    assert locked.status_code == 409
    assert "only a draft issue can be updated" in locked.json()["detail"]
    # An empty issue cannot be scheduled.
    empty = await client.post("/api/v1/issues", json={"title": "빈 호"}, headers=headers)
    response = await client.post(
        f"/api/v1/issues/{empty.json()['id']}/schedule",
        json={"send_at": SOON},
        headers=headers,
    )
    assert response.status_code == 409


def issues_tz(settings: Settings) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(settings.timezone)


async def test_send_now_and_transitions(client: Client, db: Database) -> None:
    headers = await bearer(db)
    await add_subscribers(db, active=5, other=3)
    issue = await draft(client, headers)
    base = f"/api/v1/issues/{issue['id']}"
    assert (await client.post(f"{base}/pause", headers=headers)).status_code == 409
    assert (await client.post(f"{base}/resume", headers=headers)).status_code == 409
    # Offline, the check cannot reach the items' links: problems, sent despite them.
    started = await client.post(
        f"{base}/send-now", json={"despite_problems": True}, headers=headers
    )
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["status"] == "sending" and body["number"] == 1 and body["started_at"]
    assert body["subject"] == "3월 김포 소식"
    assert (
        await db.pool.fetchval("SELECT count(*) FROM deliveries WHERE issue_id = $1", issue["id"])
        == 5
    )
    again = await client.post(f"{base}/send-now", headers=headers)
    assert again.status_code == 409 and "it is sending" in again.json()["detail"]
    assert (await client.put(base, json={"title": "x"}, headers=headers)).status_code == 409
    assert (await client.delete(base, headers=headers)).status_code == 409
    paused = await client.post(f"{base}/pause", headers=headers)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert (await client.post(f"{base}/pause", headers=headers)).status_code == 409
    resumed = await client.post(f"{base}/resume", headers=headers)
    assert resumed.json()["status"] == "sending"
    cancelled = await client.post(f"{base}/cancel", headers=headers)
    assert cancelled.json()["status"] == "cancelled"
    statuses = await db.pool.fetch(
        "SELECT DISTINCT status FROM deliveries WHERE issue_id = $1", issue["id"]
    )
    assert [r["status"] for r in statuses] == ["skipped"]
    assert (await client.post(f"{base}/resume", headers=headers)).status_code == 409


async def test_sent_issue_is_immutable(client: Client, db: Database) -> None:
    headers = await bearer(db)
    issue = await draft(client, headers)
    base = f"/api/v1/issues/{issue['id']}"
    started = await client.post(
        f"{base}/send-now", json={"despite_problems": True}, headers=headers
    )
    assert started.status_code == 200, started.text
    await db.pool.execute("UPDATE issues SET status = 'sent' WHERE id = $1", issue["id"])
    for method, suffix, body in (
        ("PUT", "", {"title": "x"}),
        ("DELETE", "", None),
        ("POST", "/schedule", {"send_at": SOON}),
        ("POST", "/send-now", None),
        ("POST", "/pause", None),
        ("POST", "/cancel", None),
    ):
        response = await client.request(method, base + suffix, json=body, headers=headers)
        assert response.status_code == 409, (method, suffix)
        assert "was sent and can no longer be changed" in response.json()["detail"]


async def test_due_issue_starts_exactly_once(
    client: Client, db: Database, settings: Settings, database_url: str
) -> None:
    headers = await bearer(db)
    await add_subscribers(db, active=300, other=10)
    first = await draft(client, headers)
    second = await client.post(
        "/api/v1/issues",
        json={"title": "둘째 호", "news_item_ids": first["news_item_ids"]},
        headers=headers,
    )
    later = await draft(client, headers, title="나중 호", news_item_ids=first["news_item_ids"])
    for issue_id, minutes in ((first["id"], -5), (second.json()["id"], -1), (later["id"], 60)):
        await db.pool.execute(
            "UPDATE issues SET status = 'scheduled', send_at = now() + make_interval(mins => $2)"
            " WHERE id = $1",
            issue_id,
            minutes,
        )
    # Several "workers", each with its own pool, racing for the same due issues.
    pools = [await Database.connect(database_url, min_size=1, max_size=2) for _ in range(4)]
    try:
        results = await asyncio.gather(*(issues.start_due_issues(p, settings) for p in pools))
    finally:
        for pool in pools:
            await pool.close()
    started = sorted(i for result in results for i in result)
    assert started == sorted([first["id"], second.json()["id"]])
    rows = await db.pool.fetch(
        "SELECT i.id, i.number, i.status, count(d.id) AS recipients"
        " FROM issues i LEFT JOIN deliveries d ON d.issue_id = i.id GROUP BY i.id ORDER BY i.id"
    )
    by_id = {r["id"]: r for r in rows}
    assert by_id[first["id"]]["status"] == "sending" and by_id[first["id"]]["recipients"] == 300
    assert by_id[first["id"]]["number"] == 1  # due first, numbered first
    assert by_id[second.json()["id"]]["number"] == 2
    assert by_id[later["id"]]["status"] == "scheduled"
    assert await issues.start_due_issues(db, settings) == []


async def test_start_issue_snapshot(db: Database, settings: Settings, client: Client) -> None:
    headers = await bearer(db)
    await add_subscribers(db, active=3)
    issue = await draft(client, headers)
    async with db.transaction() as conn:
        assert await issues.start_issue(conn, issue["id"], settings) == 3
    row = await db.pool.fetchrow("SELECT * FROM issues WHERE id = $1", issue["id"])
    assert row is not None
    assert "%%UNSUBSCRIBE_URL%%" in row["rendered_html"]
    assert "%%RECIPIENT_NAME%%" in row["rendered_text"]
    assert "https://newsletter.gimpo.go.kr/archive/1" in row["rendered_html"]
    # Editing a news item afterwards does not change what was sent.
    await client.put(
        f"/api/v1/news-items/{issue['news_item_ids'][0]}",
        json={"title": "나중에 바뀐 제목", "link": "https://www.gimpo.go.kr/news/1"},
        headers=headers,
    )
    preview = await client.get(f"/api/v1/issues/{issue['id']}/preview", headers=headers)
    assert "나중에 바뀐 제목" not in preview.text


@pytest.mark.parametrize("payload", [{"send_at": 5}, {"when": "2099-01-01"}, [], "x"])
async def test_schedule_body_shape(client: Client, db: Database, payload: Any) -> None:
    headers = await bearer(db)
    issue = await draft(client, headers)
    response = await client.post(
        f"/api/v1/issues/{issue['id']}/schedule", json=payload, headers=headers
    )
    assert response.status_code in (400, 422)
