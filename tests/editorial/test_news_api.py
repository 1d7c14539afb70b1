"""News items over the editors' API: auth, CRUD, validation, sanitising, feed import."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from newsletter.core.db import Database
from newsletter.editorial import news
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
    assert item["status"] == "published" and item["id"] >= 1
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
    assert replaced.json()["status"] == "published"
    listed = await client.get("/api/v1/news-items", headers=headers)
    assert [(i["id"], i["status"]) for i in listed.json()["items"]] == [(item["id"], "published")]
    schema = (await client.get("/api/docs/openapi.json")).json()["components"]["schemas"]
    out = next(s for name, s in schema.items() if name.endswith("NewsItemOut"))
    assert "status" in out["required"] and out["properties"]["status"].get("const") == "published"

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
        elif self.path.startswith("/to/"):  # /to/<url>: redirect there
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/to/"))
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


@contextlib.contextmanager
def serve_feeds(host: str) -> Iterator[str]:
    server = ThreadingHTTPServer((host, 0), _FeedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def allow_private(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> None:
    """Let feed fetches reach these loopback addresses (production: none)."""
    policy = news.FeedFetchPolicy(frozenset(ipaddress.ip_address(a) for a in addresses))
    monkeypatch.setattr(news, "FEED_FETCH_POLICY", policy)


@pytest.fixture
def feed_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A feed server on 127.0.0.1, which the fetch policy is told to allow."""
    allow_private(monkeypatch, "127.0.0.1")
    with serve_feeds("127.0.0.1") as url:
        yield url


@pytest.fixture
def loopback_feed_server() -> Iterator[str]:
    """A feed server on 127.0.0.1 under the production policy (not allowed)."""
    with serve_feeds("127.0.0.1") as url:
        yield url


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


async def test_feed_urls_reaching_internal_addresses_are_refused(
    client: Client, db: Database, loopback_feed_server: str
) -> None:
    headers = await editor(db)
    port = loopback_feed_server.rsplit(":", 1)[1]
    for url in (
        f"{loopback_feed_server}/rss",  # a real feed: refused only by the policy
        f"http://localhost:{port}/rss",
        f"http://2130706433:{port}/rss",  # 127.0.0.1 as one decimal number
        f"http://[::1]:{port}/rss",
        f"http://[::ffff:127.0.0.1]:{port}/rss",
        "http://10.0.0.1/rss",
        "http://192.168.0.1/rss",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/rss",
        "http://224.0.0.1/rss",
        "http://[fe80::1]/rss",
        "http://[fd00::1]/rss",
    ):
        refused = await client.post(
            "/api/v1/news-items/import-feed", json={"url": url}, headers=headers
        )
        assert refused.status_code == 422, (url, refused.text)
        # The same answer as for an unreachable host: nothing about the network leaks.
        assert refused.json() == {"error": "invalid_input", "detail": "could not fetch the feed"}
    assert await db.fetchval("count_news_items_between", None, None) == 0


async def test_redirect_to_an_internal_address_is_refused(
    client: Client, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = await editor(db)
    # The first hop (127.0.0.2) is allowed; it redirects to a real feed on
    # 127.0.0.1, which is not: every hop is checked when its connection opens.
    allow_private(monkeypatch, "127.0.0.2")
    with serve_feeds("127.0.0.1") as target, serve_feeds("127.0.0.2") as first:
        direct = await client.post(
            "/api/v1/news-items/import-feed", json={"url": f"{first}/rss"}, headers=headers
        )
        assert direct.status_code == 200 and direct.json()["inserted"] == 2
        redirected = await client.post(
            "/api/v1/news-items/import-feed",
            json={"url": f"{first}/to/{target}/rss"},
            headers=headers,
        )
    assert redirected.status_code == 422, redirected.text
    assert redirected.json()["detail"] == "could not fetch the feed"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("169.254.169.254", False),
        ("0.0.0.0", False),  # noqa: S104 - an address under test, not a bind
        ("224.0.0.251", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
    ],
)
def test_only_public_unicast_addresses_count_as_public(address: str, public: bool) -> None:
    assert news.is_public(ipaddress.ip_address(address)) is public
