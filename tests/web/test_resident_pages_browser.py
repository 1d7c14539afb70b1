"""Every public page in a real browser (Debian's chromium, Playwright) at phone and
desktop widths, against `newsletter serve`: axe-core finds nothing (WCAG 2.2 AA
and best practice), nothing scrolls sideways, Korean breaks between words; the
signup embedded in the city homepage; scanners never confirm, people need no
second decision."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import time_machine

from newsletter.core.db import Database
from newsletter.core.tokens import Tokens
from tests.conftest import TEST_SECRET_KEY, SmtpServer, bearer, drain, free_port, make_settings
from tests.support.browser import CHROMIUM_ARGS, axe, axe_violations, chromium
from tests.support.processes import serving

__all__ = ["axe", "chromium"]  # fixtures, used by name

SECRET = TEST_SECRET_KEY
WIDTHS = (320, 1280)

# Every element whose own text a person reads must keep Korean words whole.
WORD_BREAKS = """() => {
  const seen = new Set();
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (own && el.offsetParent !== null) seen.add(getComputedStyle(el).wordBreak);
  }
  return [...seen];
}"""
SIDEWAYS = "() => document.documentElement.scrollWidth - window.innerWidth"


@dataclass
class Origins:
    """Two pages on other origins: the city homepage (allowed to embed) and a stranger."""

    city: str
    stranger: str


class _Page(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


@pytest.fixture
def other_origins(tmp_path: Path) -> Iterator[Origins]:
    root = tmp_path / "site"
    root.mkdir()
    servers = []
    for _ in range(2):
        server = ThreadingHTTPServer(
            ("127.0.0.1", free_port()),
            lambda *a, **k: _Page(*a, directory=str(root), **k),
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    # "localhost" and "127.0.0.1" with other ports: other origins than the service's.
    city, stranger = (f"http://localhost:{s.server_address[1]}" for s in servers)
    try:
        yield Origins(city, stranger)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
async def server(
    database_url: str, tmp_path: Path, other_origins: Origins, smtp_server: SmtpServer
) -> AsyncIterator[str]:
    async with serving(
        database_url,
        EMBED_ORIGINS=other_origins.city,
        SMTP_URL=f"smtp://127.0.0.1:{smtp_server.port}",
        RATE_PER_SECOND="20",
    ) as served:
        yield served.base_url


def write_host_page(tmp_path: Path, name: str, server: str) -> None:
    (tmp_path / "site" / name).write_text(
        f"""<!doctype html><html lang="ko"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>김포시청</title></head>
