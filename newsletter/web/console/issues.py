"""Issues in the console: compose a draft from news items (ordered with
buttons, no drag and drop needed), preview it as residents will see it,
test-send it to yourself, schedule it in KST, send now, pause, resume,
cancel (each confirmed first), and follow it going out to its results.

Above the send actions, the pre-send check (발송 전 점검): the kept result
at once, and a fresh one fetched by the page (htmx) when the content changed
since, or run on the "다시 점검" button without JavaScript. Scheduling and
sending pass the check's gate (``checks.require_clear``): the confirmation
names each open problem and asks the editor to say she sends despite them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from litestar import MediaType, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Template

from newsletter.core.db import Database, Record
from newsletter.core.errors import DomainError, InvalidInput, OpenProblems, Stale
from newsletter.core.settings import Settings
from newsletter.editorial import checks, issues, news, transitions, versions
from newsletter.editorial.rendering import DEFAULT_GREETING
from newsletter.ops import stats
from newsletter.ops.stats import IssueStats
from newsletter.web.console.charts import Chart, bar_chart
from newsletter.web.console.fields import checked, local_datetime, text
from newsletter.web.console.gate import maybe_session, session_of
from newsletter.web.console.korean import explain
from newsletter.web.console.render import done, message_page, render
from newsletter.web.console.roles import ANYONE, EDITOR
from newsletter.web.http.deps import DB, Config
from newsletter.web.http.params import PageNumber, form_id

PICKABLE = 20
LIST_PAGE = 20
# A preview is the mail itself: its own inline styles, images from anywhere,
# no script at all. Framed only by our own console page.
PREVIEW_CSP = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
    "font-src https: data:; frame-ancestors 'self'; sandbox"
)


@dataclass(frozen=True)
class Control:
    """What a person reads for one action on the issue page: its button, the
    confirmation's heading and button, the message after it, and how loud
    the button is. Whether the issue offers it, and why not, is the domain's
    table (:mod:`newsletter.editorial.transitions`)."""

    label: str
    heading: str
    confirm: str
    done: str
    style: str = ""  # "primary", "danger" or plain


# The state changes a person can ask for on the issue page, in this order.
CONTROLS: dict[str, Control] = {
    "send-now": Control(
        "지금 발송…", "지금 발송할까요?", "지금 발송 시작", "발송을 시작했습니다.", "primary"
    ),
    "pause": Control(
        "일시 정지…",
        "발송을 일시 정지할까요?",
        "일시 정지",
        "발송을 멈췄습니다. ‘재개’를 누르면 이어서 보냅니다.",
    ),
    "resume": Control(
        "재개…", "발송을 재개할까요?", "발송 재개", "발송을 다시 시작했습니다.", "primary"
    ),
    "cancel": Control(
        "발송 취소…",
        "이 호를 취소할까요?",
        "발송 취소",
        "취소했습니다. 아직 보내지 않은 메일은 보내지 않습니다.",
        "danger",
    ),
    "unschedule": Control(
        "예약 해제…",
        "예약을 풀고 초안으로 되돌릴까요?",
        "예약 해제",
        "예약을 풀었습니다. 다시 고친 뒤 예약해 주세요.",
    ),
    "delete": Control(
        "초안 지우기…", "이 초안을 지울까요?", "초안 지우기", "초안을 지웠습니다.", "danger"
    ),
}


@dataclass(frozen=True)
class Button:
    """One offered action as the page draws it; ``reason``: why it is disabled."""

    action: str
    label: str
    style: str
    reason: str | None


def buttons(row: Record) -> list[Button]:
    """The actions the issue's state allows now, as the page's buttons, in CONTROLS order."""
    offered = {offer.action: offer.refusal for offer in transitions.offers(row)}
    shown = []
    for action, control in CONTROLS.items():
        if action in offered:
            refused = offered[action]
            reason = explain(refused) if refused is not None else None
            shown.append(Button(action, control.label, control.style, reason))
    return shown


# --- the pre-send check -------------------------------------------------------------

STATUS_WORDS = {checks.PROBLEM: "문제", checks.WARNING: "주의", checks.OK: "정상"}
OUR_LINKS = {"archive": "지난 뉴스레터 링크", "unsubscribe": "수신 거부 링크"}
DESPITE = "점검에서 나온 문제를 알고도 보냅니다"


@dataclass(frozen=True)
class CheckLine:
    """One finding as the page shows it: the status in words, the sentence,
    and the item, link or image it is about."""

    status: str
    word: str
    sentence: str
    item: str | None
    link: str | None
    image: bool


def check_line(finding: checks.Finding) -> CheckLine:
    where = finding.where or {}
    item = where.get("news_item_title") or OUR_LINKS.get(str(where.get("what")))
    link = where.get("url")
    return CheckLine(
        finding.status,
        STATUS_WORDS[finding.status],
        finding.detail("ko"),
        str(item) if item else None,
        str(link) if link else None,
        finding.id in ("image", "image_alt"),
    )


def check_view(report: checks.Report | None) -> dict[str, Any]:
    """What the page's check list draws: open findings first, the fine ones after."""
    if report is None:
        return {"report": None, "open": [], "fine": []}
    lines = [check_line(f) for f in report.findings]
    order = {checks.PROBLEM: 0, checks.WARNING: 1}
    open_ = sorted((line for line in lines if line.status in order), key=lambda x: order[x.status])
    return {
        "report": report,
        "open": open_,
        "fine": [line for line in lines if line.status == checks.OK],
    }


