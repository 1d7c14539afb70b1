"""A relay's reply quoting a resident's address never shows that address.

Relays quote the recipient in their replies (``450 4.2.0 <kim@…>: Recipient
address rejected: Greylisted``). Those replies are kept (the relay's last
error, why the rate was lowered, each delivery's last reply, bounce events,
why a subscriber was suppressed) and shown to ops and editors: on the
console's ops page, in ``GET /api/v1/stats``, on an issue's live page, in
``newsletter status``. A real aiosmtpd server answers with such replies;
the address must appear in none of those places, while the reply itself
(masked) still tells ops what happened.
"""

from __future__ import annotations

import html
import io
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Litestar
from rich.console import Console

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.delivery import failures
from newsletter.delivery.worker import Worker
from newsletter.mail import outbox
from newsletter.ops.status_view import run_status
from tests.conftest import SmtpServer, bearer, make_settings
from tests.support.console import login, make_user
from tests.support.delivery import add_subscribers, address, start_issue

GREYLISTED = "450 4.2.0 <{rcpt}>: Recipient address rejected: Greylisted"
UNKNOWN = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table"

# Every column that keeps a reply (or words made from one).
STORED_REPLIES = """
SELECT 'deliveries.last_error', last_error FROM deliveries
UNION ALL SELECT 'outbox.last_error', last_error FROM outbox
UNION ALL SELECT 'relay_health.last_error', last_error FROM relay_health
UNION ALL SELECT 'rate_buckets.learned_reason', learned_reason FROM rate_buckets
UNION ALL SELECT 'bounce_events.detail', detail FROM bounce_events
UNION ALL SELECT 'subscribers.suppressed_reason', suppressed_reason FROM subscribers
"""


async def session(app: Litestar, db: Database, role: str) -> httpx.AsyncClient:
    """A browser of its own, logged in to the console as a fresh ``role`` user."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))  # type: ignore[arg-type]
    browser = httpx.AsyncClient(transport=transport, base_url="https://newsletter.gimpo.go.kr")
    user = await make_user(db, role, email=f"{role}.viewer@gimpo.go.kr")
    answer = await login(browser, user.email)
    assert answer.status_code in (302, 303), answer.text
    return browser


@pytest.fixture
async def editor(app: Litestar, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    browser = await session(app, db, "editor")
    try:
        yield browser
    finally:
        await browser.aclose()


@pytest.fixture
async def ops(app: Litestar, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    browser = await session(app, db, "ops")
    try:
        yield browser
    finally:
        await browser.aclose()


async def rounds(settings: Settings, db: Database, issue_id: int) -> None:
    """Rounds of one worker until every delivery of the issue was tried once,
    then its relay report (as it makes every few seconds): the rate it learned
    and the relay's last error are stored."""
    worker = Worker(settings, db, worker_id="test:replies", reconnect_base_seconds=0.01)
    untried = "SELECT count(*) FROM deliveries WHERE issue_id = $1 AND status = 'queued'"
    untried += " AND last_error IS NULL"
    try:
        for _ in range(failures.FREE_PUSH_BACKS + 4):
            await worker.run_once()
            if not await db.pool.fetchval(untried, issue_id):
                break
        await worker.chores.report_relays()
    finally:
        await worker.smtp.close()


async def page(browser: httpx.AsyncClient, path: str) -> str:
    answer = await browser.get(path)
    assert answer.status_code == 200, (path, answer.status_code)
    return html.unescape(answer.text)