<body><main><h1>김포시청 누리집</h1>
<iframe id="signup" title="김포시 뉴스레터 구독 신청" src="{server}/embed/subscribe"
 style="width:100%;height:1400px;border:0"></iframe></main></body></html>""",
        encoding="utf-8",
    )


async def subscriber(db: Database, email: str, status: str, name: str | None = None) -> str:
    """A subscriber; their public id, which the links in mail name."""
    public_id: str = await db.pool.fetchval(
        "INSERT INTO subscribers (email, status, name) VALUES ($1, $2, $3) RETURNING public_id",
        email,
        status,
        name,
    )
    return public_id


async def sent_issue(server: str, db: Database) -> int:
    headers = await bearer(db)
    async with httpx.AsyncClient(base_url=server, headers=headers) as http:
        ids = []
        for n in range(1, 4):
            item = await http.post(
                "/api/v1/news-items",
                json={
                    "title": f"김포한강신도시 생활체육시설 {n}곳 개관 안내",
                    "summary": "주민 누구나 이용할 수 있는 생활체육시설을 새로 열었습니다.",
                    "body": "<p>평일 오전 6시부터 오후 10시까지 운영하며 주말에는 단축 "
                    "운영합니다. 자세한 내용은 체육진흥과로 문의해 주세요.</p>",
                    "link": f"https://www.gimpo.go.kr/news/{n}",
                    "category": "체육",
                    "published_at": "2026-11-20T09:00:00+09:00",
                },
            )
            ids.append(item.json()["id"])
        issue = await http.post(
            "/api/v1/issues",
            json={"title": "11월 김포 소식", "intro": "이번 달 소식입니다.", "news_item_ids": ids},
        )
        # Offline, the pre-send check cannot reach the links: sent despite them.
        started = await http.post(
            f"/api/v1/issues/{issue.json()['id']}/send-now", json={"despite_problems": True}
        )
        assert started.status_code == 200, started.text
        number: int = started.json()["number"]
    return number


async def check(page: Any, axe_script: Path, what: str, frame: Any = None) -> None:
    target = frame or page
    violations = await axe_violations(target, axe_script)
    assert violations == [], f"{what}: {violations}"
    assert await page.evaluate(SIDEWAYS) <= 0, f"{what} scrolls sideways"
    assert await target.evaluate(WORD_BREAKS) == ["keep-all"], what


async def test_every_public_page_passes_axe_at_phone_and_desktop_widths(
    chromium: str,
    axe: Path,
    server: str,
    db: Database,
    tmp_path: Path,
    other_origins: Origins,
) -> None:
    from playwright.async_api import async_playwright

    tokens = Tokens(SECRET)
    pending = await subscriber(db, "pending@example.com", "pending")
    named = await subscriber(db, "named@example.com", "pending", name="홍길동")
    active = await subscriber(db, "active@example.com", "active")
    gone = await subscriber(db, "gone@example.com", "unsubscribed")
    number = await sent_issue(server, db)
    write_host_page(tmp_path, "index.html", server)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for width in WIDTHS:
                # bypass_csp: axe is injected as an inline script, which our
                # CSP rightly refuses; the framing test below keeps the CSP on.
                context = await browser.new_context(
                    locale="ko-KR", viewport={"width": width, "height": 900}, bypass_csp=True
                )
                page = await context.new_page()
                at = f"{width}px"
                # The checker itself can fail: a page with a known fault is caught.
                await page.set_content("<html><body><img src='x.png'></body></html>")
                assert await axe_violations(page, axe) != []

                for path, what in (
                    ("/subscribe", "form"),
                    ("/subscribe?lang=en", "form in English"),
                    (f"/confirm?token={tokens.confirm(pending)}", "confirm"),
                    (f"/confirm?token={tokens.confirm(named)}", "confirm with the name typed"),
                    (f"/unsubscribe?token={tokens.unsubscribe(active)}", "unsubscribe"),
                    (f"/unsubscribe?token={tokens.unsubscribe(gone)}", "already unsubscribed"),
                    ("/confirm?token=tampered", "bad link"),
                    ("/archive", "archive list"),
                    (f"/archive/{number}", "archive issue"),
                    ("/archive/9999", "archive 404"),
                ):
                    await page.goto(server + path)
                    await check(page, axe, f"{what} at {at}")

                # The form after a mistake: the error is tied to its field,
                # what was typed and the consent tick are kept, the title says so.
                await page.goto(server + "/subscribe")
                await page.fill("#email", "not-an-address")
                await page.fill("#name", "홍길동")
                await page.check("#consent")
                await page.click("button[type=submit]")
                await page.wait_for_selector("#email-error")
                assert (await page.title()).startswith("오류")
                email = page.locator("#email")
                assert await email.get_attribute("aria-invalid") == "true"
                assert await email.get_attribute("aria-describedby") == "email-error"
                assert await email.input_value() == "not-an-address"
                assert await page.locator("#name").input_value() == "홍길동"
                assert await page.locator("#consent").is_checked()
                await check(page, axe, f"error at {at}")

                # Leaving, and the page that says so.
                await page.goto(f"{server}/unsubscribe?token={tokens.unsubscribe(active)}")
                await page.click("button[type=submit]")
                await page.wait_for_selector("text=수신 거부가 완료되었습니다")
                await check(page, axe, f"unsubscribed at {at}")
                await db.pool.execute(
                    "UPDATE subscribers SET status = 'active' WHERE public_id = $1", active
                )

                # The city homepage (another origin) frames the signup form.
                await page.goto(f"{other_origins.city}/index.html")
                frame = page.frame_locator("#signup")
                await frame.locator("#email").wait_for()
                [embedded] = [f for f in page.frames if f.url.endswith("/embed/subscribe")]
                await check(page, axe, f"embedded form at {at}", frame=embedded)
                await context.close()
        finally:
            await browser.close()


async def test_embed_is_framed_by_the_city_homepage_only(
    chromium: str, server: str, db: Database, tmp_path: Path, other_origins: Origins
) -> None:
    from playwright.async_api import async_playwright

    write_host_page(tmp_path, "index.html", server)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(locale="ko-KR")
            await page.goto(f"{other_origins.city}/index.html")
            form = page.frame_locator("#signup")
            await form.locator("#email").fill("framed@example.com")
            await form.locator("#consent").check()
            # The widget works inside the frame under the page's strict CSP
            # (our own script, worker and challenge endpoint only).
            [framed] = [f for f in page.frames if f.url.endswith("/embed/subscribe")]
            await framed.wait_for_function(
                "() => { const f = document.querySelector('input[name=altcha]');"
                " return f && f.value.length > 100; }",
                timeout=60_000,
            )
            await form.locator("button[type=submit]").click()
            await form.locator("text=확인 메일을 보냈습니다").wait_for()
            row = await db.fetchrow("get_subscriber_by_email", "framed@example.com")
            assert row is not None and row["status"] == "pending"
            assert await db.pool.fetchval("SELECT count(*) FROM spent_challenges") == 1

            # Any other site gets the browser's refusal, not the form.
            await page.goto(f"{other_origins.stranger}/index.html")
            await asyncio.sleep(1)
            [refused] = [f for f in page.frames if f is not page.main_frame]
            assert await refused.locator("#email").count() == 0
        finally:
            await browser.close()


async def test_signup_with_the_proof_of_work_and_without_javascript(
    chromium: str, server: str, db: Database
) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(locale="ko-KR")
            await page.goto(f"{server}/subscribe")
            await page.fill("#email", "person@example.com")
            await page.check("#consent")
            # The widget solves its challenge (our own script, worker and endpoint).
            await page.wait_for_function(
                "() => { const f = document.querySelector('input[name=altcha]');"
                " return f && f.value.length > 100; }",
                timeout=60_000,
            )
            await page.click("button[type=submit]")
            await page.wait_for_selector("text=확인 메일을 보냈습니다")
            assert await db.pool.fetchval("SELECT count(*) FROM spent_challenges") == 1

            no_script = await browser.new_context(java_script_enabled=False, locale="ko-KR")
            plain = await no_script.new_page()
            await plain.goto(f"{server}/subscribe")
            await plain.fill("#email", "noscript@example.com")
            await plain.check("#consent")
            await plain.click("button[type=submit]")
            await plain.wait_for_selector("text=확인 메일을 보냈습니다")
        finally:
            await browser.close()
    for email in ("person@example.com", "noscript@example.com"):
        row = await db.fetchrow("get_subscriber_by_email", email)
        assert row is not None and row["status"] == "pending", email


def confirm_link(smtp_server: SmtpServer, email: str) -> str:
    [mail] = smtp_server.handler.to(email)
    body = mail.message.get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(r"https?://\S+/confirm\?token=\S+", body.get_content())
    assert found is not None
    return found.group(0)


async def status(db: Database, email: str) -> str:
    row = await db.fetchrow("get_subscriber_by_email", email)
    assert row is not None
    return str(row["status"])


async def test_scanners_never_confirm_and_people_need_no_second_decision(
    chromium: str, server: str, db: Database, database_url: str, smtp_server: SmtpServer
) -> None:
    from playwright.async_api import async_playwright

    worker_settings = make_settings(database_url, smtp_server.target, base_url=server)
    async with httpx.AsyncClient(base_url=server) as http:
        signed_up = await http.post(
            "/subscribe", data={"email": "scanned@example.com", "consent": "on"}
        )
        assert signed_up.status_code == 200
    await drain(worker_settings, db)
    link = confirm_link(smtp_server, "scanned@example.com")

    # A scanner's plain GET, seconds after delivery: nothing changes.
    async with httpx.AsyncClient() as http:
        assert (await http.get(link)).status_code == 200
    assert await status(db, "scanned@example.com") == "pending"

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            # A headless browser opening it seconds after sending runs our
            # scripts, and still confirms nothing: the page waits for a click.
            scanner = await browser.new_page(locale="ko-KR")
            await scanner.goto(link)
            await scanner.wait_for_load_state("networkidle")
            await asyncio.sleep(2)
            assert scanner.url == link
            assert await status(db, "scanned@example.com") == "pending"

            # The person clicks the one button: subscribed.
            await scanner.click("button[type=submit]")
            await scanner.wait_for_selector("text=구독이 완료되었습니다")
            assert await status(db, "scanned@example.com") == "active"

            # Opened later, as people do when they get to their inbox: no second
            # decision, the page confirms by itself.
            later = await subscriber(db, "later@example.com", "pending")
            with time_machine.travel(datetime.now(UTC) - timedelta(minutes=10), tick=False):
                old_token = Tokens(SECRET).confirm(later)
            person = await browser.new_page(locale="ko-KR")
            await person.goto(f"{server}/confirm?token={old_token}")
            await person.wait_for_selector("text=구독이 완료되었습니다")
            assert await status(db, "later@example.com") == "active"
        finally:
            await browser.close()


async def test_issue_mail_passes_axe_at_phone_and_desktop_widths(chromium: str, axe: Path) -> None:
    from playwright.async_api import async_playwright

    from newsletter.editorial.rendering import IssueContent, personalise, render_issue
    from tests.editorial.test_rendering import SETTINGS, twenty_items

    rendered = render_issue(IssueContent("11월 김포 소식", number=7), twenty_items(), SETTINGS)
    html, _text = personalise(rendered, unsubscribe_url="https://x.test/u?token=t", name=None)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            for width in WIDTHS:
                page = await browser.new_page(viewport={"width": width, "height": 900})
                await page.set_content(html)
                violations = [
                    v
                    for v in await axe_violations(page, axe)
                    # A mail is shown inside the mail client's own page, which
                    # has the landmarks; the mail itself is one article.
                    if v["id"] not in ("landmark-one-main", "region")
                ]
                assert violations == [], f"{width}px: {violations}"
                assert await page.evaluate(SIDEWAYS) <= 0
                assert await page.evaluate(WORD_BREAKS) == ["keep-all"]
        finally:
            await browser.close()