def _sendable(row: Record) -> bool:
    allowed = transitions.allowed_from(row["status"])
    return "schedule" in allowed or "send-now" in allowed


@get("/issues/{issue_id:int}/checks", opt=EDITOR, media_type=MediaType.HTML)
async def issue_checks(
    request: Request[Any, Any, Any], db: DB, settings: Config, issue_id: FromPath[int]
) -> Template:
    """The check's list alone, for the page to fetch when it opens (htmx):
    the kept result if the content is unchanged, otherwise run now."""
    report = await checks.run(db, settings, issue_id, request.app.state.feed_policy)
    row = await issues.get(db, issue_id)
    return render(
        request,
        "console/issue_checks_fresh.html",
        title=row["title"],
        issue=row,
        checks=check_view(report),
        checks_due=False,
    )


@post("/issues/{issue_id:int}/checks", opt=EDITOR)
async def issue_checks_again(
    request: Request[Any, Any, Any], db: DB, settings: Config, issue_id: FromPath[int]
) -> Response[Any]:
    """ "다시 점검": run the check anew (the page's way without JavaScript too)."""
    report = await checks.run(db, settings, issue_id, request.app.state.feed_policy, again=True)
    said = f"다시 점검했습니다: 문제 {len(report.problems)}건, 주의 {len(report.warnings)}건."
    return await done(request, f"/admin/issues/{issue_id}#checks", said)


# --- list and create ----------------------------------------------------------------


@get("/issues", opt=ANYONE, media_type=MediaType.HTML)
async def issue_list(request: Request[Any, Any, Any], db: DB, page: PageNumber = 1) -> Template:
    status = request.query_params.get("status")
    status = status if status in transitions.STATUSES else None
    rows, total = await issues.list_issues(db, status=status, page=page, per_page=LIST_PAGE)
    return render(
        request,
        "console/issues_list.html",
        title="뉴스레터 발행",
        issues=rows,
        filter_status=status,
        statuses=transitions.STATUSES,
        page=page,
        has_next=page * LIST_PAGE < total,
    )


@get("/issues/new", opt=EDITOR, media_type=MediaType.HTML)
async def issue_new(request: Request[Any, Any, Any]) -> Template:
    return render(
        request,
        "console/issue_new.html",
        title="새 호 만들기",
        values={"title": "", "intro": "", "greeting": DEFAULT_GREETING},
    )


@post("/issues", opt=EDITOR)
async def issue_create(request: Request[Any, Any, Any], db: DB) -> Response[Any]:
    form = await request.form()
    values = {
        "title": text(form, "title", issues.MAX_TITLE),
        "intro": text(form, "intro", 6000),
        "greeting": text(form, "greeting", issues.MAX_GREETING),
    }
    try:
        row = await issues.create(
            db,
            session_of(request).user.actor,
            issues.IssueFields(
                title=values["title"],
                intro=values["intro"],
                is_advertisement=checked(form, "is_advertisement"),
                greeting=values["greeting"],
            ),
        )
    except InvalidInput as exc:
        return render(
            request,
            "console/issue_new.html",
            status=422,
            title="새 호 만들기",
            errors={exc.field or "title": explain(exc)},
            values=values,
        )
    return await done(
        request, f"/admin/issues/{row['id']}", "초안을 만들었습니다. 이제 뉴스 항목을 넣으세요."
    )


# --- one issue ------------------------------------------------------------------


