"""The public archive: sent issues as web pages, with nothing personal in them."""

from __future__ import annotations

import re

import feedparser
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
    # Offline, the pre-send check cannot reach the links: problems, sent despite them.
    started = await client.post(
        f"/api/v1/issues/{issue.json()['id']}/send-now",
        json={"despite_problems": True},
        headers=headers,
    )
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
    assert 'href="/subscribe"' in page.text
    # A web page, not the mail: web wording, one <main>, one <h1> (the issue's
    # title), the site's name in the title, the item's link named by its title.
    assert "웹에서 보기" not in page.text and "이 메일은" not in page.text
    assert page.text.count("<main") == 1 and page.text.count("<h1") == 1
    assert re.search(r"<h1>1월 소식</h1>", page.text)
    title = re.search(r"<title>(.*?)</title>", page.text)
    assert (
        title is not None and "김포시 뉴스레터" in title.group(1) and "1월 소식" in title.group(1)
    )
    assert '<a href="https://www.gimpo.go.kr/news?t=1">1월 소식 기사 &lt;script&gt;' in page.text
    assert 'rel="alternate" type="application/atom+xml"' in listing.text


async def test_feed_lists_sent_issues(client: Client, db: Database) -> None:
    empty = feedparser.parse((await client.get("/archive/feed.xml")).content)
    assert not empty.bozo and empty.entries == []
    first = await sent_issue(client, db, "3월 소식")
    response = await client.get("/archive/feed.xml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.bozo_exception
    assert feed.feed.title == "김포시 뉴스레터"
    [entry] = feed.entries
    assert entry.title == f"제{first['number']}호: 3월 소식"
    assert entry.link == f"https://newsletter.gimpo.go.kr/archive/{first['number']}"
    # The listing points feed readers at it.
    listing = await client.get("/archive")
    assert 'href="https://newsletter.gimpo.go.kr/archive/feed.xml"' in listing.text


async def test_unknown_or_unsent_issue_is_404(client: Client, db: Database) -> None:
    headers = await bearer(db)
    await client.post("/api/v1/issues", json={"title": "초안"}, headers=headers)
    for path in ("/archive/1", "/archive/99999999999", "/archive/0"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "찾을 수 없습니다" in response.text
    assert (await client.get("/archive?page=0")).status_code in (200, 400)  # clamped
