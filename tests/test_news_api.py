"""News items over the editors' API: auth, CRUD, validation, sanitising, feed import."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from newsletter.db import Database
from tests.conftest import bearer

Client = httpx.AsyncClient

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>김포시 새소식</title><link>https://www.gimpo.go.kr</link>
<item><title>김포 한강 야간축제 개최</title><link>https://www.gimpo.go.kr/news/101</link>
  <description>&lt;p&gt;야간축제가 &lt;b&gt;열립니다&lt;/b&gt;
  &lt;script&gt;alert(1)&lt;/script&gt;&lt;/p&gt;</description>
  <category>행사</category><pubDate>Mon, 02 Mar 2026 09:00:00 +0900</pubDate></item>
<item><title>도서관 휴관 안내</title><link>https://www.gimpo.go.kr/news/102</link>
  <description>시립도서관이 하루 휴관합니다.</description></item>
<item><title>링크 없는 글</title><description>x</description></item>
</channel></rss>""".encode()


async def editor(db: Database) -> dict[str, str]:
    return await bearer(db, "editor")


async def test_auth_required_and_roles(client: Client, db: Database) -> None:
    response = await client.get("/api/v1/news-items")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    response = await client.get("/api/v1/news-items", headers={"Authorization": "Bearer nl_wrong"})
    assert response.status_code == 401
    ops = await bearer(db, "ops")
    response = await client.post("/api/v1/news-items", json={"title": "x"}, headers=ops)
    assert response.status_code == 403
    admin = await bearer(db, "admin")
    response = await client.post("/api/v1/news-items", json={"title": "x"}, headers=admin)
    assert response.status_code == 201


async def test_crud_with_audit(client: Client, db: Database) -> None:
    headers = await editor(db)
    created = await client.post(
        "/api/v1/news-items",
        json={
            "title": "  김포 소식  ",
            "summary": "요약",
            "body": '<p onclick="x()">본문 <a href="javascript:alert(1)">링크</a>'
            '<a href="https://gimpo.go.kr">시청</a></p><script>alert(1)</script>',
            "link": "https://www.gimpo.go.kr/news/1",
            "image_url": "https://www.gimpo.go.kr/i.png",
            "category": "행정",
            "published_at": "2026-03-02T09:00:00",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["title"] == "김포 소식"
    assert "<script" not in item["body"] and "onclick" not in item["body"]
    assert "javascript:" not in item["body"]
    assert 'href="https://gimpo.go.kr"' in item["body"]
    # Naive times are Asia/Seoul.
    assert item["published_at"].startswith("2026-03-02T00:00:00")

    got = await client.get(f"/api/v1/news-items/{item['id']}", headers=headers)
    assert got.status_code == 200 and got.json() == item

    replaced = await client.put(
        f"/api/v1/news-items/{item['id']}",
        json={"title": "바뀐 제목", "link": "https://www.gimpo.go.kr/news/1"},
        headers=headers,
    )
    assert replaced.status_code == 200
    assert replaced.json()["title"] == "바뀐 제목" and replaced.json()["summary"] == ""

    duplicate = await client.post(
        "/api/v1/news-items",
        json={"title": "또", "link": "https://www.gimpo.go.kr/news/1"},
        headers=headers,
    )
    assert duplicate.status_code == 409

    deleted = await client.delete(f"/api/v1/news-items/{item['id']}", headers=headers)
    assert deleted.status_code == 204
    assert (
        await client.get(f"/api/v1/news-items/{item['id']}", headers=headers)
    ).status_code == 404
    actions = [r["action"] for r in await db.pool.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["news_item.create", "news_item.update", "news_item.delete"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "x", "link": "javascript:alert(1)"}, "link"),
        ({"title": "x", "link": "ftp://gimpo.go.kr/a"}, "link"),
        ({"title": "x", "image_url": "data:image/png;base64,AAAA"}, "image_url"),
        ({"title": "x", "link": "https://"}, "link"),
        ({"title": "x\u0000y"}, "title"),
        ({"title": "x", "published_at": "not a date"}, "published_at"),
        ({"title": "x", "published_at": "1850-01-01T00:00:00"}, "published_at"),
        ({"title": "x", "unknown": 1}, "unknown"),
    ],
)
async def test_validation(
    client: Client, db: Database, payload: dict[str, object], field: str
) -> None:
    response = await client.post("/api/v1/news-items", json=payload, headers=await editor(db))
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"
    assert field in response.text