async def test_a_reply_quoting_a_resident_shows_no_address_anywhere(
    database_url: str,
    db: Database,
    smtp_server: SmtpServer,
    client: httpx.AsyncClient,
    editor: httpx.AsyncClient,
    ops: httpx.AsyncClient,
) -> None:
    settings = make_settings(database_url, smtp_server.target, smtp_connections=1)
    await add_subscribers(db, 4)
    greylisted, gone, waiting = address(2), address(3), address(4)
    replies = smtp_server.handler.rcpt_reply
    replies[greylisted] = GREYLISTED.format(rcpt=greylisted)
    replies[gone] = UNKNOWN.format(rcpt=gone)
    # A confirmation mail greylisted too: the outbox keeps its reply as well.
    replies[waiting] = GREYLISTED.format(rcpt=waiting)
    async with db.transaction() as conn:
        await outbox.enqueue(conn, "confirm", waiting, {"subscriber_id": 4}, subscriber_id=4)
    issue_id = await start_issue(db, settings)

    # Pushed back (the rate goes down), refused for good (bounce policy), and
    # the relay's last error reported; the greylisted mail is still waiting.
    await rounds(settings, db, issue_id)
    assert await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", issue_id) == "sending"

    shown: dict[str, str] = {}
    headers = await bearer(db, "ops")
    for path in ("/api/v1/stats", f"/api/v1/issues/{issue_id}/stats"):
        answer = await client.get(path, headers=headers)
        assert answer.status_code == 200, answer.text
        shown[path] = answer.text
    for path in ("/admin/ops", "/admin/ops/live"):
        shown[path] = await page(ops, path)
    for path in (
        f"/admin/issues/{issue_id}",
        f"/admin/issues/{issue_id}/live",
        f"/admin/issues/{issue_id}/deliveries",
    ):
        shown[path] = await page(editor, path)
    out = io.StringIO()
    await run_status(
        settings, database_url, issue_id=issue_id, console=Console(file=out, width=300)
    )
    shown["newsletter status"] = out.getvalue()
    stored = await db.pool.fetch(STORED_REPLIES)
    shown.update({f"{column} ({n})": text or "" for n, (column, text) in enumerate(stored)})

    for where, text in shown.items():
        for resident in (greylisted, gone, waiting):
            assert resident not in text, f"{resident} shown in {where}"

    # What ops need is still there: the relay's words, the address masked.
    masked = "r***@example.com"
    stats = (await client.get(f"/api/v1/issues/{issue_id}/stats", headers=headers)).json()
    assert stats["effective_rate_per_second"] < settings.rate_per_second
    assert stats["effective_rate_reason"] == (
        f"relay pushed back: 450 4.2.0 <{masked}>: Recipient address rejected: Greylisted"
    )
    [relay] = stats["relays"]
    assert "Greylisted" in relay["last_error"] and masked in relay["last_error"]
    assert f"<{masked}>: Recipient address rejected: Greylisted" in shown["/admin/ops"]
    assert "Recipient address rejected: Greylisted" in shown[f"/admin/issues/{issue_id}/live"]
    assert "Recipient address rejected: Greylisted" in shown["newsletter status"]
    assert "없는 메일 주소" in shown[f"/admin/issues/{issue_id}/deliveries"]

    # Each outcome keeps the reply's enhanced code in its own column.
    rows = await db.pool.fetch(
        "SELECT s.email, d.status, d.enhanced_code, d.last_error FROM deliveries d"
        " JOIN subscribers s ON s.id = d.subscriber_id ORDER BY s.email"
    )
    by_email = {r["email"]: r for r in rows}
    assert (by_email[gone]["status"], by_email[gone]["enhanced_code"]) == ("failed", "5.1.1")
    assert by_email[gone]["last_error"] == UNKNOWN.format(rcpt=masked)
    assert (by_email[greylisted]["status"], by_email[greylisted]["enhanced_code"]) == (
        "queued",
        "4.2.0",
    )
    assert by_email[address(1)]["enhanced_code"] is None  # delivered
    mail = await db.pool.fetchrow("SELECT status, enhanced_code, last_error FROM outbox")
    assert mail is not None
    assert (mail["status"], mail["enhanced_code"]) == ("queued", "4.2.0")
    assert mail["last_error"] == GREYLISTED.format(rcpt=masked)