async def _picked(db: Database, row: Record | dict[str, Any]) -> list[Record]:
    ids = list(row["news_item_ids"])
    if not ids:
        return []
    by_id = {r["id"]: r for r in await db.fetch("news_items_by_ids", ids)}
    return [by_id[i] for i in ids if i in by_id]


def send_chart(issue: IssueStats, zone: ZoneInfo) -> Chart:
    per_minute = issue.sends_per_minute
    labels = [m.minute.astimezone(zone).strftime("%H:%M") for m in per_minute]
    peak = max((m.sent for m in per_minute), default=0)
    limit = issue.rate_limit_per_second * 60
    return bar_chart(
        labels,
        [[m.sent for m in per_minute]],
        y_title="통 / 분",
        x_title="시각 (KST)",
        summary=f"최근 {len(per_minute)}분 동안 분당 보낸 메일 수, 가장 많을 때 {peak:,}통 "
        f"(한도 분당 {limit:,.0f}통)",
        limit=limit,
        limit_label=f"한도 {limit:,.0f}통/분",
    )


async def issue_context(
    request: Request[Any, Any, Any], db: Database, settings: Settings, issue_id: int
) -> dict[str, Any]:
    row = await issues.get(db, issue_id)
    session = maybe_session(request)
    can_edit = session is not None and session.user.allows("editor")
    offered = buttons(row) if can_edit else []
    schedule = transitions.refusal("schedule", row)
    context: dict[str, Any] = {
        "issue": row,
        "can_edit": can_edit,
        "buttons": offered,
        # Each reason once, though both send actions may give the same one.
        "reasons": list(dict.fromkeys(b.reason for b in offered if b.reason)),
        "can_schedule": can_edit and "schedule" in transitions.allowed_from(row["status"]),
        # The draft's form: only what the table lets change can be edited.
        "can_compose": can_edit and "update" in transitions.allowed_from(row["status"]),
        "is_draft": "update" in transitions.allowed_from(row["status"]),
        "schedule_refused": explain(schedule) if schedule is not None else None,
        "watching": row["status"] in transitions.MOVING,
        "picked": await _picked(db, row),
        "version": versions.version_of(row),  # the compose form's (editorial/versions.py)
        "mail_number": await issues.number_for(db, row),
        "figures": None,
        "chart": None,
        "clicks": None,
        "checks": None,
        "checks_due": False,
    }
    if can_edit and _sendable(row):
        # The kept result only: a fresh one may take seconds, so the page
        # asks for it after it is shown (issue_checks).
        kept = await checks.kept(db, settings, issue_id)
        context["checks"] = check_view(kept)
        context["checks_due"] = kept is None or kept.stale
    if row["status"] in transitions.STARTED:
        figures = await stats.issue_stats(db, settings, issue_id)
        context["figures"] = figures
        context["chart"] = send_chart(figures, ZoneInfo(settings.timezone))
        context["clicks"] = figures.clicks
    return context


@get("/issues/{issue_id:int}", opt=ANYONE, media_type=MediaType.HTML)
async def issue_page(
    request: Request[Any, Any, Any], db: DB, settings: Config, issue_id: FromPath[int]
) -> Template:
    context = await issue_context(request, db, settings, issue_id)
    row = context["issue"]
    view = request.query_params.get("view", "desktop")
    context["view"] = view if view in ("desktop", "phone", "text") else "desktop"
    if context["view"] == "text":
        context["preview_text"] = (await issues.preview(db, settings, issue_id))[1]
    if context["can_compose"]:
        query = text(request.query_params, "q", 100)[:100]
        context.update(await _pickable(db, settings, row, query))
    return render(request, "console/issue.html", title=row["title"], **context)


async def _pickable(
    db: Database, settings: Settings, row: Record | dict[str, Any], query: str
) -> dict[str, Any]:
    chosen = set(row["news_item_ids"])
    page = await news.list_items(db, settings, page=1, per_page=PICKABLE + len(chosen), text=query)
    pickable = [r for r in page.rows if r["id"] not in chosen][:PICKABLE]
    # Items that already went out are marked with the issue's number, so
    # nothing is mailed twice by mistake.
    earlier = await issues.earlier_issues_of(
        db, [r["id"] for r in pickable] + list(chosen), besides=row["id"]
    )
    return {"pickable": pickable, "q": query, "earlier": earlier}


