"""Editors' API: compose issues, preview, test-send, schedule and control sending."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import MediaType, Request, Response, Router, delete, get, post, put
from litestar.params import FromQuery, JSONBody, QueryParameter

from newsletter.core.db import Record
from newsletter.core.kinds import MAX_ID
from newsletter.editorial import checks, issues, transitions
from newsletter.editorial.rendering import DEFAULT_GREETING
from newsletter.web.api.auth import SECURITY, provide_actor, requires
from newsletter.web.api.preconditions import IfMatch, etag, expected_versions
from newsletter.web.http.deps import DB, Config, Who
from newsletter.web.http.params import RowId, body_text

ItemIds = Annotated[
    list[Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]],
    msgspec.Meta(max_length=issues.MAX_ITEMS, description="news item ids, in reading order"),
]


class IssueIn(msgspec.Struct, forbid_unknown_fields=True):
    title: Annotated[str, body_text(issues.MAX_TITLE)]
    intro: Annotated[str, body_text(issues.MAX_INTRO)] = ""
    news_item_ids: ItemIds = msgspec.field(default_factory=list)
    is_advertisement: Annotated[
        bool, msgspec.Meta(description='advertising issue: the subject gets the "(광고)" prefix')
    ] = False
    greeting: Annotated[
        str,
        body_text(
            issues.MAX_GREETING,
            'the line above the intro; "" for none. Starting with "구독자님", the '
            "resident's name takes the place of 구독자 where they gave one",
        ),
    ] = DEFAULT_GREETING

    def fields(self) -> issues.IssueFields:
        return issues.IssueFields(
            title=self.title,
            intro=self.intro,
            news_item_ids=self.news_item_ids,
            is_advertisement=self.is_advertisement,
            greeting=self.greeting,
        )


class IssueOut(msgspec.Struct):
    id: int
    number: int | None
    status: str
    title: str
    intro: str
    greeting: str
    news_item_ids: list[int]
    is_advertisement: bool
    subject: str | None
    send_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime
    # Why the scheduler could not start it and put it back to draft (in Korean).
    start_problem: str | None = None

    @classmethod
    def of(cls, row: Record) -> IssueOut:
        values = {name: row[name] for name in cls.__struct_fields__}
        values["news_item_ids"] = list(row["news_item_ids"])
        return cls(**values)


class ActionOut(msgspec.Struct):
    action: str
    allowed: bool
    leads_to: Annotated[
        str | None, msgspec.Meta(description="the issue's status after it; null: deleted")
    ]
    reason: Annotated[str | None, msgspec.Meta(description="why it cannot be done now")]


class IssuePage(msgspec.Struct):
    items: list[IssueOut]
    total: int
    page: int
    per_page: int


DESPITE = (
    "send although the pre-send check (GET /issues/{id}/checks) has problems open; "
    "without it, open problems answer 409 open_problems naming them"
)


class ScheduleIn(msgspec.Struct, forbid_unknown_fields=True):
    send_at: Annotated[
        str,
        body_text(
            64,
            "ISO 8601, e.g. 2026-03-02T09:00:00+09:00; without an offset it "
            "is Asia/Seoul time; must be in the future",
        ),
    ]
    despite_problems: Annotated[bool, msgspec.Meta(description=DESPITE)] = False


class SendNowIn(msgspec.Struct, forbid_unknown_fields=True):
    despite_problems: Annotated[bool, msgspec.Meta(description=DESPITE)] = False


class TestSendIn(msgspec.Struct, forbid_unknown_fields=True):
    addresses: Annotated[
        list[Annotated[str, body_text(320)]],
        msgspec.Meta(min_length=1, max_length=issues.MAX_TEST_ADDRESSES),
    ]


class TestSendOut(msgspec.Struct):
    queued: int
    addresses: list[str]


Id = RowId


@post("/issues", summary="Create a draft issue")
async def create_issue(db: DB, actor: Who, data: JSONBody[IssueIn]) -> IssueOut:
    return IssueOut.of(await issues.create(db, actor, data.fields()))


@get("/issues", summary="List issues, newest first")
async def list_issues(
    db: DB,
    status: FromQuery[
        Literal["draft", "scheduled", "sending", "paused", "sent", "cancelled"] | None
    ] = None,
    page: Annotated[int, QueryParameter(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
) -> IssuePage:
    rows, total = await issues.list_issues(db, status=status, page=page, per_page=per_page)
    return IssuePage(
        items=[IssueOut.of(r) for r in rows], total=total, page=page, per_page=per_page
    )


@get("/issues/{issue_id:int}", summary="Get one issue")
async def get_issue(db: DB, issue_id: Id) -> Response[IssueOut]:
    """The `ETag` names this version: send it back as `If-Match` with a PUT."""
    row = await issues.get(db, issue_id)
    return Response(IssueOut.of(row), headers=etag(row))


@get("/issues/{issue_id:int}/actions", summary="What can be done to the issue now, and why not")
async def issue_actions(db: DB, issue_id: Id) -> list[ActionOut]:
    """Every action of the issue's life cycle (update, delete, schedule,
    unschedule, send-now, pause, resume, cancel, resend) with whether it is
    allowed now; a refused one says why, as the action's own 409 would."""
    row = await issues.get(db, issue_id)
    return [
        ActionOut(
            action=offer.action,
            allowed=offer.possible,
            leads_to=transitions.result(offer.action, row),
            reason=offer.refusal.detail if offer.refusal is not None else None,
        )
        for offer in transitions.every_action(row)
    ]


