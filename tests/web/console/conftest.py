"""Fixtures for the console in a real browser (chromium and axe-core from
tests/support/browser.py): the app served by uvicorn in this event loop
(so the test can hand it a feed policy that admits its own loopback feed
server), a delivery worker beside it, and an aiosmtpd server for the mail.

A failing browser test leaves a full-page screenshot (and the page's HTML)
in ``$NEWSLETTER_TEST_ARTIFACTS`` (default ``.dev/test-artifacts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import ipaddress
import os
import re
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from newsletter.app import create_app
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.delivery.worker import Worker
from newsletter.editorial.feeds import FeedFetchPolicy
from tests.conftest import ROOT, SmtpServer, free_port, make_settings
from tests.support.browser import CHROMIUM_ARGS, axe, chromium

ARTIFACTS = Path(os.environ.get("NEWSLETTER_TEST_ARTIFACTS") or ROOT / ".dev" / "test-artifacts")
__all__ = ["axe", "chromium"]  # fixtures, used by name


# --- a feed the editor imports ------------------------------------------------------

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>김포시 보도자료</title><link>http://127.0.0.1/</link>
<item><title>한강 야간 축제 개최</title><link>https://www.gimpo.go.kr/news/festival</link>
<description>토요일 저녁 라베니체에서 야간 축제가 열립니다.</description>
<pubDate>Mon, 02 Mar 2026 09:00:00 +0900</pubDate></item>
<item><title>김포골드라인 증차 안내</title><link>https://www.gimpo.go.kr/news/goldline</link>
<description>출퇴근 시간 열차를 늘립니다.</description>
<pubDate>Sun, 01 Mar 2026 09:00:00 +0900</pubDate></item>
</channel></rss>"""


@pytest.fixture
def feed_url() -> Iterator[str]:
    """A city feed on a loopback HTTP server of the test's own."""

    class Feed(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = FEED.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/rss.xml"
    server.shutdown()
    server.server_close()


# --- the app, served for real -------------------------------------------------------


@dataclass
class Console:
    base: str
    settings: Settings
    db: Database
    smtp: SmtpServer


@pytest.fixture
async def console(
    database_url: str, db: Database, smtp_server: SmtpServer
) -> AsyncIterator[Console]:
    """uvicorn serving the app on a free port, in this loop."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(database_url, smtp_server.target).replace(
        base_url=base, rate_per_second=50.0
    )
    app = create_app(
        settings,
        db,
        feed_policy=FeedFetchPolicy(allowed_private=frozenset({ipaddress.ip_address("127.0.0.1")})),
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        yield Console(base=base, settings=settings, db=db, smtp=smtp_server)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(serving, 20)


@pytest.fixture
async def worker(console: Console) -> AsyncIterator[None]:
    """A delivery worker beside the console, as in production."""
    stop = asyncio.Event()
    task = asyncio.create_task(Worker(console.settings, console.db).run(stop))
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 20)


# --- the browser, with screenshots of failures ------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.stash[FAILED] = report.failed


FAILED = pytest.StashKey[bool]()


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Any, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A Korean desktop-sized page; on failure its screenshot and HTML are kept."""
    # Playwright injects axe-core as an inline script, which the console's CSP
    # refuses: a test that runs axe lets the browser skip the policy; every
    # other browser test runs under it, and a blocked script or style would
    # show up in console_errors.
    context = await browser.new_context(
        locale="ko-KR",
        viewport={"width": 1280, "height": 900},
        bypass_csp="axe" in request.fixturenames,
    )
    tab = await context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: problems.append(str(e)))
    tab.on(
        "response",
        lambda r: problems.append(f"{r.status} {r.url}") if r.status == 404 else None,
    )
    tab.console_errors = problems
    try:
        yield tab
    finally:
        if request.node.stash.get(FAILED, False):
            ARTIFACTS.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test teardown
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
            with contextlib.suppress(Exception):
                await tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
                (ARTIFACTS / f"{name}.html").write_text(await tab.content())
        await context.close()
