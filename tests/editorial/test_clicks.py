"""Click counts without tracking people: links taken from real delivered mail,
the redirect, what is not counted, tampered links, a burst of concurrent clicks,
and a real server shutting down right after a burst.

Real PostgreSQL, a real aiosmtpd server, the app over HTTP (in-process, and
`newsletter serve` for the shutdown)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.editorial import clicks, issues
from newsletter.editorial.rendering import click_url
from newsletter.ops.audit import Actor
from tests.conftest import ROOT, TEST_SECRET_KEY, SmtpServer, bearer, drain, free_port
from tests.ops.test_status_cli import run_cli
from tests.support.console import login, make_user

Client = httpx.AsyncClient
EDITOR = Actor(name="test-editor", role="editor")
# What a resident's phone sends when they tap a link in the Mail app.
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
BROWSER = {"User-Agent": IPHONE}
LINKS = ("https://www.gimpo.go.kr/news/한강축제?from=mail", "https://www.gimpo.go.kr/news/2")


async def linked_issue(db: Database, settings: Settings, *, start: bool = True) -> dict[str, Any]:
    """Three news items (two with links) in one issue, started as a send would be."""
    ids = []
    for n, link in enumerate((*LINKS, None), start=1):
        ids.append(
            await db.pool.fetchval(
                "INSERT INTO news_items (title, summary, link) VALUES ($1, $2, $3) RETURNING id",
                f"김포 소식 {n}",
                "요약",
                link,
            )
        )
    row = await issues.create(db, EDITOR, issues.IssueFields("4월 김포 소식", "안녕하세요.", ids))
    if start:
        async with db.transaction() as conn:
            await issues.start_issue(conn, row["id"], settings)
    return {"id": row["id"], "items": ids}


async def add_residents(db: Database, count: int) -> None:
    await db.pool.execute(
        "INSERT INTO subscribers (email, name, status, confirmed_at) "
        "SELECT 'resident' || g || '@example.com', '김포 시민', 'active', now() "
        "FROM generate_series(1, $1) g",
        count,
    )


def links_in(mail_html: str, mail_text: str, settings: Settings) -> tuple[list[str], list[str]]:
    base = re.escape(settings.base_url)
    html_links = re.findall(rf'href="({base}/c/[^"]+)"', mail_html)
    text_links = re.findall(rf"({base}/c/\S+)", mail_text)
    return html_links, text_links


def parts(mail: Any) -> tuple[str, str]:
    html_part = mail.message.get_body(preferencelist=("html",))
    text_part = mail.message.get_body(preferencelist=("plain",))
    return html_part.get_content(), text_part.get_content()


def from_address(app: Litestar, ip: str) -> Client:
    """A client of the app at its own address, as another resident's phone."""
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="https://newsletter.gimpo.go.kr")


async def stored_clicks(app: Litestar, db: Database, issue_id: int) -> dict[int, int]:
    """Clicks per item as the stats report them, once this process wrote what it counted."""
    counter = clicks.counter_for(app.state, db)
    deadline = time.monotonic() + 30
    while not counter.idle and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert counter.idle, "clicks were not written"
    rows = await db.pool.fetch(
        "SELECT news_item_id, sum(clicks) AS n FROM click_counts WHERE issue_id = $1"
        " GROUP BY news_item_id",
        issue_id,
    )
    return {r["news_item_id"]: r["n"] for r in rows}