@get("/issues/{issue_id:int}/live", opt=ANYONE, media_type=MediaType.HTML)
async def issue_live(
    request: Request[Any, Any, Any], db: DB, settings: Config, issue_id: FromPath[int]
) -> Template:
    """The figures panel alone, for the page's automatic update."""
    context = await issue_context(request, db, settings, issue_id)
    # 286 tells htmx to stop polling: nothing changes by itself any more. The
    # page's actions come along (swapped in place by id), so a finished send
    # offers no pause or cancel.
    return render(
        request,
        "console/issue_live.html",
        status=200 if context["watching"] else 286,
        title=context["issue"]["title"],
        swap_actions=True,
        **context,
    )


@get("/issues/{issue_id:int}/preview", opt=ANYONE)
async def issue_preview(
    request: Request[Any, Any, Any], db: DB, settings: Config, issue_id: FromPath[int]
) -> Response[str]:
    """The mail exactly as a resident without a name gets it (for the preview frame)."""
    html_part, text_part = await issues.preview(db, settings, issue_id)
    headers = {"Content-Security-Policy": PREVIEW_CSP, "X-Content-Type-Options": "nosniff"}
    if request.query_params.get("format") == "text":
        return Response(text_part, media_type="text/plain; charset=utf-8", headers=headers)
    return Response(html_part, media_type="text/html; charset=utf-8", headers=headers)


def _order(form: Any) -> list[int]:
    ids = [form_id(value) for value in form.getall("item", [])]
    return list(dict.fromkeys(i for i in ids if i is not None))


def apply_op(ids: list[int], op: str) -> list[int]:
    """One button's change to the reading order: add, remove, up or down."""
    verb, _, raw = op.partition(":")
    item = form_id(raw)
    if item is None:
        return ids
    order = list(ids)
    if verb == "add" and item not in order:
        order.append(item)
    elif verb == "remove" and item in order:
        order.remove(item)
    elif verb in ("up", "down") and item in order:
        at = order.index(item)
        to = at - 1 if verb == "up" else at + 1
        if 0 <= to < len(order):
            order[at], order[to] = order[to], order[at]
    return order


OP_MESSAGES = {
    "add": "항목을 넣었습니다.",
    "remove": "항목을 뺐습니다.",
    "up": "항목을 위로 옮겼습니다.",
    "down": "항목을 아래로 옮겼습니다.",
}


@post("/issues/{issue_id:int}", opt=EDITOR)
async def issue_save(
    request: Request[Any, Any, Any], db: DB, settings: Config, issue_id: FromPath[int]
) -> Response[Any]:
    """Save the draft: title, intro, and the items in order after the button's change."""
    form = await request.form()
    op = text(form, "op", 40)
    order = apply_op(_order(form), op)
    fields = issues.IssueFields(
        title=text(form, "title", issues.MAX_TITLE),
        intro=text(form, "intro", issues.MAX_INTRO + 1),
        news_item_ids=order,
        is_advertisement=checked(form, "is_advertisement"),
        greeting=text(form, "greeting", issues.MAX_GREETING),
    )
    session = session_of(request)
    version = text(form, "version", 64).strip()
    try:
        await issues.update(
            db,
            settings,
            session.user.actor,
            issue_id,
            fields,
            expected={version} if version else None,
        )
    except (InvalidInput, Stale) as exc:
        # The editor's text and order stay in the form, whatever went wrong.
        context = await issue_context(request, db, settings, issue_id)
        saved = context["issue"]
        draft = dict(saved)
        draft.update(
            title=fields.title,
            intro=fields.intro,
            news_item_ids=list(fields.news_item_ids),
            is_advertisement=fields.is_advertisement,
            greeting=fields.greeting,
        )
        context.update(issue=draft, picked=await _picked(db, draft))
        context.update(await _pickable(db, settings, draft, ""), view="desktop")
        if isinstance(exc, Stale):
            # Saving again now is a choice made after seeing the saved version.
            context.update(version=exc.current, saved=saved)
            errors = {"version": explain(exc)}
        else:
            errors = {exc.field or "title": explain(exc)}
        return render(
            request,
            "console/issue.html",
            status=exc.status,
            title=fields.title or "호 편집",
            errors=errors,
            **context,
        )
    message = OP_MESSAGES.get(op.partition(":")[0], "저장했습니다.")
    anchor = "#compose-items" if op else ""
    return await done(request, f"/admin/issues/{issue_id}{anchor}", message)


