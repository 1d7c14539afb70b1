"""Feed import: RSS/Atom as a body, an upload or a URL fetched without SSRF."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from newsletter.app import create_app
from newsletter.core.db import Database
from newsletter.core.errors import InvalidInput, RateLimited
from newsletter.core.settings import Settings
from newsletter.editorial import feeds
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


@contextlib.asynccontextmanager
async def allowing(settings: Settings, db: Database, *addresses: str) -> AsyncIterator[Client]:
    """A client of an app whose feed imports may reach these loopback addresses
    (production allows none: feeds.PUBLIC_ONLY)."""
    policy = feeds.FeedFetchPolicy(frozenset(ipaddress.ip_address(a) for a in addresses))
    app = create_app(settings, db, feed_policy=policy)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=settings.base_url) as http:
        yield http


@pytest.fixture
def loopback_feed_server() -> Iterator[str]:
    """A feed server on 127.0.0.1."""
    with serve_feeds("127.0.0.1") as url:
        yield url


async def test_import_feed_from_url(
    settings: Settings, db: Database, loopback_feed_server: str
) -> None:
    headers = await editor(db)
    url = "/api/v1/news-items/import-feed"
    feed = loopback_feed_server
    async with allowing(settings, db, "127.0.0.1") as client:
        fetched = await client.post(url, json={"url": f"{feed}/rss"}, headers=headers)
        assert fetched.status_code == 200, fetched.text
        assert fetched.json()["inserted"] == 2
        too_big = await client.post(url, json={"url": f"{feed}/big"}, headers=headers)
        assert too_big.status_code == 422 and "larger" in too_big.text
        redirected = await client.post(url, json={"url": f"{feed}/redirect"}, headers=headers)
        assert redirected.status_code == 422


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
    assert await db.fetchval("count_news_items_between", None, None, None) == 0


async def test_redirect_to_an_internal_address_is_refused(settings: Settings, db: Database) -> None:
    headers = await editor(db)
    url = "/api/v1/news-items/import-feed"
    # The first hop (127.0.0.2) is allowed; it redirects to a real feed on
    # 127.0.0.1, which is not: every hop is checked when its connection opens.
    with serve_feeds("127.0.0.1") as target, serve_feeds("127.0.0.2") as first:
        async with allowing(settings, db, "127.0.0.2") as client:
            direct = await client.post(url, json={"url": f"{first}/rss"}, headers=headers)
            assert direct.status_code == 200 and direct.json()["inserted"] == 2
            redirected = await client.post(
                url, json={"url": f"{first}/to/{target}/rss"}, headers=headers
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
    assert feeds.is_public(ipaddress.ip_address(address)) is public


class _Dribble(BaseHTTPRequestHandler):
    """Headers at once, then a byte of body every 0.2 s for as long as the
    client listens: each read gets data well within any read timeout."""

    closed: threading.Event

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.end_headers()
        try:
            for _ in range(600):
                self.wfile.write(b" ")
                self.wfile.flush()
                threading.Event().wait(0.2)
        except OSError:
            self.closed.set()  # the client hung up

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def dribbling_server() -> Iterator[tuple[str, threading.Event]]:
    closed = threading.Event()
    handler = type("Handler", (_Dribble,), {"closed": closed})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/feed.xml", closed
    finally:
        server.shutdown()
        server.server_close()


async def test_a_dribbling_feed_server_cannot_keep_fetch_threads(db: Database) -> None:
    """The fetch ends at its deadline even when every read gets a byte in
    time, and a burst of such fetches never takes the shared executor."""
    policy = feeds.FeedFetchPolicy(frozenset({ipaddress.ip_address("127.0.0.1")}))
    with dribbling_server() as (url, closed):
        with pytest.raises(InvalidInput):
            await feeds.fetch_feed(url, policy, seconds=0.5)
        # The connection was given up: the server sees it closed.
        assert await asyncio.to_thread(closed.wait, 3.0)

        fetches = [
            asyncio.create_task(feeds.fetch_feed(url, policy, seconds=1.5)) for _ in range(10)
        ]
        await asyncio.sleep(0.2)
        # Meanwhile other off-loop work still gets a thread at once.
        assert await asyncio.wait_for(asyncio.to_thread(lambda: "free"), timeout=1.0) == "free"
        outcomes = await asyncio.gather(*fetches, return_exceptions=True)
    busy = [o for o in outcomes if isinstance(o, RateLimited)]
    timed_out = [o for o in outcomes if isinstance(o, InvalidInput)]
    assert len(busy) == 10 - feeds.FETCHERS and len(timed_out) == feeds.FETCHERS
    assert "try again" in busy[0].detail
