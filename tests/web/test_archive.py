"""The public archive: sent issues as web pages, with nothing personal in them."""

from __future__ import annotations

import httpx

from newsletter.core.db import Database
from tests.conftest import bearer

Client = httpx.AsyncClient
XSS = "<script>alert('archive')</script>"


async def sent_issue(client: Client, db: Database, title: str) -> dict[str, object]:
    headers = await bearer(db, name=f"editor for {title}")
    item = await client.post(
        "/api/v1/news-items",
        json={"title": f"{title} 기사 {XSS}", "link": f"https://www.gimpo.go.kr/news?t={title[0]}"},
        headers=headers,
    )
    issue = await client.post(
        "/api/v1/issues",
        json={"title": title, "news_item_ids": [item.json()["id"]]},
        headers=headers,
    )
    started = await client.post(f"/api/v1/issues/{issue.json()['id']}/send-now", headers=headers)
    assert started.status_code == 200, started.text
    # Marking an issue sent is the delivery worker's job once every mail is final.
    await db.pool.execute("UPDATE issues SET status = 'sent' WHERE id = $1", issue.json()["id"])
    result: dict[str, object] = started.json()
    return result


async def test_archive_lists_and_shows_sent_issues(client: Client, db: Database) -> None:
    await db.pool.execute(
        "INSERT INTO subscribers (email, name, status) VALUES ($1, $2, 'active')",
        "someone@example.com",
        "홍길동",
    )
    first = await sent_issue(client, db, "1월 소식")
    await sent_issue(client, db, "2월 소식")
    headers = await bearer(db)
    await client.post("/api/v1/issues", json={"title": "아직 초안"}, headers=headers)

    listing = await client.get("/archive")
    assert listing.status_code == 200
    assert "1월 소식" in listing.text and "2월 소식" in listing.text
    assert "아직 초안" not in listing.text
    assert listing.text.index("2월 소식") < listing.text.index("1월 소식")  # newest first

    page = await client.get(f"/archive/{first['number']}")
    assert page.status_code == 200
    assert page.headers.get_list("content-type") == ["text/html; charset=utf-8"]
    assert "1월 소식 기사" in page.text
    assert "<script>alert('archive')" not in page.text and "&lt;script&gt;" in page.text
    assert "%%" not in page.text
    assert "unsubscribe" not in page.text and "수신 거부" not in page.text
    assert "홍길동" not in page.text and "someone@example.com" not in page.text
    assert 'href="https://newsletter.gimpo.go.kr/subscribe"' in page.text


async def test_unknown_or_unsent_issue_is_404(client: Client, db: Database) -> None:
    headers = await bearer(db)
    await client.post("/api/v1/issues", json={"title": "초안"}, headers=headers)
    for path in ("/archive/1", "/archive/99999999999", "/archive/0"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "찾을 수 없습니다" in response.text
    assert (await client.get("/archive?page=0")).status_code in (200, 400)  # clamped
