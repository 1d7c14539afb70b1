"""The pre-send check on the console's issue page, through HTTP: the list
above the send actions (kept result at once, a fresh one fetched by the
page, stale after an edit, "다시 점검" without JavaScript), and the
confirmation of schedule and send-now that names the open problems and
sends only when the editor ticks that she knows -- against a real local web
server and a real local DNS server, as in tests/editorial/test_checks.py."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from litestar import Litestar

from newsletter.app import create_app
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from tests.conftest import SmtpServer
from tests.editorial.test_checks import LOOPBACK, add_residents, checked_settings, domain_records
from tests.support.console import csrf_of, login, make_user
from tests.support.dns import DnsServer, dns_server
from tests.support.websites import Website, website

DESPITE = "점검에서 나온 문제를 알고도 보냅니다"


@pytest.fixture
def site() -> Iterator[Website]:
    with website() as running:
        yield running


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with dns_server(domain_records()) as running:
        yield running


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpServer, site: Website, dns: DnsServer) -> Settings:
    return checked_settings(database_url, smtp_server, site, dns.port)


@pytest.fixture
def app(settings: Settings, db: Database) -> Litestar:
    return create_app(settings, db, feed_policy=LOOPBACK)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://newsletter.test") as http:
        yield http


async def a_draft(db: Database, link: str, *, title: str = "12월 김포 소식") -> int:
    item = await db.pool.fetchval(
        "INSERT INTO news_items (title, summary, body, link) "
        "VALUES ('한강 야간 축제', '토요일 저녁', '<p>본문</p>', $1) RETURNING id",
        link,
    )
    issue_id: int = await db.pool.fetchval(
        "INSERT INTO issues (title, intro, news_item_ids) "
        "VALUES ($1, '올해 마지막 소식입니다.', $2) RETURNING id",
        title,
        [item],
    )
    return issue_id


def said(page: httpx.Response) -> str:
    return html.unescape(page.text)


async def status_of(db: Database, issue_id: int) -> str:
    status: str = await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", issue_id)
    return status


async def test_the_issue_page_lists_the_check_and_fetches_a_fresh_one(
    client: httpx.AsyncClient, db: Database, site: Website
) -> None:
    await add_residents(db, 2)
    await login(client, (await make_user(db, "editor")).email)
    issue_id = await a_draft(db, site.url("/missing"))
    page_path = f"/admin/issues/{issue_id}"

    # Never checked: the page comes at once and asks for a result by itself.
    first = await client.get(page_path)
    assert first.status_code == 200
    assert "아직 점검하지 않았습니다" in said(first)
    assert f'hx-get="/admin/issues/{issue_id}/checks" hx-trigger="load"' in first.text
    assert 'id="run-checks"' in first.text  # "다시 점검", a plain form without JavaScript
    assert first.text.index('id="checks"') < first.text.index('id="actions"')
    assert not site.requests, "opening the page waited for the check"

    fresh = await client.get(f"/admin/issues/{issue_id}/checks")
    assert fresh.status_code == 200
    listed = said(fresh)
    gone = re.search(r'<li class="check problem">(.*?)</li>', listed, re.S)
    assert gone is not None
    assert "문제" in gone.group(1) and "링크가 열리지 않습니다 (HTTP 404)" in gone.group(1)
    assert "항목: 한강 야간 축제" in gone.group(1) and site.url("/missing") in gone.group(1)
    assert "점검을 마쳤습니다. 문제 1건" in listed

    # Kept: the page shows it at once and does not ask again.
    kept = await client.get(page_path)
    assert "링크가 열리지 않습니다 (HTTP 404)" in said(kept)
    assert f'hx-get="/admin/issues/{issue_id}/checks"' not in kept.text
    assert "다시 점검해야 합니다" not in said(kept)

    # An edit makes it stale, and the page says so while it fetches a new one.
    await db.pool.execute("UPDATE news_items SET link = $1", site.url("/ok"))
    stale = await client.get(page_path)
    assert "내용이 바뀌어 다시 점검해야 합니다" in said(stale)
    assert f'hx-get="/admin/issues/{issue_id}/checks"' in stale.text

    # "다시 점검" without JavaScript: a POST, then the page with the new result.
    again = await client.post(
        f"/admin/issues/{issue_id}/checks", data={"csrf_token": csrf_of(stale.text)}
    )
    assert again.status_code == 303
    assert again.headers["location"] == f"{page_path}#checks"
    after = said(await client.get(page_path))
    assert "다시 점검했습니다: 문제 0건" in after
    assert "내용이 바뀌어" not in after and "HTTP 404" not in after
    assert await status_of(db, issue_id) == "draft"  # the check never changes the issue


async def test_send_now_names_the_problems_and_goes_only_when_told_despite(
    client: httpx.AsyncClient, db: Database, site: Website
) -> None:
    await add_residents(db, 3)
    await login(client, (await make_user(db, "editor")).email)
    issue_id = await a_draft(db, site.url("/missing"))
    csrf = csrf_of((await client.get(f"/admin/issues/{issue_id}")).text)
    path = f"/admin/issues/{issue_id}/send-now"

    # The confirmation runs the check (never run yet) and names the problem.
    asked = await client.post(path, data={"csrf_token": csrf})
    assert asked.status_code == 200
    confirm = said(asked)
    assert "발송 전 점검에서 나온 문제 1건" in confirm
    assert "링크가 열리지 않습니다 (HTTP 404)" in confirm and "항목: 한강 야간 축제" in confirm
    assert DESPITE in confirm and 'name="despite_problems"' in confirm

    refused = await client.post(path, data={"csrf_token": csrf, "confirmed": "yes"})
    assert refused.status_code == 409
    assert 'id="despite_problems-error"' in refused.text
    assert 'aria-invalid="true"' in refused.text
    assert await status_of(db, issue_id) == "draft"

    sent = await client.post(
        path, data={"csrf_token": csrf, "confirmed": "yes", "despite_problems": "on"}
    )
    assert sent.status_code == 303, sent.text
    assert await status_of(db, issue_id) == "sending"
    queued = await db.pool.fetchval("SELECT count(*) FROM deliveries WHERE issue_id = $1", issue_id)
    assert queued == 3


async def test_schedule_asks_the_same_and_warnings_never_block(
    client: httpx.AsyncClient, db: Database, site: Website, settings: Settings
) -> None:
    await add_residents(db, 1)
    await login(client, (await make_user(db, "editor")).email)
    later = (datetime.now(UTC) + timedelta(days=1)).astimezone(ZoneInfo(settings.timezone))
    send_at = later.strftime("%Y-%m-%dT%H:%M")

    broken = await a_draft(db, site.url("/to-internal"))
    csrf = csrf_of((await client.get(f"/admin/issues/{broken}")).text)
    path = f"/admin/issues/{broken}/schedule"
    asked = await client.post(path, data={"csrf_token": csrf, "send_at": send_at})
    assert asked.status_code == 200
    assert "외부에서 열 수 없는 주소" in said(asked) and DESPITE in said(asked)
    refused = await client.post(
        path, data={"csrf_token": csrf, "send_at": send_at, "confirmed": "yes"}
    )
    assert refused.status_code == 409 and await status_of(db, broken) == "draft"
    scheduled = await client.post(
        path,
        data={"csrf_token": csrf, "send_at": send_at, "confirmed": "yes", "despite_problems": "on"},
    )
    assert scheduled.status_code == 303 and await status_of(db, broken) == "scheduled"

    # A subject too long for a phone is a warning: no box to tick, it goes.
    fine = await a_draft(db, site.url("/ok"), title="김포시 " * 15)
    path = f"/admin/issues/{fine}/schedule"
    asked = await client.post(path, data={"csrf_token": csrf, "send_at": send_at})
    assert asked.status_code == 200
    assert "발송 전 점검에서 나온 문제" not in said(asked)
    assert 'name="despite_problems"' not in asked.text
    page = said(await client.get(f"/admin/issues/{fine}"))
    assert re.search(r'<li class="check warning">\s*<span class="status warning">주의</span>', page)
    scheduled = await client.post(
        path, data={"csrf_token": csrf, "send_at": send_at, "confirmed": "yes"}
    )
    assert scheduled.status_code == 303 and await status_of(db, fine) == "scheduled"