@post("/issues/{issue_id:int}/test-send", opt=EDITOR)
async def issue_test_send(
    request: Request[Any, Any, Any], db: DB, settings: Config, issue_id: FromPath[int]
) -> Response[Any]:
    session = session_of(request)
    form = await request.form()
    extra = [a.strip() for a in text(form, "addresses", 2000).replace(",", "\n").split("\n")]
    addresses = [session.user.email, *[a for a in extra if a]]
    try:
        await issues.test_send(db, settings, session.user.actor, issue_id, addresses)
    except InvalidInput as exc:
        return await done(
            request, f"/admin/issues/{issue_id}", f"테스트 메일을 보내지 못했습니다: {explain(exc)}"
        )
    unique = list(dict.fromkeys(a.lower() for a in addresses))
    return await done(
        request,
        f"/admin/issues/{issue_id}",
        f"[TEST] 메일을 {', '.join(unique)} 앞으로 보냈습니다. 곧 받은편지함에 도착합니다.",
    )


@post("/issues/{issue_id:int}/schedule", opt=EDITOR)
async def issue_schedule(
    request: Request[Any, Any, Any], db: DB, settings: Config, issue_id: FromPath[int]
) -> Response[Any]:
    form = await request.form()
    row = await issues.get(db, issue_id)
    raw = text(form, "send_at", 40)
    try:
        moment = local_datetime(raw, "send_at", required=True)
        assert moment is not None
        at = issues.parse_send_at(moment.isoformat(), settings)
    except InvalidInput as exc:
        context = await issue_context(request, db, settings, issue_id)
        if context["can_compose"]:
            context.update(await _pickable(db, settings, row, ""))
        return render(
            request,
            "console/issue.html",
            status=422,
            title=row["title"],
            errors={"send_at": explain(exc)},
            send_at_value=raw,
            view="desktop",
            **context,
        )
    refused = transitions.refusal("schedule", row)
    if refused is not None:
        return _not_now(request, issue_id, refused)

    async def confirmation(errors: dict[str, str] | None = None) -> Template:
        recipients = await issues.recipient_count(db)
        local = at.astimezone(ZoneInfo(settings.timezone))
        return render(
            request,
            "console/confirm.html",
            status=409 if errors else 200,
            title="발송 예약",
            heading="이 시각에 발송하도록 예약할까요?",
            paragraphs=[
                f"‘{row['title']}’",
                f"발송 일시: {local:%Y년 %m월 %d일 %H:%M} KST",
                f"지금 구독 중인 {recipients:,}명에게 갑니다 (발송을 시작할 때의 구독자 기준).",
                "예약한 뒤에는 내용을 고칠 수 없습니다. 고치려면 예약을 풀면 됩니다.",
            ],
            action=f"/admin/issues/{issue_id}/schedule",
            extra={"send_at": raw},
            button="예약하기",
            back=f"/admin/issues/{issue_id}",
            errors=errors,
            **await _problems(request, db, settings, issue_id),
        )

    if text(form, "confirmed", 5) != "yes":
        return await confirmation()
    if not await _cleared(request, db, settings, issue_id, "schedule", form):
        return await confirmation({"despite_problems": NOT_DESPITE})
    try:
        await issues.schedule(
            db,
            settings,
            session_of(request).user.actor,
            issue_id,
            at.isoformat(),
            despite_problems=checked(form, "despite_problems"),
        )
    except DomainError as exc:
        return _not_now(request, issue_id, exc)
    return await done(request, f"/admin/issues/{issue_id}", "발송을 예약했습니다.")


NOT_DESPITE = "점검에서 문제가 나왔습니다. 고친 뒤 보내거나, 알고도 보낸다면 이 칸을 골라 주세요."


async def _problems(
    request: Request[Any, Any, Any], db: Database, settings: Settings, issue_id: int
) -> dict[str, Any]:
    """The confirmation's list of open problems (the check runs now if the
    content changed since it was kept) and the box that sends despite them."""
    found = await checks.open_problems(db, settings, issue_id, request.app.state.feed_policy)
    return {"problems": [check_line(f) for f in found], "despite_label": DESPITE}


async def _cleared(
    request: Request[Any, Any, Any],
    db: Database,
    settings: Settings,
    issue_id: int,
    action: str,
    form: Any,
) -> bool:
    """The check's gate, the one the API passes too: False while a problem
    is open and the editor has not ticked that she sends despite it."""
    try:
        await checks.require_clear(
            db,
            settings,
            issue_id,
            action,
            request.app.state.feed_policy,
            despite_problems=checked(form, "despite_problems"),
        )
    except OpenProblems:
        return False
    return True


