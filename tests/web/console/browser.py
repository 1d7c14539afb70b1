"""The /ops page in a real browser (Debian's chromium driven by Playwright) against a
real `newsletter serve` process: login, live progress, chart, cookie, logout."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from newsletter.core.db import Database
from newsletter.ops.apikeys import create_key
from tests.conftest import ROOT, free_port
from tests.support.ops_seed import seed_issue

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _install(what: str, command: list[str]) -> str | None:
    """Run an installer; return why it failed, or None."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{what}: {exc}"
    if done.returncode != 0:
        return f"{what}: exit {done.returncode}: {done.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium (installed with apt if missing) and the playwright package.

    Playwright's own browser downloads are never used: we point it at the
    distribution's binary, which gets security updates with the system.
    """
    if importlib.util.find_spec("playwright") is None:
        problem = _install(
            "pip install playwright", [sys.executable, "-m", "pip", "install", "-q", "playwright"]
        )
        if problem or importlib.util.find_spec("playwright") is None:
            pytest.skip(f"playwright cannot be installed here ({problem})")
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None:
            pytest.skip("chromium is missing and this system has no apt-get to install it")
        problem = _install("apt-get install chromium", ["apt-get", "install", "-y", "chromium"])
        if problem and "Could not get lock" in problem:  # another apt run: wait once, retry
            subprocess.run(["sleep", "30"], check=False)
            problem = _install("apt-get install chromium", ["apt-get", "install", "-y", "chromium"])
        if not CHROMIUM.exists():
            pytest.skip(f"chromium cannot be installed here ({problem})")
    return str(CHROMIUM)


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """`newsletter serve` on a free port, as in production (uvicorn, own pool)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE_URL=database_url,
        NEWSLETTER_SECRET_KEY="test-secret-key-0123456789",
        NEWSLETTER_BASE_URL=f"http://127.0.0.1:{port}",
        NEWSLETTER_RATE_PER_SECOND="20",
    )
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                if process.poll() is not None:
                    break
                try:
                    if (await http.get(f"{base}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        if process.poll() is not None:
            pytest.fail("server did not start:\n" + (tmp_path / "serve.log").read_text())
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def key(db: Database, role: str) -> str:
    async with db.pool.acquire() as conn:
        _, value = await create_key(conn, role=role, name=f"{role} in the browser")
    return value


async def test_ops_page_in_a_real_browser(chromium: str, server: str, db: Database) -> None:
    from playwright.async_api import async_playwright, expect

    seeded = await seed_issue(db, queued=60, sent=40, failed=0)
    ops_key, editor_key = await key(db, "ops"), await key(db, "editor")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(locale="ko-KR")
            page = await context.new_page()

            await page.goto(f"{server}/ops")
            await expect(page.locator("h2")).to_have_text("로그인")

            await page.fill("#key", "nl_not-a-real-key")
            await page.click("#login")
            await expect(page.locator("#login-error")).to_contain_text("Invalid or revoked key")

            await page.fill("#key", editor_key)
            await page.click("#login")
            await expect(page.locator("#login-error")).to_contain_text("ops 권한이 필요합니다")

            await page.fill("#key", ops_key)
            await page.click("#login")
            await expect(page).to_have_url(f"{server}/ops")
            progress = page.locator("#progress")
            await expect(progress).to_have_attribute("aria-valuenow", "40.0")
            await expect(page.locator("#progress-text")).to_have_text("40 / 100 (40.0%)")
            await expect(page.locator("#issue")).to_have_attribute(
                "data-issue-id", str(seeded.issue_id)
            )
            await expect(page.locator("#rate-chart rect")).to_have_count(30)
            assert await page.locator("#rate-chart rect[data-sent='40']").count() == 1
            await expect(page.locator("#queued")).to_have_text("60")

            # The session cookie is HttpOnly: scripts on the page cannot read it.
            [cookie] = await context.cookies()
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert ops_key not in cookie["value"]
            assert "nl_ops" not in await page.evaluate("document.cookie")

            # Workers move on; the page refreshes itself and shows it.
            await db.pool.execute(
                "UPDATE deliveries SET status = 'sent', sent_at = now(), smtp_code = 250 "
                "WHERE id IN (SELECT id FROM deliveries WHERE issue_id = $1 "
                "AND status = 'queued' ORDER BY id LIMIT 20)",
                seeded.issue_id,
            )
            await expect(page.locator("#progress-text")).to_have_text(
                "60 / 100 (60.0%)", timeout=20_000
            )
            await expect(progress).to_have_attribute("aria-valuenow", "60.0")

            await page.click("text=로그아웃")
            await expect(page.locator("h2")).to_have_text("로그인")
            assert await context.cookies() == []
        finally:
            await browser.close()


async def test_ops_page_takes_a_bearer_header(server: str, db: Database) -> None:
    await seed_issue(db, queued=1, sent=1)
    ops_key = await key(db, "ops")
    async with httpx.AsyncClient(base_url=server) as http:
        page = await http.get("/ops", headers={"authorization": f"Bearer {ops_key}"})
        assert page.status_code == 200
        assert 'id="progress"' in page.text
        assert '<meta http-equiv="refresh"' in page.text
        # Every time on the page names its zone: the snapshot, the start, the chart's axis.
        assert re.search(r"\d\d:\d\d:\d\d KST</span> 기준", page.text)
        assert re.search(r"시작 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d KST", page.text)
        assert re.search(r">\d\d:\d\d KST</text>", page.text)
        wrong = await http.get("/ops", headers={"authorization": "Bearer nl_wrong"})
        assert wrong.status_code == 401
        assert 'id="progress"' not in wrong.text
    async with httpx.AsyncClient(base_url=server, cookies={"nl_ops": "1.forged.sig"}) as http:
        forged = await http.get("/ops")
        assert forged.status_code == 200 and 'id="key"' in forged.text  # the login form
