"""The pre-send check on the issue page in Debian's chromium: the page opens
at once and fetches the check by itself (htmx), lists each finding with its
status in words, says when the content changed since, and the send-now
confirmation names the problems and sends once the editor ticks that she
knows. axe-core finds nothing at 1280 and 360 px, and nothing scrolls sideways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.core.db import Database
from tests.support.browser import axe_violations, described, overflows_at
from tests.support.console import make_user
from tests.support.ops_seed import make_subscribers
from tests.support.websites import Website, website
from tests.web.console.conftest import Console
from tests.web.console.test_console_browser import log_in

WIDTHS = (1280, 360)


@pytest.fixture
def site() -> Iterator[Website]:
    with website() as running:
        yield running


async def passes_axe_at_every_width(page: Any, axe: Path, label: str) -> None:
    size = page.viewport_size
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        violations = await axe_violations(page, axe)
        assert violations == [], f"{label} at {width} px: {described(violations)}"
        assert not await overflows_at(page, width), f"{label} scrolls sideways at {width} px"
    await page.set_viewport_size(size)


async def test_the_issue_page_checks_before_sending_and_passes_axe(
    page: Any, console: Console, db: Database, axe: Path, site: Website
) -> None:
    from playwright.async_api import expect

    editor = await make_user(db, "editor")
    await make_subscribers(db, 3, prefix="resident")
    body = (
        f'<p>신청은 <a href="{site.url("/members")}">회원 전용 신청 페이지</a>에서 합니다.</p>'
        f'<p><img src="{site.url("/not-image.png")}" alt="행사 포스터"></p>'
    )
    fine = await db.pool.fetchval(
        "INSERT INTO news_items (title, summary, body, link, image_url) VALUES "
        "('김포골드라인 증차 안내', '출퇴근 시간 열차를 늘립니다.', '<p>본문</p>', $1, $2) "
        "RETURNING id",
        site.url("/ok"),
        site.url("/photo.png"),
    )
    broken = await db.pool.fetchval(
        "INSERT INTO news_items (title, summary, body, link) VALUES "
        "('한강 야간 축제 개최', '토요일 저녁 라베니체에서', $1, $2) RETURNING id",
        body,
        # A very long address: the list must wrap it on a phone, not scroll.
        site.url("/missing?from=" + "gimpo-festival-" * 12),
    )
    issue_id = await db.pool.fetchval(
        "INSERT INTO issues (title, intro, news_item_ids) "
        "VALUES ('3월 김포 소식', '봄 소식을 전합니다.', $1) RETURNING id",
        [fine, broken],
    )
    await log_in(page, console.base, editor.email)

    # Never checked: the page asks for the check itself and shows it when done.
    await page.goto(f"{console.base}/admin/issues/{issue_id}")
    await expect(page.locator("#checks-status")).to_contain_text(
        "점검을 마쳤습니다", timeout=30_000
    )
    problems = page.locator("#checks-open li.check.problem")
    await expect(problems.first).to_be_visible()
    dead = problems.filter(has_text="링크가 열리지 않습니다 (HTTP 404)")
    await expect(dead).to_contain_text("항목: 한강 야간 축제 개최")
    await expect(dead.locator(".status")).to_have_text("문제")  # a word, not a colour alone
    not_image = problems.filter(has_text="그림이 아닌 것")
    await expect(not_image).to_contain_text("그림 주소: " + site.url("/not-image.png"))
    warning = page.locator("#checks-open li.check.warning").filter(has_text="HTTP 403")
    await expect(warning.locator(".status")).to_have_text("주의")
    await page.click("#checks-fine summary")
    await expect(page.locator("#checks-fine li.check.ok").first).to_be_visible()
    await passes_axe_at_every_width(page, axe, "issue page with its check")

    # An edit makes the kept result stale: said at once, then checked again.
    await db.pool.execute(
        "UPDATE news_items SET link = $1 WHERE id = $2", site.url("/redirect/2"), broken
    )
    await page.goto(f"{console.base}/admin/issues/{issue_id}")
    stale = page.locator("#checks-stale")
    await expect(stale).to_have_text(
        "내용이 바뀌어 다시 점검해야 합니다. 아래는 바뀌기 전 내용의 결과입니다."
    )
    await expect(stale).to_have_count(0, timeout=30_000)
    await expect(page.locator("#checks-open")).not_to_contain_text("HTTP 404")

    # Sending names the problems that are left and waits for her word.
    await page.click("#action-send-now")
    await expect(page.locator("h1")).to_have_text("지금 발송할까요?")
    await expect(page.locator("#problems")).to_contain_text("그림이 아닌 것")
    await passes_axe_at_every_width(page, axe, "send-now confirmation with problems")
    await page.click("#confirm")
    await expect(page.locator("#despite_problems")).to_have_attribute("aria-invalid", "true")
    await passes_axe_at_every_width(page, axe, "send-now confirmation, box not ticked")
    await page.check("#despite_problems")
    await page.click("#confirm")
    await expect(page.locator("#flash")).to_contain_text("발송을 시작했습니다")
    await expect(page.locator("#issue-status")).to_have_text("발송 중")
    await expect(page.locator("#checks")).to_have_count(0)  # nothing left to check
    # The 409 of the unticked confirmation is the only failed answer.
    assert [e for e in page.console_errors if "409" not in e] == []
