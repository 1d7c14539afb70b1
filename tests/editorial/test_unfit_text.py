"""Text no mail can carry (U+FFFE, U+FFFF and the other non-characters, C0
controls): refused at every input, dropped where a feed brings it, harmless
in what was stored before; and a scheduled issue that cannot start says why.

Real PostgreSQL, the app over HTTP, a real worker and aiosmtpd server."""

from __future__ import annotations

import httpx

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.editorial import issues
from tests.conftest import SmtpServer, bearer, drain
from tests.support.console import login, make_user, page_csrf
from tests.support.delivery import add_subscribers, address

Client = httpx.AsyncClient
UNFIT = ("\uffff", "\ufffe", "\ufdd0", "\U0010ffff", "\x0b")

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>김포시 새소식</title><link>https://www.gimpo.go.kr</link>
<item><title>한강 축제&#xFFFF; 개최</title><link>https://www.gimpo.go.kr/news/201</link>
  <description>&lt;p&gt;축제가 &amp;#xFFFF;&amp;#xFFFE;&amp;#x1;열립니다&lt;/p&gt;</description>
  <category>행사&#xFFFE;</category></item>
</channel></rss>""".encode()


async def test_api_refuses_non_characters_in_news_items_and_issues(
    client: Client, db: Database
) -> None:
    editor = await bearer(db, "editor")
    item = await client.post("/api/v1/news-items", json={"title": "소식"}, headers=editor)
    assert item.status_code == 201, item.text
    for bad in UNFIT:
        for field in ("title", "summary", "body", "category"):
            created = await client.post(
                "/api/v1/news-items", json={"title": "소식", field: f"가{bad}나"}, headers=editor
            )
            assert created.status_code == 422, (field, created.text)
            assert created.json()["error"] == "invalid_input"
        link = await client.post(
            "/api/v1/news-items",
            json={"title": "소식", "link": f"https://www.gimpo.go.kr/a{bad}b"},
            headers=editor,
        )
        assert link.status_code == 422, link.text
        for field in ("title", "intro"):
            fields = {"title": "3월 소식", "news_item_ids": [item.json()["id"]], field: f"a{bad}b"}
            issue = await client.post("/api/v1/issues", json=fields, headers=editor)
            assert issue.status_code == 422, (field, issue.text)
    assert await db.pool.fetchval("SELECT count(*) FROM issues") == 0


async def test_the_console_form_refuses_them_next_to_the_field(
    client: Client, db: Database
) -> None:
    await login(client, (await make_user(db, "editor")).email)
    csrf = await page_csrf(client, "/admin/news/new")
    answer = await client.post(
        "/admin/news", data={"csrf_token": csrf, "title": "보이지 않는\uffff 글자"}
    )
    assert answer.status_code == 422
    assert "쓸 수 없는" in answer.text
    assert await db.pool.fetchval("SELECT count(*) FROM news_items") == 0


async def test_csv_import_refuses_a_name_with_them(client: Client, db: Database) -> None:
    admin = await bearer(db, "admin")
    imported = await client.post(
        "/api/v1/subscribers/import",
        params={"mode": "confirmed", "source": "설문지"},
        content="email,name\nok@example.com,김포\nbad@example.com,김\uffff포\n".encode(),
        headers={**admin, "content-type": "text/csv"},
    )
    assert imported.status_code == 200, imported.text
    result = imported.json()
    assert result["inserted"] == 1
    assert [e["line"] for e in result["errors"]] == [3]


async def test_a_feed_with_them_imports_and_its_issue_goes_out(
    client: Client, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    editor = await bearer(db, "editor")
    imported = await client.post(
        "/api/v1/news-items/import-feed",
        content=FEED,
        headers={**editor, "content-type": "application/rss+xml"},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["inserted"] == 1, imported.text
    row = await db.pool.fetchrow("SELECT * FROM news_items")
    assert row is not None
    assert row["title"] == "한강 축제 개최" and row["category"] == "행사"
    assert "축제가 열립니다" in row["body"]
    await add_subscribers(db, 3)
    issue = await client.post(
        "/api/v1/issues",
        json={"title": "3월 소식", "news_item_ids": [row["id"]]},
        headers=editor,
    )
    issue_id = issue.json()["id"]
    preview = await client.get(f"/api/v1/issues/{issue_id}/preview", headers=editor)
    assert preview.status_code == 200 and "축제가 열립니다" in preview.text
    test = await client.post(
        f"/api/v1/issues/{issue_id}/test-send",
        json={"addresses": ["editor@gimpo.go.kr"]},
        headers=editor,
    )
    assert test.status_code == 202, test.text
    # Offline, the pre-send check cannot reach the links: problems, sent despite them.
    sent = await client.post(
        f"/api/v1/issues/{issue_id}/send-now", json={"despite_problems": True}, headers=editor
    )
    assert sent.status_code == 200, sent.text
    await drain(settings, db)
    for n in (1, 2, 3):
        assert len(smtp_server.handler.to(address(n))) == 1
    assert len(smtp_server.handler.to("editor@gimpo.go.kr")) == 1


async def test_text_stored_before_the_check_still_goes_out(
    client: Client, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    editor = await bearer(db, "editor")
    item_id = await db.pool.fetchval(
        "INSERT INTO news_items (title, summary, body) VALUES ($1, $2, $3) RETURNING id",
        "옛 소식\uffff",
        "요약\ufffe",
        "<p>본문\uffff</p>",
    )
    issue_id = await db.pool.fetchval(
        "INSERT INTO issues (title, intro, news_item_ids, status, send_at) "
        "VALUES ($1, $2, $3, 'scheduled', now() - interval '1 minute') RETURNING id",
        "예전에 쓴 호\uffff",
        "머리말\ufffe",
        [item_id],
    )
    await add_subscribers(db, 2)
    preview = await client.get(f"/api/v1/issues/{issue_id}/preview", headers=editor)
    assert preview.status_code == 200, preview.text
    assert await issues.start_due_issues(db, settings) == [issue_id]
    await drain(settings, db)
    assert len(smtp_server.handler.to(address(1))) == 1


async def test_a_scheduled_issue_that_cannot_start_goes_back_to_draft_saying_why(
    client: Client, db: Database, settings: Settings
) -> None:
    editor = await bearer(db, "editor")
    item = await client.post("/api/v1/news-items", json={"title": "소식"}, headers=editor)
    issue = await client.post(
        "/api/v1/issues",
        json={"title": "3월 소식", "news_item_ids": [item.json()["id"]]},
        headers=editor,
    )
    issue_id = issue.json()["id"]
    # Offline, the pre-send check cannot reach the links: problems, sent despite them.
    scheduled = await client.post(
        f"/api/v1/issues/{issue_id}/schedule",
        json={"send_at": "2027-03-02T09:00:00+09:00", "despite_problems": True},
        headers=editor,
    )
    assert scheduled.status_code == 200, scheduled.text
    # Its content lost behind the application's back, then its time comes.
    await db.pool.execute(
        "UPDATE issues SET news_item_ids = '{}', send_at = now() - interval '1 minute'"
        " WHERE id = $1",
        issue_id,
    )
    assert await issues.start_due_issues(db, settings) == []
    shown = (await client.get(f"/api/v1/issues/{issue_id}", headers=editor)).json()
    assert shown["status"] == "draft"
    assert "뉴스 항목이 없습니다" in shown["start_problem"]
    # Not tried again: the scheduler finds nothing due.
    assert await issues.start_due_issues(db, settings) == []
    assert (
        await db.pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'issue.start_failed'")
        == 1
    )
    await login(client, (await make_user(db, "editor", email="console@gimpo.go.kr")).email)
    page = await client.get(f"/admin/issues/{issue_id}")
    assert "초안으로 되돌렸습니다" in page.text and "뉴스 항목이 없습니다" in page.text
    # Fixed and scheduled again: the reason is gone.
    await db.pool.execute(
        "UPDATE issues SET news_item_ids = $2 WHERE id = $1", issue_id, [item.json()["id"]]
    )
    again = await client.post(
        f"/api/v1/issues/{issue_id}/schedule",
        json={"send_at": "2027-03-02T09:00:00+09:00", "despite_problems": True},
        headers=editor,
    )
    assert again.status_code == 200 and again.json()["start_problem"] is None