@put("/issues/{issue_id:int}", summary="Replace a draft issue")
async def update_issue(
    db: DB,
    settings: Config,
    actor: Who,
    issue_id: Id,
    data: JSONBody[IssueIn],
    if_match: IfMatch = None,
) -> Response[IssueOut]:
    """Only drafts can change (409 otherwise); send every field. With `If-Match`
    (the `ETag` of your GET), a version someone else changed meanwhile gets 412
    (who and when in `detail`) and nothing changes."""
    row = await issues.update(
        db, settings, actor, issue_id, data.fields(), expected=expected_versions(if_match)
    )
    return Response(IssueOut.of(row), headers=etag(row))


@delete("/issues/{issue_id:int}", summary="Delete a draft issue")
async def delete_issue(db: DB, actor: Who, issue_id: Id) -> None:
    await issues.delete(db, actor, issue_id)


@get(
    "/issues/{issue_id:int}/preview",
    summary="The issue exactly as a subscriber gets it",
    media_type=MediaType.HTML,
)
async def preview_issue(
    db: DB,
    settings: Config,
    issue_id: Id,
    format: FromQuery[Literal["html", "text"]] = "html",
) -> Response[str]:
    """The HTML or plain-text part, personalised for a subscriber without a name.
    The unsubscribe link carries a dummy token."""
    html_part, text_part = await issues.preview(db, settings, issue_id)
    if format == "text":
        return Response(text_part, media_type=MediaType.TEXT)
    return Response(html_part, media_type=MediaType.HTML)


@post("/issues/{issue_id:int}/test-send", summary="Send a [TEST] copy", status_code=202)
async def test_send_issue(
    db: DB, settings: Config, actor: Who, issue_id: Id, data: JSONBody[TestSendIn]
) -> TestSendOut:
    """Queues a copy marked "[TEST]" to each address (at most 10) through the outbox."""
    ids = await issues.test_send(db, settings, actor, issue_id, data.addresses)
    return TestSendOut(queued=len(ids), addresses=data.addresses)


@post("/issues/{issue_id:int}/schedule", summary="Schedule sending", status_code=200)
async def schedule_issue(
    request: Request[Any, Any, Any],
    db: DB,
    settings: Config,
    actor: Who,
    issue_id: Id,
    data: JSONBody[ScheduleIn],
) -> IssueOut:
    """A draft or scheduled issue gets `send_at`; a worker starts it when due.

    The pre-send check must have no problem open for the issue's current
    content (it runs now when no kept result matches, so it cannot be
    skipped): otherwise 409 `open_problems` lists them, unless
    `despite_problems` is true. Warnings never block."""
    issues.parse_send_at(data.send_at, settings)  # a wrong time is a 422 before any check
    await checks.require_clear(
        db,
        settings,
        issue_id,
        "schedule",
        request.app.state.feed_policy,
        despite_problems=data.despite_problems,
    )
    return IssueOut.of(
        await issues.schedule(
            db, settings, actor, issue_id, data.send_at, despite_problems=data.despite_problems
        )
    )


@post("/issues/{issue_id:int}/send-now", summary="Start sending now", status_code=200)
async def send_issue_now(
    request: Request[Any, Any, Any],
    db: DB,
    settings: Config,
    actor: Who,
    issue_id: Id,
    data: JSONBody[SendNowIn | None] = None,
) -> IssueOut:
    """Renders the final copy, gives it its archive number and queues every active subscriber.

    Refused with 409 `open_problems` like `schedule` while the pre-send
    check has a problem open, unless the (optional) body says
    `{"despite_problems": true}`."""
    despite = data is not None and data.despite_problems
    await checks.require_clear(
        db, settings, issue_id, "send-now", request.app.state.feed_policy, despite_problems=despite
    )
    return IssueOut.of(
        await issues.send_now(db, settings, actor, issue_id, despite_problems=despite)
    )


@post("/issues/{issue_id:int}/pause", summary="Pause a sending issue", status_code=200)
async def pause_issue(db: DB, actor: Who, issue_id: Id) -> IssueOut:
    return IssueOut.of(await issues.pause(db, actor, issue_id))


@post("/issues/{issue_id:int}/resume", summary="Resume a paused issue", status_code=200)
async def resume_issue(db: DB, actor: Who, issue_id: Id) -> IssueOut:
    return IssueOut.of(await issues.resume(db, actor, issue_id))


@post("/issues/{issue_id:int}/cancel", summary="Cancel an issue", status_code=200)
async def cancel_issue(db: DB, actor: Who, issue_id: Id) -> IssueOut:
    """Mail not yet handed to SMTP is skipped; a sent issue cannot be cancelled."""
    return IssueOut.of(await issues.cancel(db, actor, issue_id))


ROUTES = [
    Router(
        "/api/v1",
        route_handlers=[
            create_issue,
            list_issues,
            get_issue,
            issue_actions,
            update_issue,
            delete_issue,
            preview_issue,
            test_send_issue,
            schedule_issue,
            send_issue_now,
            pause_issue,
            resume_issue,
            cancel_issue,
        ],
        guards=[requires("editor")],
        dependencies={"actor": provide_actor},
        security=SECURITY,
        tags=["issues"],
    )
]