async def test_links_in_delivered_mail_redirect_and_count_once(
    app: Litestar,
    client: Client,
    db: Database,
    database_url: str,
    settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    await add_residents(db, 2)
    issue = await linked_issue(db, settings)
    await drain(settings, db)
    first, second = (parts(smtp_server.handler.to(f"resident{n}@example.com")[0]) for n in (1, 2))
    first_html, first_text = links_in(*first, settings)
    second_html, second_text = links_in(*second, settings)
    # Title and button per linked item in HTML, one line in text; the same
    # addresses in both residents' mail: nothing in them names a person.
    item1, item2 = (click_url(settings, issue["id"], i) for i in issue["items"][:2])
    assert sorted(set(first_html)) == sorted({item1, item2}) and len(first_html) == 4
    assert first_text == [item1, item2]
    assert (first_html, first_text) == (second_html, second_text)
    assert "gimpo.go.kr/news" not in first[0] + first[1]  # no direct link left

    # Resident 1 taps the HTML link, resident 2 the text link of item 1.
    tapped = await client.get(first_html[0].removeprefix(settings.base_url), headers=BROWSER)
    assert tapped.status_code == 302 and tapped.content == b""
    assert tapped.headers["location"] == (
        "https://www.gimpo.go.kr/news/%ED%95%9C%EA%B0%95%EC%B6%95%EC%A0%9C?from=mail"
    )
    assert tapped.headers["cache-control"] == "no-store"
    assert tapped.headers["referrer-policy"] == "no-referrer"
    texted = await client.get(second_text[0].removeprefix(settings.base_url), headers=BROWSER)
    assert texted.status_code == 302
    other = await client.get(item2.removeprefix(settings.base_url), headers={"User-Agent": DESKTOP})
    assert other.headers["location"] == LINKS[1]
    assert await stored_clicks(app, db, issue["id"]) == {
        issue["items"][0]: 2,
        issue["items"][1]: 1,
    }
    # The figures editors and ops read: per item, in the issue's order.
    ops = await bearer(db, "ops")
    stats = (await client.get(f"/api/v1/issues/{issue['id']}/stats", headers=ops)).json()
    assert [(c["news_item_id"], c["url"], c["clicks"]) for c in stats["clicks"]] == [
        (issue["items"][0], LINKS[0], 2),
        (issue["items"][1], LINKS[1], 1),
    ]
    assert stats["clicks_total"] == 3
    assert [h["clicks"] for h in stats["clicks"][0]["by_hour"]] == [2]
    # Nothing about who clicked is kept anywhere.
    columns = await db.pool.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'click_counts'"
    )
    assert {c["column_name"] for c in columns} == {"issue_id", "news_item_id", "hour", "clicks"}
    metrics = (await client.get("/metrics", headers=await bearer(db, "ops"))).text
    assert (
        f'newsletter_clicks_total{{issue_id="{issue["id"]}",news_item_id="{issue["items"][0]}"}}'
        " 2.0" in metrics
    )
    # The editors' console shows the same per item.
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    console = (await client.get(f"/admin/issues/{issue['id']}")).text
    assert re.search(r"<td[^>]*>김포 소식 1</td>\s*<td[^>]*>2</td>", console), console
    code, status = await run_cli(database_url, "status")
    # The same figures in the terminal (the live view both draw, ops/live_view.py).
    assert code == 0 and "뉴스 링크 3회" in status
    assert re.search(r"김포 소식 1\s+2\s*\n\s*김포 소식 2\s+1", status), status


async def test_head_prefetch_scanners_and_bots_are_redirected_but_not_counted(
    app: Litestar, client: Client, db: Database, settings: Settings
) -> None:
    issue = await linked_issue(db, settings)
    path = click_url(settings, issue["id"], issue["items"][0]).removeprefix(settings.base_url)
    not_people: list[tuple[str, dict[str, str]]] = [
        ("HEAD", BROWSER),
        ("GET", {**BROWSER, "Sec-Purpose": "prefetch"}),
        ("GET", {**BROWSER, "Sec-Purpose": "prefetch;prerender"}),
        ("GET", {**BROWSER, "Purpose": "prefetch"}),
        ("GET", {**BROWSER, "X-Moz": "prefetch"}),
        ("GET", {"User-Agent": "Barracuda Sentinel (EE)"}),
        ("GET", {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}),
        ("GET", {"User-Agent": "python-requests/2.32.3"}),
        ("GET", {"User-Agent": "curl/8.5.0"}),
        ("GET", {"User-Agent": ""}),
    ]
    for method, headers in not_people:
        answer = await client.request(method, path, headers=headers)
        assert answer.status_code == 302, (method, headers)
        assert answer.headers["location"] == (
            "https://www.gimpo.go.kr/news/%ED%95%9C%EA%B0%95%EC%B6%95%EC%A0%9C?from=mail"
        )
    assert await stored_clicks(app, db, issue["id"]) == {}
    # One real tap still counts.
    await client.get(path, headers=BROWSER)
    assert await stored_clicks(app, db, issue["id"]) == {issue["items"][0]: 1}
    metrics = (await client.get("/metrics", headers=await bearer(db, "ops"))).text
    for reason in ("head", "prefetch", "bot"):
        assert f'newsletter_clicks_not_counted_total{{reason="{reason}"}}' in metrics


