"""The console as the PR office uses it: Debian's chromium driven by Playwright
against the app served by uvicorn, with a delivery worker and an SMTP server.

An editor imports the city feed, composes an issue from two items, reorders
them, previews it, test-sends it to herself, schedules it, watches it go out
and reads the results; an ops person watches a send (pausing the automatic
update) but cannot edit; a POST without the CSRF token is refused; and every
console page passes axe-core (WCAG 2.2 AA + best practice), reflows at 390 px
and can be used with the keyboard.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from newsletter.core.db import Database
from tests.support.browser import axe_violations, described, overflows_at
from tests.support.console import PASSWORD, make_user
from tests.support.ops_seed import make_subscribers, seed_issue
from tests.web.console.conftest import Console

EDITOR = "editor@gimpo.go.kr"


async def log_in(page: Any, base: str, email: str, password: str = PASSWORD) -> None:
    from playwright.async_api import expect

    await page.goto(f"{base}/admin/login")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("#login")
    await expect(page.locator("#logout")).to_be_visible()


async def wait_for_mail(console: Console, address: str, subject_start: str) -> Any:
    for _ in range(200):
        for mail in console.smtp.handler.to(address):
            if str(mail.message["Subject"]).startswith(subject_start):
                return mail
        await asyncio.sleep(0.1)
    raise AssertionError(f"no mail to {address} with a subject starting {subject_start!r}")


async def test_an_editor_produces_and_sends_an_issue(
    page: Any, console: Console, worker: None, db: Database, feed_url: str
) -> None:
    from playwright.async_api import expect

    await make_user(db, "editor", email=EDITOR)
    residents = await make_subscribers(db, 5, prefix="resident")
    base = console.base

    # Logging in: the console sends an unknown visitor to the login form.
    await page.goto(f"{base}/admin")
    await expect(page).to_have_url(f"{base}/admin/login")
    await page.fill("#email", EDITOR)
    await page.fill("#password", PASSWORD)
    await page.click("#login")
    await expect(page.locator("h1")).to_have_text("대시보드")

    # The city feed: a preview of what will be added, then the import.
    await page.click("nav a[href='/admin/news']")
    await page.click("#import-feed")
    await page.fill("#url", feed_url)
    await page.click("#fetch-feed")
    await expect(page.locator("#new-count")).to_have_text("2")
    await expect(page.locator("#feed-entries tbody tr")).to_have_count(2)
    await page.click("#import-selected")
    await expect(page.locator("#flash")).to_contain_text("뉴스 항목 2개를 가져왔습니다")
    await expect(page.locator("#news-items")).to_contain_text("한강 야간 축제 개최")

    # A draft with both items, the second moved up.
    await page.click("nav a[href='/admin/issues']")
    await page.click("#new-issue")
    await page.fill("#title", "3월 김포 소식")
    await page.fill("#intro", "봄 소식을 전합니다.")
    await page.click("#create-issue")
    await expect(page.locator("#flash")).to_contain_text("초안을 만들었습니다")
    issue_id = int(page.url.rstrip("/").split("/")[-1].split("#")[0])
    await page.click("button[aria-label='‘한강 야간 축제 개최’ 넣기']")
    await expect(page.locator("#flash")).to_contain_text("항목을 넣었습니다")
    await page.click("button[aria-label='‘김포골드라인 증차 안내’ 넣기']")
    items = page.locator("#compose-items li")
    await expect(items).to_have_count(2)
    await expect(items.nth(0)).to_contain_text("한강 야간 축제 개최")
    await page.click("button[aria-label='‘김포골드라인 증차 안내’ 위로']")
    await expect(page.locator("#flash")).to_contain_text("위로 옮겼습니다")
    await expect(items.nth(0)).to_contain_text("김포골드라인 증차 안내")
    await expect(items.nth(1)).to_contain_text("한강 야간 축제 개최")

    # The preview is the mail as residents get it, in the new order.
    frame = page.frame_locator("#preview-frame")
    await expect(frame.locator("body")).to_contain_text("봄 소식을 전합니다.")
    body = await frame.locator("body").inner_text()
    assert body.index("김포골드라인 증차 안내") < body.index("한강 야간 축제 개최")
    await page.click("text=휴대전화 화면")
    await expect(page.locator("#preview-frame")).to_have_class("preview-frame phone")
    await page.click("text=텍스트 메일")
    text = await page.locator("#preview-text").inner_text()
    assert text.index("김포골드라인 증차 안내") < text.index("한강 야간 축제 개최")

    # A test copy to herself, through the outbox and the worker.
    await page.click("#test-send")
    await expect(page.locator("#flash")).to_contain_text("[TEST] 메일을")
    test_copy = await wait_for_mail(console, EDITOR, "[TEST]")
    assert "3월 김포 소식" in str(test_copy.message["Subject"])

    # Scheduled in KST, confirmed on the next page.
    later = (datetime.now(UTC) + timedelta(minutes=30)).astimezone(ZoneInfo("Asia/Seoul"))
    await page.fill("#send_at", later.strftime("%Y-%m-%dT%H:%M"))
    await page.click("#schedule")
    await expect(page.locator("h1")).to_have_text("이 시각에 발송하도록 예약할까요?")
    await expect(page.locator("main")).to_contain_text(later.strftime("%H:%M") + " KST")
    # Offline, the pre-send check cannot reach the feed items' links on
    # www.gimpo.go.kr: the confirmation names them and she sends despite them.
    await expect(page.locator("#problems")).to_contain_text("한강 야간 축제 개최")
    await page.check("#despite_problems")
    await page.click("#confirm")
    await expect(page.locator("#flash")).to_contain_text("발송을 예약했습니다")
    await expect(page.locator("#issue-status")).to_have_text("예약됨")
    await expect(page.locator("#action-unschedule")).to_be_visible()

    # Half an hour passes (the scheduler compares send_at with the database
    # clock, which a test cannot move): the time has come.
    await db.pool.execute("UPDATE issues SET send_at = now() WHERE id = $1", issue_id)

    # The page follows the send by itself until it is over.
    await expect(page.locator("#issue-status")).to_have_text("발송 완료", timeout=60_000)
    await expect(page.locator("#count-sent")).to_have_text("5")
    await expect(page.locator("#count-failed")).to_have_text("0")
    await expect(page.locator("#progress-text")).to_have_text("5 / 5 (100.0%)")
    await expect(page.locator("#archive-link")).to_have_attribute("href", "/archive/1")
    # The buttons followed it too: nothing left to pause, cancel or unschedule.
    await expect(page.locator("#actions button")).to_have_count(0)
    for n in range(1, 6):
        await wait_for_mail(console, f"resident5-{n}@example.com", "3월 김포 소식")
    assert len(residents) == 5

    # Every change carries her name in the audit trail, not a key's.
    actors = {
        r["actor"]
        for r in await db.pool.fetch(
            "SELECT actor FROM audit_log WHERE action LIKE 'issue.%' OR action LIKE 'news_item.%'"
            " AND action <> 'issue.start'"
        )
    }
    assert "김편집 <editor@gimpo.go.kr>" in actors
    assert page.console_errors == []  # nothing blocked by the CSP, no script errors


async def test_an_ops_person_watches_but_cannot_edit(
    page: Any, console: Console, db: Database
) -> None:
    from playwright.async_api import expect

    seeded = await seed_issue(db, queued=60, sent=40)
    ops = await make_user(db, "ops")
    await log_in(page, console.base, ops.email)

    menu = page.locator("nav[aria-label='콘솔 메뉴']")
    await expect(menu).to_contain_text("발송 현황")
    await expect(menu.locator("a[href='/admin/news']")).to_have_count(0)

    await page.click("nav a[href='/admin/ops']")
    await expect(page.locator("#progress-text")).to_have_text("40 / 100 (40.0%)")
    await expect(page.locator("#issue-status")).to_have_text("발송 중")
    await expect(page.locator("#attempts")).to_contain_text("다시 보낸 횟수")
    await expect(page.locator("#rate-chart .tick").first).to_be_attached()
    assert await page.locator("meta[http-equiv='refresh']").count() == 0

    # The automatic update can be paused and resumed.
    pause = page.locator("#pause-updates")
    await pause.click()
    await expect(pause).to_have_attribute("aria-pressed", "true")
    await db.pool.execute(
        "UPDATE deliveries SET status = 'sent', sent_at = now(), smtp_code = 250 "
        "WHERE id IN (SELECT id FROM deliveries WHERE issue_id = $1 AND status = 'queued' "
        "ORDER BY id LIMIT 20)",
        seeded.issue_id,
    )
    await page.wait_for_timeout(7000)  # longer than the 5 s update interval
    await expect(page.locator("#progress-text")).to_have_text("40 / 100 (40.0%)")
    await pause.click()
    await expect(pause).to_have_attribute("aria-pressed", "false")
    await expect(page.locator("#progress-text")).to_have_text("60 / 100 (60.0%)", timeout=15_000)

    # Editing is not for ops: no forms, and a forged request is refused.
    forbidden = await page.goto(f"{console.base}/admin/news/new")
    assert forbidden is not None and forbidden.status == 403
    await expect(page.locator("h1")).to_have_text("권한이 없습니다")
    await page.goto(f"{console.base}/admin/issues/{seeded.issue_id}")
    await expect(page.locator("#read-only")).to_be_visible()
    assert await page.locator("#actions").count() == 0
    status = await page.evaluate(
        """async (id) => {
            const token = document.querySelector('input[name=csrf_token]').value;
            const body = new URLSearchParams({csrf_token: token, confirmed: 'yes'});
            const answer = await fetch(`/admin/issues/${id}/pause`, {method: 'POST', body});
            return answer.status;
        }""",
        seeded.issue_id,
    )
    assert status == 403
    still = await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", seeded.issue_id)
    assert still == "sending"


async def test_a_post_without_the_csrf_token_is_refused(
    page: Any, console: Console, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await log_in(page, console.base, editor.email)
    answers = await page.evaluate(
        """async () => {
            const post = (fields) => fetch('/admin/issues',
                {method: 'POST', body: new URLSearchParams(fields), redirect: 'manual'});
            const token = document.querySelector('input[name=csrf_token]').value;
            const without = await post({title: '몰래 만든 호'});
            const wrong = await post({title: '몰래 만든 호', csrf_token: 'x'});
            const right = await post({title: '제대로 만든 호', csrf_token: token});
            return [without.status, await without.text(), wrong.status, right.type];
        }"""
    )
    assert answers[0] == 403 and "CSRF" in answers[1]
    assert answers[2] == 403
    assert answers[3] == "opaqueredirect"  # the real form's answer: 303 to the new draft
    titles = [r["title"] for r in await db.pool.fetch("SELECT title FROM issues")]
    assert titles == ["제대로 만든 호"]


async def test_every_console_page_passes_axe_reflows_and_works_by_keyboard(
    page: Any, console: Console, db: Database, axe: Path, feed_url: str
) -> None:
    from playwright.async_api import expect

    base = console.base
    sending = await seed_issue(db, queued=30, sent=60, failed=5, bounced=2, retrying=3)
    admin = await make_user(db, "admin")
    editor = await make_user(db, "editor")
    item_id = await db.pool.fetchval(
        "INSERT INTO news_items (title, summary, body, link) VALUES ('수변공원 음악회', "
        "'토요일 저녁', '<p>본문</p>', 'https://www.gimpo.go.kr/n/9') RETURNING id"
    )
    draft_id = await db.pool.fetchval(
        "INSERT INTO issues (title, intro, news_item_ids) VALUES ('4월 소식', '머리말', $1) "
        "RETURNING id",
        [item_id],
    )
    subscriber_id = await db.pool.fetchval("SELECT min(id) FROM subscribers")
    checked: list[str] = []
    # The ops page with what a throttling relay leaves: a lowered rate and
    # two relays, one of them refusing with a long reply.
    await db.pool.execute(
        "UPDATE rate_buckets SET learned_rate = 5, decreased_at = now(),"
        " learned_reason = '450 4.7.1 Error: too much mail from 203.0.113.77 (rate limit)'"
    )
    await db.pool.execute(
        "INSERT INTO relay_health (relay, state, sent, pushed_back, refused, connections,"
        " last_error, last_error_at) VALUES"
        " ('smtp-relay-primary.gimpo.go.kr:587', 'open', 1200, 40, 7, 2,"
        "  '421 4.7.0 smtp-relay-primary.gimpo.go.kr Error: too many connections from"
        " 203.0.113.77', now()),"
        " ('smtp-relay-backup.gimpo.go.kr:25', 'closed', 300, 0, 0, 4, NULL, NULL)"
    )

    async def check(label: str) -> None:
        await expect(page.locator("main")).to_have_count(1)
        await expect(page.locator("h1")).to_have_count(1)
        violations = await axe_violations(page, axe)
        assert violations == [], f"{label}: {described(violations)}"
        assert not await overflows_at(page, 390), f"{label} scrolls sideways at 390 px"
        checked.append(label)

    # Logged out: the login page, used with the keyboard alone.
    await page.goto(f"{base}/admin/login")
    await check("login")
    await page.keyboard.press("Tab")
    await expect(page.locator("a.skip")).to_be_focused()
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    await expect(page.locator("#email")).to_be_focused()
    await page.keyboard.type(admin.email)
    await page.keyboard.press("Tab")
    await expect(page.locator("#password")).to_be_focused()
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_have_text("대시보드")

    pages = [
        "/admin",
        "/admin/news",
        "/admin/news/new",
        f"/admin/news/{item_id}",
        "/admin/news/import",
        "/admin/issues",
        "/admin/issues/new",
        f"/admin/issues/{draft_id}",
        f"/admin/issues/{draft_id}?view=phone",
        f"/admin/issues/{draft_id}?view=text",
        f"/admin/issues/{sending.issue_id}",
        f"/admin/issues/{sending.issue_id}/deliveries",
        f"/admin/issues/{sending.issue_id}/deliveries?status=deferred",
        "/admin/ops",
        "/admin/subscribers",
        f"/admin/subscribers/{subscriber_id}",
        "/admin/subscribers/import",
        "/admin/subscribers/export",
        "/admin/users",
        f"/admin/users/{editor.id}",
        "/admin/account",
        "/admin/account/password",
        "/admin/audit",
    ]
    for path in pages:
        answer = await page.goto(base + path)
        assert answer is not None and answer.status == 200, path
        await check(path)
        if path == "/admin/ops":  # the widest tables: the smallest phones too
            relay = page.locator("[data-relay='smtp-relay-primary.gimpo.go.kr:587']")
            await expect(relay).to_have_count(1)
            assert not await overflows_at(page, 320), "/admin/ops scrolls sideways at 320 px"

    # Pages reached by acting: a feed preview, a confirmation, a form with errors.
    await page.goto(f"{base}/admin/news/import")
    await page.fill("#url", feed_url)
    await page.click("#fetch-feed")
    await expect(page.locator("#feed-preview")).to_be_visible()
    await check("feed preview")
    await page.goto(f"{base}/admin/issues/{draft_id}")
    await page.click("#action-send-now")
    await expect(page.locator("h1")).to_have_text("지금 발송할까요?")
    await check("send-now confirmation")
    await page.goto(f"{base}/admin/news/new")
    await page.fill("#title", "링크가 잘못된 항목")
    await page.fill("#link", "javascript:alert(1)")
    await page.evaluate("document.querySelector('#news-form').noValidate = true")
    await page.click("#save")
    await expect(page).to_have_title("입력 오류: 새 뉴스 항목 · 김포시 뉴스레터 콘솔")
    link = page.locator("#link")
    await expect(link).to_have_attribute("aria-invalid", "true")
    await expect(link).to_have_attribute("aria-describedby", "link-hint link-error")
    await expect(page.locator("#link-error")).to_contain_text("http:// 또는 https://")
    await check("form with an error")

    # Reordering by keyboard on the compose page: focus a button, press Enter.
    other = await db.pool.fetchval(
        "INSERT INTO news_items (title, link) VALUES ('도서관 야간 개관', "
        "'https://www.gimpo.go.kr/n/10') RETURNING id"
    )
    await db.pool.execute(
        "UPDATE issues SET news_item_ids = $2 WHERE id = $1", draft_id, [item_id, other]
    )
    await page.goto(f"{base}/admin/issues/{draft_id}")
    await page.focus("button[aria-label='‘도서관 야간 개관’ 위로']")
    await page.keyboard.press("Enter")
    await expect(page.locator("#compose-items li").first).to_contain_text("도서관 야간 개관")
    assert len(checked) == len(pages) + 4
    # The only failed load is the form's own 422 answer.
    assert [e for e in page.console_errors if "422" not in e] == []
