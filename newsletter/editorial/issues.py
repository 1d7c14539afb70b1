"""Issues: drafts, their life cycle, and starting a send.

Which action is allowed from which state, and why not, is the table in
:mod:`newsletter.editorial.transitions`. Every change reads the issue under a
row lock (``lock_issue``) and asks that table, so the message for an illegal
move says exactly why. Sending starts in :func:`start_issue`: one transaction
renders the snapshot, stores its links for the click redirect, takes the
archive number and copies the recipients into ``deliveries``.

A sent issue may send further rounds (:func:`resend`): the deliveries that
failed for reasons that were not the recipient's are queued once more and the
issue is ``sending`` again, with the same snapshot. Its content never changes
(only drafts can be edited), and cancelling such a round stops the round, not
the issue: it is ``sent`` again.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from newsletter.core.addresses import normalise_email
from newsletter.core.clock import aware, city_zone
from newsletter.core.db import QUERIES, Connection, Database, Record
from newsletter.core.errors import Conflict, DomainError, InvalidInput, NotFound
from newsletter.core.i18n import N_, Term
from newsletter.core.kinds import MAX_ID
from newsletter.core.records import check_id, one
from newsletter.core.settings import Settings
from newsletter.editorial import news, transitions, versions
from newsletter.editorial.rendering import (
    DEFAULT_GREETING,
    IssueContent,
    NewsItemContent,
    RenderedIssue,
    RenderError,
    personalise,
    render_issue,
)
from newsletter.editorial.transitions import STATUSES
from newsletter.mail.outbox import PRIORITY_TEST, enqueue
from newsletter.ops.audit import Actor, record
from newsletter.ops.delivery_record import RESENDABLE

log = logging.getLogger("newsletter.issues")

MAX_TITLE = 200
MAX_INTRO = 5000
MAX_GREETING = 200
MAX_ITEMS = 50
MAX_TEST_ADDRESSES = 10
NO_ISSUE = N_("#%(id)s 호가 없습니다. 이미 지워졌을 수 있습니다.")
MAX_SCHEDULE_AHEAD = timedelta(days=366)
SCHEDULER = Actor(name="scheduler", role="admin")

# The token in preview and test-send links: deliberately not a real
# subscriber's, so clicking "수신 거부" in a test copy unsubscribes nobody.
PREVIEW_TOKEN = "preview"  # noqa: S105 - not a secret


@dataclass(frozen=True)
class IssueFields:
    title: str
    intro: str = ""
    news_item_ids: Sequence[int] = ()
    is_advertisement: bool = False
    # The line above the intro; "" leaves the mail without one.
    greeting: str = DEFAULT_GREETING


def _validate(fields: IssueFields) -> IssueFields:
    title = news.clean_text(fields.title, "title", MAX_TITLE, required=True).replace("\n", " ")
    intro = news.clean_text(fields.intro, "intro", MAX_INTRO)
    greeting = " ".join(news.clean_text(fields.greeting, "greeting", MAX_GREETING).split())
    ids = list(fields.news_item_ids)
    if len(ids) > MAX_ITEMS:
        raise InvalidInput(
            N_("한 호에는 뉴스 항목을 %(max)s개까지 넣을 수 있습니다."),
            field="news_item_ids",
            max=MAX_ITEMS,
        )
    if len(set(ids)) != len(ids):
        raise InvalidInput(N_("같은 뉴스 항목을 두 번 넣을 수 없습니다."), field="news_item_ids")
    return IssueFields(title, intro, ids, bool(fields.is_advertisement), greeting)


async def _check_items_exist(conn: Connection, ids: Sequence[int]) -> None:
    wanted = [i for i in ids if 1 <= i <= MAX_ID]
    found = {r["id"] for r in await conn.fetch(QUERIES.news_items_by_ids, wanted)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(
            N_("없는 뉴스 항목입니다: %(ids)s"),
            field="news_item_ids",
            ids=", ".join(map(str, missing)),
        )


async def _locked(conn: Connection, issue_id: int) -> Record:
    check_id(issue_id, "issue")
    row: Record | None = await conn.fetchrow(QUERIES.lock_issue, issue_id)
    if row is None:
        raise NotFound(NO_ISSUE, id=issue_id)
    return row


def _require(row: Record, action: str) -> None:
    why = transitions.refusal(action, row)
    if why is not None:
        raise why


# --- drafts -----------------------------------------------------------------


async def create(db: Database, actor: Actor, fields: IssueFields) -> Record:
    issue = _validate(fields)
    async with db.transaction() as conn:
        await _check_items_exist(conn, issue.news_item_ids)
        row = await one(
            conn,
            QUERIES.insert_issue,
            issue.title,
            issue.intro,
            list(issue.news_item_ids),
            issue.is_advertisement,
            issue.greeting,
        )
        await record(conn, actor, "issue.create", f"issue:{row['id']}", title=issue.title)
    return row


async def get(db: Database, issue_id: int) -> Record:
    check_id(issue_id, "issue")
    row = await db.fetchrow("get_issue", issue_id)
    if row is None:
        raise NotFound(NO_ISSUE, id=issue_id)
    return row


async def list_issues(
    db: Database, *, status: str | None, page: int, per_page: int
) -> tuple[list[Record], int]:
    if status is not None and status not in STATUSES:
        raise InvalidInput.one_of("status", STATUSES)
    if not 1 <= per_page <= news.MAX_PAGE_SIZE:
        raise InvalidInput.out_of_range("per_page", 1, news.MAX_PAGE_SIZE)
    if not 1 <= page <= 100_000:
        raise InvalidInput.out_of_range("page", 1, 100_000)
    rows = await db.fetch("list_issues", status, per_page, (page - 1) * per_page)
    total: int = await db.fetchval("count_issues", status)
    return rows, total


async def update(
    db: Database,
    settings: Settings,
    actor: Actor,
    issue_id: int,
    fields: IssueFields,
    *,
    expected: Collection[str] | None = None,
) -> Record:
    """Replace a draft; ``expected``: the versions the writer read (see
    :mod:`newsletter.editorial.versions`), None when they named none."""
    issue = _validate(fields)
    async with db.transaction() as conn:
        current = await _locked(conn, issue_id)
        await versions.require(
            conn,
            current,
            expected,
            target=f"issue:{issue_id}",
            what=Term(ko="이 호", en="the issue"),
            zone=city_zone(settings),
        )
        _require(current, "update")
        await _check_items_exist(conn, issue.news_item_ids)
        row = await one(
            conn,
            QUERIES.update_issue_draft,
            issue_id,
            issue.title,
            issue.intro,
            list(issue.news_item_ids),
            issue.is_advertisement,
            issue.greeting,
        )
        await record(conn, actor, "issue.update", f"issue:{issue_id}", title=issue.title)
    return row


async def delete(db: Database, actor: Actor, issue_id: int) -> None:
    async with db.transaction() as conn:
        _require(await _locked(conn, issue_id), "delete")
        await conn.execute(QUERIES.delete_issue, issue_id)
        await record(conn, actor, "issue.delete", f"issue:{issue_id}")


# --- rendering --------------------------------------------------------------


async def _items(conn: Connection, row: Record) -> list[NewsItemContent]:
    ids: list[int] = list(row["news_item_ids"])
    by_id = {r["id"]: r for r in await conn.fetch(QUERIES.news_items_by_ids, ids)}
    # The issue's order is the editor's order, not the table's.
    return [news.content(by_id[i]) for i in ids if i in by_id]


items_of = _items  # what the pre-send check reads (editorial/checks.py)


def _render_items(
    row: Record, items: Sequence[NewsItemContent], settings: Settings, number: int
) -> RenderedIssue:
    content = IssueContent(
        title=row["title"],
        intro=row["intro"],
        number=number,
        is_advertisement=row["is_advertisement"],
        id=row["id"],
        greeting=row["greeting"],
    )
    return render_issue(content, items, settings)


async def _render(conn: Connection, row: Record, settings: Settings, number: int) -> RenderedIssue:
    return _render_items(row, await _items(conn, row), settings, number)


async def snapshot_or_render(conn: Connection, row: Record, settings: Settings) -> RenderedIssue:
    """What subscribers get (or will get): the stored snapshot once sending started."""
    if row["rendered_html"] is not None:
        return RenderedIssue(row["subject"], row["rendered_html"], row["rendered_text"])
    # Not started yet: render with the number it would get if it started now.
    number: int = await conn.fetchval(QUERIES.next_issue_number)
    return await _render(conn, row, settings, number)


async def number_for(db: Database, row: Record) -> int:
    """The 제N호 the issue's mail carries: its own once sending started, else
    the one it would get if it started now (as its preview shows)."""
    if row["number"] is not None:
        return int(row["number"])
    number: int = await db.fetchval("next_issue_number")
    return number


async def earlier_issues_of(
    db: Database, item_ids: Sequence[int], *, besides: int | None = None
) -> dict[int, list[int]]:
    """For each of these news items that went out in an issue (other than
    ``besides``): the numbers of those issues, in order."""
    wanted = [i for i in item_ids if 1 <= i <= MAX_ID]
    if not wanted:
        return {}
    rows = await db.fetch("issue_numbers_of_items", wanted, besides)
    return {r["news_item_id"]: list(r["numbers"]) for r in rows}


async def recipient_count(db: Database) -> int:
    """How many residents an issue starting now would go to."""
    count: int = await db.fetchval("count_recipients")
    return count


def preview_unsubscribe_url(settings: Settings) -> str:
    return f"{settings.base_url}/unsubscribe?token={PREVIEW_TOKEN}"


async def preview(db: Database, settings: Settings, issue_id: int) -> tuple[str, str]:
    """``(html, text)`` exactly as a subscriber sees it, for a nameless subscriber."""
    check_id(issue_id, "issue")
    async with db.pool.acquire() as conn:
        row = await conn.fetchrow(QUERIES.get_issue, issue_id)
        if row is None:
            raise NotFound(NO_ISSUE, id=issue_id)
        rendered = await snapshot_or_render(conn, row, settings)
    return personalise(rendered, unsubscribe_url=preview_unsubscribe_url(settings), name=None)


async def test_send(
    db: Database, settings: Settings, actor: Actor, issue_id: int, addresses: Sequence[str]
) -> list[int]:
    """Queue a "[TEST]" copy to each address through the outbox."""
    if not addresses:
        raise InvalidInput(N_("받는 주소를 하나 이상 적어 주세요."), field="addresses")
    if len(addresses) > MAX_TEST_ADDRESSES:
        raise InvalidInput(
            N_("테스트 메일은 %(max)s곳까지 보낼 수 있습니다."),
            field="addresses",
            max=MAX_TEST_ADDRESSES,
        )
    recipients = list(dict.fromkeys(normalise_email(a) for a in addresses))
    check_id(issue_id, "issue")
    async with db.transaction() as conn:
        row = await conn.fetchrow(QUERIES.get_issue, issue_id)
        if row is None:
            raise NotFound(NO_ISSUE, id=issue_id)
        rendered = await snapshot_or_render(conn, row, settings)
        html_part, text_part = personalise(
            rendered, unsubscribe_url=preview_unsubscribe_url(settings), name=None
        )
        payload: dict[str, Any] = {
            "issue_id": issue_id,
            "subject": rendered.subject,
            "html": html_part,
            "text": text_part,
        }
        ids = [
            await enqueue(conn, "test_issue", address, payload, priority=PRIORITY_TEST)
            for address in recipients
        ]
        await record(conn, actor, "issue.test_send", f"issue:{issue_id}", addresses=recipients)
    return ids


# --- state changes ----------------------------------------------------------


def parse_send_at(value: str, settings: Settings, *, now: datetime | None = None) -> datetime:
    """ISO 8601; a time without offset is city time (settings.timezone); future only."""
    text = (value or "").strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            N_("발송 일시를 달력에서 골라 주세요 (예: 2026-03-02 09:00)."), field="send_at"
        ) from None
    if "T" not in text.upper() and " " not in text:
        raise InvalidInput(N_("발송 날짜와 시각을 함께 골라 주세요."), field="send_at")
    at = aware(moment, settings, "send_at")
    current = now or datetime.now(UTC)
    if at <= current:
        raise InvalidInput(
            N_("발송 일시가 이미 지났습니다. 앞으로의 시각을 골라 주세요."), field="send_at"
        )
    if at - current > MAX_SCHEDULE_AHEAD:
        raise InvalidInput(N_("발송 일시는 1년 안이어야 합니다."), field="send_at")
    return at


async def schedule(
    db: Database,
    settings: Settings,
    actor: Actor,
    issue_id: int,
    send_at: str,
    *,
    despite_problems: bool = False,
) -> Record:
    """``despite_problems``: the person said they send although the pre-send
    check had problems open (``checks.require_clear``); the audit keeps it."""
    at = parse_send_at(send_at, settings)
    async with db.transaction() as conn:
        row = await _locked(conn, issue_id)
        _require(row, "schedule")
        updated = await one(conn, QUERIES.set_issue_schedule, issue_id, at)
        await record(
            conn,
            actor,
            "issue.schedule",
            f"issue:{issue_id}",
            send_at=at.isoformat(),
            despite_problems=despite_problems or None,
        )
    return updated


async def unschedule(db: Database, actor: Actor, issue_id: int) -> Record:
    """Back to a draft (to change it before it goes out); the time is forgotten."""
    async with db.transaction() as conn:
        _require(await _locked(conn, issue_id), "unschedule")
        row = await one(conn, QUERIES.unschedule_issue, issue_id)
        await record(conn, actor, "issue.unschedule", f"issue:{issue_id}")
    return row


async def start_issue(conn: Connection, issue_id: int, settings: Settings) -> int:
    """Start sending: snapshot, archive number, recipients. Returns the recipient count.

    All or nothing (one transaction, nested as a savepoint if the caller has
    one open). The recipients are copied with one INSERT ... SELECT, however
    many there are.
    """
    async with conn.transaction():
        row = await _locked(conn, issue_id)
        _require(row, "send-now")
        await conn.execute(QUERIES.lock_issue_numbers)
        number: int = await conn.fetchval(QUERIES.next_issue_number)
        items = await _items(conn, row)
        rendered = _render_items(row, items, settings, number)
        await conn.execute(
            QUERIES.store_issue_snapshot,
            issue_id,
            number,
            rendered.subject,
            rendered.html,
            rendered.text,
            rendered.web_content,
        )
        linked = [item for item in items if item.link and item.id is not None]
        await conn.execute(
            QUERIES.store_issue_links,
            issue_id,
            [item.id for item in linked],
            [item.title for item in linked],
            [item.link for item in linked],
        )
        status: str = await conn.execute(QUERIES.snapshot_recipients, issue_id)
    return int(status.rsplit(" ", 1)[1])


async def send_now(
    db: Database,
    settings: Settings,
    actor: Actor,
    issue_id: int,
    *,
    despite_problems: bool = False,
) -> Record:
    async with db.transaction() as conn:
        recipients = await start_issue(conn, issue_id, settings)
        await record(
            conn,
            actor,
            "issue.send_now",
            f"issue:{issue_id}",
            recipients=recipients,
            despite_problems=despite_problems or None,
        )
        row = await one(conn, QUERIES.get_issue, issue_id)
    return row


async def start_due_issues(db: Database, settings: Settings) -> list[int]:
    """Start every scheduled issue whose time has come; safe with many workers.

    ``claim_due_issue`` locks the row with SKIP LOCKED and start_issue checks
    the status again under that lock, so each issue starts exactly once. Only
    one scheduler works at a time (``try_lock_issue_numbers``), so issues that
    fall due together are numbered in send_at order.
    """
    started: list[int] = []
    tried: list[int] = []
    while True:
        async with db.transaction() as conn:
            if not await conn.fetchval(QUERIES.try_lock_issue_numbers):
                return started  # another scheduler is at it
            issue_id: int | None = await conn.fetchval(QUERIES.claim_due_issue, tried)
            if issue_id is None:
                return started
            tried.append(issue_id)
            try:
                recipients = await start_issue(conn, issue_id, settings)
            except (Conflict, InvalidInput, RenderError) as exc:
                # e.g. its news items were emptied: back to draft with the reason
                # for an editor to fix, not tried (and logged) every few seconds.
                log.error("scheduled issue %s could not start: %s", issue_id, exc)
                problem = (
                    exc.text("ko")
                    if isinstance(exc, DomainError)
                    else f"메일 본문을 만들지 못했습니다 ({exc})"
                )
                await conn.execute(QUERIES.issue_start_failed, issue_id, problem)
                await record(
                    conn, SCHEDULER, "issue.start_failed", f"issue:{issue_id}", problem=problem
                )
                continue
            await record(conn, SCHEDULER, "issue.start", f"issue:{issue_id}", recipients=recipients)
        log.info("issue %s started: %s recipients", issue_id, recipients)
        started.append(issue_id)


async def _move(db: Database, actor: Actor, issue_id: int, action: str) -> Record:
    async with db.transaction() as conn:
        current = await _locked(conn, issue_id)
        _require(current, action)
        to = transitions.result(action, current)
        row = await one(conn, QUERIES.set_issue_status, issue_id, to)
        skipped = 0
        if action == "cancel":
            status: str = await conn.execute(QUERIES.skip_issue_queued_deliveries, issue_id)
            skipped = int(status.rsplit(" ", 1)[1])
        await record(conn, actor, f"issue.{action}", f"issue:{issue_id}", skipped=skipped)
    return row


async def pause(db: Database, actor: Actor, issue_id: int) -> Record:
    return await _move(db, actor, issue_id, "pause")


async def resume(db: Database, actor: Actor, issue_id: int) -> Record:
    return await _move(db, actor, issue_id, "resume")


async def cancel(db: Database, actor: Actor, issue_id: int) -> Record:
    return await _move(db, actor, issue_id, "cancel")


@dataclass(frozen=True)
class Resent:
    issue: Record
    round: int
    requeued: int


async def resend(db: Database, actor: Actor, issue_id: int) -> Resent:
    """Queue again, once, every delivery that failed through no fault of its recipient.

    That is server trouble past its maximum age or our relay refusing our
    sender (:data:`RESENDABLE`), for subscribers still active: never a
    bounced, suppressed, unsubscribed, erased or already-sent recipient. The
    issue row lock serialises concurrent calls: the first one re-queues the
    rows and the issue is ``sending`` again, so a second one (a double click,
    another editor) finds no sent issue and is refused with 409.
    """
    async with db.transaction() as conn:
        row = await _locked(conn, issue_id)
        _require(row, "resend")
        next_round = row["round"] + 1
        status: str = await conn.execute(
            QUERIES.requeue_for_resend, issue_id, next_round, list(RESENDABLE)
        )
        requeued = int(status.rsplit(" ", 1)[1])
        if not requeued:
            raise Conflict(
                N_(
                    "다시 보낼 메일이 없습니다 (#%(id)s). 받는 사람 탓이 아닌 이유로 실패한 "
                    "메일만 다시 보내며, 반송·수신 거부·발송 제외된 주소에는 보내지 않습니다."
                ),
                id=issue_id,
            )
        updated = await one(
            conn, QUERIES.start_issue_round, issue_id, next_round, requeued, actor.name
        )
        await record(
            conn, actor, "issue.resend", f"issue:{issue_id}", round=next_round, requeued=requeued
        )
    log.info("issue %s: round %s re-queued %s deliveries", issue_id, next_round, requeued)
    return Resent(updated, next_round, requeued)


# --- archive ----------------------------------------------------------------


async def archive_page(db: Database, *, page: int, per_page: int = 20) -> tuple[list[Record], int]:
    page = max(1, min(page, 100_000))
    rows = await db.fetch("archive_issues", per_page, (page - 1) * per_page)
    total: int = await db.fetchval("count_archive_issues")
    return rows, total


async def archived(db: Database, number: int) -> Record:
    row = await db.fetchrow("archive_issue", number) if 1 <= number <= 2**31 - 1 else None
    if row is None:
        raise NotFound(N_("발행된 %(number)s호가 없습니다."), number=number)
    return row