async def test_tampered_or_unknown_links_answer_404_and_redirect_nowhere(
    client: Client, db: Database, settings: Settings
) -> None:
    issue = await linked_issue(db, settings)
    good = click_url(settings, issue["id"], issue["items"][0]).removeprefix(settings.base_url)
    prefix, sig = good.rsplit("/", 1)
    unlinked = click_url(settings, issue["id"], issue["items"][2])  # an item without a link
    other_issue = click_url(settings, issue["id"] + 1000, issue["items"][0])
    wrong = [
        f"{prefix}/{sig[:-1]}{'a' if sig[-1] != 'a' else 'b'}",  # one character changed
        f"{prefix}/{sig.upper()}",
        f"/c/{issue['id']}/{issue['items'][1]}/{sig}",  # another item with this signature
        unlinked.removeprefix(settings.base_url),
        other_issue.removeprefix(settings.base_url),  # correctly signed, no such issue
        f"/c/{issue['id']}/x/{sig}",
        f"/c/{issue['id']}/99999999999999999999999/{sig}",
        f"/c/0/0/{sig}",
        f"{prefix}",
        f"{good}/https://evil.example.com",
    ]
    for path in wrong:
        answer = await client.get(path, headers=BROWSER)
        assert answer.status_code == 404, path
        assert "location" not in answer.headers, path
    page = await client.get(wrong[0], headers=BROWSER)
    assert "링크를 찾을 수 없습니다" in page.text
    head = await client.head(wrong[0], headers=BROWSER)
    assert head.status_code == 404 and head.content == b""
    assert await db.pool.fetchval("SELECT count(*) FROM click_counts") == 0


async def test_clicks_before_the_issue_started_are_not_counted(
    app: Litestar, client: Client, db: Database, settings: Settings
) -> None:
    issue = await linked_issue(db, settings, start=False)
    path = click_url(settings, issue["id"], issue["items"][1]).removeprefix(settings.base_url)
    # The editor tries the link in the preview: it works, and counts for nothing.
    tried = await client.get(path, headers=BROWSER)
    assert tried.status_code == 302 and tried.headers["location"] == LINKS[1]
    async with db.transaction() as conn:
        await issues.start_issue(conn, issue["id"], settings)
    # An edit of the news item after the start does not change mail already sent.
    await db.pool.execute(
        "UPDATE news_items SET link = 'https://www.gimpo.go.kr/changed' WHERE id = $1",
        issue["items"][1],
    )
    clicked = await client.get(path, headers=BROWSER)
    assert clicked.headers["location"] == LINKS[1]
    assert await stored_clicks(app, db, issue["id"]) == {issue["items"][1]: 1}