def _not_now(request: Request[Any, Any, Any], issue_id: int, exc: DomainError) -> Template:
    return message_page(
        request,
        "지금은 할 수 없습니다",
        explain(exc),
        status=exc.status,
        back=f"/admin/issues/{issue_id}",
        back_label="호로 돌아가기",
    )


@post("/issues/{issue_id:int}/{action:str}", opt=EDITOR)
async def issue_action(
    request: Request[Any, Any, Any],
    db: DB,
    settings: Config,
    issue_id: FromPath[int],
    action: FromPath[str],
) -> Response[Any]:
    """send-now, pause, resume, cancel, unschedule, delete: a confirmation
    page first, then the change; an illegal one is explained in Korean."""
    control = CONTROLS.get(action)
    if control is None:
        return message_page(request, "찾을 수 없습니다", "없는 기능입니다.", status=404)
    row = await issues.get(db, issue_id)
    form = await request.form()
    # Refused before the confirmation: nobody confirms what cannot happen.
    refused = transitions.refusal(action, row)
    if refused is not None:
        return _not_now(request, issue_id, refused)
    gated = action == "send-now"

    async def confirmation(errors: dict[str, str] | None = None) -> Template:
        return render(
            request,
            "console/confirm.html",
            status=409 if errors else 200,
            title=control.heading,
            heading=control.heading,
            paragraphs=await _consequences(db, row, action),
            action=f"/admin/issues/{issue_id}/{action}",
            button=control.confirm,
            danger=control.style == "danger",
            back=f"/admin/issues/{issue_id}",
            errors=errors,
            **(await _problems(request, db, settings, issue_id) if gated else {}),
        )

    if text(form, "confirmed", 5) != "yes":
        return await confirmation()
    if gated and not await _cleared(request, db, settings, issue_id, action, form):
        return await confirmation({"despite_problems": NOT_DESPITE})
    actor = session_of(request).user.actor
    try:
        if action == "send-now":
            await issues.send_now(
                db, settings, actor, issue_id, despite_problems=checked(form, "despite_problems")
            )
        elif action == "pause":
            await issues.pause(db, actor, issue_id)
        elif action == "resume":
            await issues.resume(db, actor, issue_id)
        elif action == "cancel":
            await issues.cancel(db, actor, issue_id)
        elif action == "unschedule":
            await issues.unschedule(db, actor, issue_id)
        else:
            await issues.delete(db, actor, issue_id)
    except DomainError as exc:
        return _not_now(request, issue_id, exc)
    target = "/admin/issues" if action == "delete" else f"/admin/issues/{issue_id}"
    return await done(request, target, control.done)


async def _consequences(db: Database, row: Record, action: str) -> list[str]:
    title = f"‘{row['title']}’"
    if action == "send-now":
        recipients = await issues.recipient_count(db)
        if not recipients:
            return [
                title,
                "지금 구독 중인 사람이 없습니다. 보내면 아무도 받지 않지만, 이 호는 호 번호를 "
                "받아 발송한 호가 되고 웹 공개본(지난 뉴스레터)에 실립니다.",
                "먼저 구독자를 모으거나 명단을 가져오고, 그동안은 예약해 두는 편이 낫습니다.",
            ]
        return [
            title,
            f"지금 구독 중인 {recipients:,}명에게 바로 보내기 시작합니다.",
            "시작한 뒤에는 내용을 고칠 수 없고, 일시 정지나 취소만 할 수 있습니다.",
        ]
    if action == "cancel":
        return [
            title,
            "아직 보내지 않은 메일은 모두 보내지 않습니다. 이미 보낸 메일은 되돌릴 수 없습니다.",
            "취소한 호는 다시 보낼 수 없습니다.",
        ]
    if action == "pause":
        return [title, "작업자가 지금 넘기고 있는 몇 통을 빼고, 더 이상 보내지 않습니다."]
    if action == "resume":
        return [title, "멈춘 곳부터 이어서 보냅니다."]
    if action == "delete":
        return [title, "초안을 지웁니다. 되돌릴 수 없습니다. 뉴스 항목은 지워지지 않습니다."]
    return [title, "예약한 시각을 지우고 초안으로 되돌립니다."]


ROUTES = [
    issue_list,
    issue_new,
    issue_create,
    issue_page,
    issue_checks,
    issue_checks_again,
    issue_live,
    issue_preview,
    issue_save,
    issue_test_send,
    issue_schedule,
    issue_action,
]