async def test_huge_and_malformed_payloads(client: Client, db: Database) -> None:
    headers = await editor(db)
    huge = await client.post(
        "/api/v1/news-items", json={"title": "x", "body": "가" * 1_200_000}, headers=headers
    )
    assert huge.status_code == 413
    broken = await client.post(
        "/api/v1/news-items",
        content=b"{not json",
        headers={**headers, "content-type": "application/json"},
    )
    assert broken.status_code == 400
    assert (
        await client.get("/api/v1/news-items/99999999999999999999", headers=headers)
    ).status_code in (404, 422)
    assert (
        await client.get("/api/v1/news-items/9223372036854775807", headers=headers)
    ).status_code == 404


async def test_list_paging_and_date_filter(client: Client, db: Database) -> None:
    headers = await editor(db)
    for day in range(1, 6):
        response = await client.post(
            "/api/v1/news-items",
            json={"title": f"3월 {day}일 소식", "published_at": f"2026-03-0{day}T12:00:00+09:00"},
            headers=headers,
        )
        assert response.status_code == 201
    page = (await client.get("/api/v1/news-items?per_page=2&page=2", headers=headers)).json()
    assert page["total"] == 5 and page["page"] == 2
    assert [i["title"] for i in page["items"]] == ["3월 3일 소식", "3월 2일 소식"]
    filtered = await client.get(
        "/api/v1/news-items",
        params={"published_from": "2026-03-02T00:00:00", "published_to": "2026-03-03T23:59:59"},
        headers=headers,
    )
    assert [i["title"] for i in filtered.json()["items"]] == ["3월 3일 소식", "3월 2일 소식"]
    assert (await client.get("/api/v1/news-items?per_page=1000", headers=headers)).status_code in (
        400,
        422,
    )


async def test_import_feed_body_dedups_by_link(client: Client, db: Database) -> None:
    headers = {**await editor(db), "content-type": "application/rss+xml"}
    first = await client.post("/api/v1/news-items/import-feed", content=FEED, headers=headers)
    assert first.status_code == 200, first.text
    result = first.json()
    assert result["inserted"] == 2 and result["duplicates"] == 0
    assert result["errors"] == [{"entry": 3, "reason": "entry has no link to de-duplicate by"}]
    again = (
        await client.post("/api/v1/news-items/import-feed", content=FEED, headers=headers)
    ).json()
    assert again["inserted"] == 0 and again["duplicates"] == 2
    festival = await db.pool.fetchrow(
        "SELECT * FROM news_items WHERE link = 'https://www.gimpo.go.kr/news/101'"
    )
    assert festival is not None
    assert festival["title"] == "김포 한강 야간축제 개최"
    assert festival["category"] == "행사"
    assert "<script" not in festival["body"] and "<b>열립니다</b>" in festival["body"]
    assert festival["published_at"].isoformat() == "2026-03-02T00:00:00+00:00"


async def test_import_feed_upload_and_bad_feeds(client: Client, db: Database) -> None:
    headers = await editor(db)
    upload = await client.post(
        "/api/v1/news-items/import-feed",
        files={"file": ("feed.xml", FEED, "application/rss+xml")},
        headers=headers,
    )
    assert upload.status_code == 200 and upload.json()["inserted"] == 2
    junk = await client.post(
        "/api/v1/news-items/import-feed",
        content=b"\x00\x01 this is not xml <<<",
        headers={**headers, "content-type": "application/xml"},
    )
    assert junk.status_code == 422
    for url in ("file:///etc/passwd", "ftp://example.org/feed", "gopher://x", "not a url"):
        refused = await client.post(
            "/api/v1/news-items/import-feed", json={"url": url}, headers=headers
        )
        assert refused.status_code == 422, url


class _FeedHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/big":
            body = b"<rss>" + b" " * (6 * 1024 * 1024)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
            return
        else:
            body = FEED
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def feed_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FeedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


async def test_import_feed_from_url(client: Client, db: Database, feed_server: str) -> None:
    headers = await editor(db)
    fetched = await client.post(
        "/api/v1/news-items/import-feed", json={"url": f"{feed_server}/rss"}, headers=headers
    )
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["inserted"] == 2
    too_big = await client.post(
        "/api/v1/news-items/import-feed", json={"url": f"{feed_server}/big"}, headers=headers
    )
    assert too_big.status_code == 422 and "larger" in too_big.text
    redirected = await client.post(
        "/api/v1/news-items/import-feed", json={"url": f"{feed_server}/redirect"}, headers=headers
    )
    assert redirected.status_code == 422
    await asyncio.sleep(0)