async def test_a_thousand_concurrent_clicks_count_exactly_a_thousand(
    app: Litestar, client: Client, db: Database, settings: Settings
) -> None:
    issue = await linked_issue(db, settings)
    paths = [
        click_url(settings, issue["id"], item).removeprefix(settings.base_url)
        for item in issue["items"][:2]
    ]
    # 500 residents, each clicking both links once (one client address
    # counts only a few times per link: see the next test).
    residents = [from_address(app, f"198.51.{n // 250}.{n % 250 + 1}") for n in range(500)]
    try:
        answers = await asyncio.gather(
            *(residents[n // 2].get(paths[n % 2], headers=BROWSER) for n in range(1000))
        )
    finally:
        for resident in residents:
            await resident.aclose()
    assert {a.status_code for a in answers} == {302}
    assert await stored_clicks(app, db, issue["id"]) == {
        issue["items"][0]: 500,
        issue["items"][1]: 500,
    }
    # Counted in memory and written in a few statements, not one row update per click.
    assert clicks.counter_for(app.state, db).writes < 50


async def test_one_client_address_cannot_inflate_a_links_clicks(
    app: Litestar, client: Client, db: Database, settings: Settings
) -> None:
    issue = await linked_issue(db, settings)
    first, second = (
        click_url(settings, issue["id"], item).removeprefix(settings.base_url)
        for item in issue["items"][:2]
    )
    for _ in range(500):  # one machine, a browser's User-Agent, one link
        assert (await client.get(first, headers=BROWSER)).status_code == 302
    assert (await client.get(second, headers=BROWSER)).status_code == 302
    async with from_address(app, "2001:db8:7:7::1") as neighbour:
        await neighbour.get(first, headers=BROWSER)
    # The same /64 is the same household: its second address adds nothing more.
    async with from_address(app, "2001:db8:7:7::2") as same_household:
        for _ in range(5):
            await same_household.get(first, headers=BROWSER)
    assert await stored_clicks(app, db, issue["id"]) == {
        issue["items"][0]: clicks.CLICKS_PER_CLIENT_PER_HOUR * 2,
        issue["items"][1]: 1,
    }


async def test_a_server_stopped_right_after_a_burst_loses_no_click(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings.from_env(
        {
            "NEWSLETTER_DATABASE_URL": database_url,
            "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
            "NEWSLETTER_BASE_URL": base,
        }
    )
    issue = await linked_issue(db, settings)
    path = click_url(settings, issue["id"], issue["items"][0]).removeprefix(base)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE_URL=database_url,
        NEWSLETTER_SECRET_KEY=TEST_SECRET_KEY,
        NEWSLETTER_BASE_URL=base,
    )
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=base, limits=limits) as http:
            for _ in range(200):
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            # 300 residents behind the trusted proxy (loopback), one click each.
            answers = await asyncio.gather(
                *(
                    http.get(
                        path,
                        headers={
                            **BROWSER,
                            "X-Forwarded-For": f"198.51.{100 + n // 250}.{n % 250 + 1}",
                        },
                    )
                    for n in range(300)
                )
            )
        assert {a.status_code for a in answers} == {302}
        # Stopped at once: the clicks are still in the server's memory.
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    stored = await db.pool.fetchval(
        "SELECT sum(clicks) FROM click_counts WHERE issue_id = $1", issue["id"]
    )
    assert stored == 300, (tmp_path / "serve.log").read_text()


def test_locations_are_ascii_and_only_ever_http() -> None:
    # Korean domain names and paths reach the browser as IDNA and percent-encoding.
    assert clicks.location("https://김포시.kr:8443/소식?q=축제#위") == (
        "https://xn--4k0bw40bnom.kr:8443/%EC%86%8C%EC%8B%9D?q=%EC%B6%95%EC%A0%9C#%EC%9C%84"
    )
    assert clicks.location("https://www.gimpo.go.kr/a?b=1&c=2") == (
        "https://www.gimpo.go.kr/a?b=1&c=2"
    )
    for bad in ("javascript:alert(1)", "/relative", "//evil.example.com", "data:text/html,x"):
        assert clicks.location(bad) is None, bad
    assert clicks.location("https://www.gimpo.go.kr/a\r\nSet-Cookie: x=1") is None
