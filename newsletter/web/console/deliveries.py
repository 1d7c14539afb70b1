"""An issue's delivery record in the console, and its safe resend.

Who did not get the issue and why, per status, in the delivery record's
words with the SMTP code; admins also see the addresses (the read is
recorded). What failed through no fault of its recipient can be sent again,
once, after a confirmation that says how many and why.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Template

from newsletter.audience import personal_data
from newsletter.core.errors import DomainError
from newsletter.editorial import issues, transitions
from newsletter.ops import delivery_record, words
from newsletter.web.console import privacy
from newsletter.web.console.fields import text
from newsletter.web.console.gate import session_of
from newsletter.web.console.korean import explain
from newsletter.web.console.render import done, message_page, render
from newsletter.web.console.roles import ANYONE
from newsletter.web.http.deps import DB
from newsletter.web.http.params import AfterId, RowId

PAGE = 50
STATUS_WORDS = {
    "failed": words.delivery_status("failed"),
    "bounced": words.delivery_status("bounced"),
    "deferred": "다시 보낼 예정",
    "skipped": words.delivery_status("skipped"),
}
STATUS_HINTS = {
    "failed": "받는 쪽 서버가 거절했거나, 정해진 기간·횟수를 넘겨 포기한 메일",
    "bounced": "받아 간 뒤에 반송 통지가 돌아온 메일",
    "deferred": "일시적인 문제로 미뤄 두었고, 작업자가 다시 보낼 메일",
    "skipped": "보내기 전에 수신 거부, 삭제, 발송 제외되었거나 발송이 취소된 메일",
}


async def _resendable(db: DB, issue_id: int) -> list[delivery_record.ReasonCount]:
    """The failure reasons a resend would take now, with how many each."""
    failed = await delivery_record.reason_counts(db, issue_id, "failed")
    return [r for r in failed if r.resend_would_take]


@get("/issues/{issue_id:int}/deliveries", opt=ANYONE, media_type=MediaType.HTML)
async def delivery_page(
    request: Request[Any, Any, Any], db: DB, issue_id: RowId, after: AfterId = 0
) -> Template:
    params = request.query_params
    status = params.get("status", "failed")
    status = status if status in delivery_record.STATUSES else "failed"
    row = await issues.get(db, issue_id)
    admin = session_of(request).user.allows("admin")
    record = (
        await personal_data.deliveries(
            db, privacy.reader(request), issue_id, status, after=after, limit=PAGE
        )
        if admin
        else await delivery_record.page(
            db, issue_id, status, after=after, limit=PAGE, with_addresses=False
        )
    )
    resendable = await _resendable(db, issue_id)
    return render(
        request,
        "console/deliveries.html",
        title=f"보내지 못한 메일 · {row['title']}",
        issue=row,
        record=record,
        shown=status,
        after=after,
        status_words=STATUS_WORDS,
        status_hints=STATUS_HINTS,
        resend_count=sum(r.resend_would_take for r in resendable),
        can_resend=transitions.refusal("resend", row) is None,
        can_see_addresses=admin,
    )


@post("/issues/{issue_id:int}/resend", opt=ANYONE)
async def resend(request: Request[Any, Any, Any], db: DB, issue_id: FromPath[int]) -> Response[Any]:
    """A confirmation that says how many and why, then the resend (exactly once)."""
    row = await issues.get(db, issue_id)
    back = f"/admin/issues/{issue_id}/deliveries"
    form = await request.form()
    if text(form, "confirmed", 5) != "yes":
        resendable = await _resendable(db, issue_id)
        count = sum(r.resend_would_take for r in resendable)
        if count and transitions.refusal("resend", row) is None:
            return render(
                request,
                "console/confirm.html",
                title="다시 보내기",
                heading=f"{count:,}통을 다시 보낼까요?",
                paragraphs=[
                    f"‘{row['title']}’",
                    *[f"{r.words}: {r.resend_would_take:,}통" for r in resendable],
                    "받는 사람 탓이 아닌 이유로 실패한 메일만, 아직 구독 중인 분께 한 번 "
                    "보냅니다. 반송·수신 거부·발송 제외된 주소와 이미 받은 분께는 "
                    "보내지 않습니다.",
                ],
                action=f"/admin/issues/{issue_id}/resend",
                button="다시 보내기 시작",
                back=back,
            )
    try:
        resent = await issues.resend(db, session_of(request).user.actor, issue_id)
    except DomainError as exc:
        return message_page(
            request,
            "다시 보낼 수 없습니다",
            explain(exc),
            status=exc.status,
            back=back,
            back_label="보내지 못한 메일로 돌아가기",
        )
    return await done(
        request,
        f"/admin/issues/{issue_id}",
        f"{resent.requeued:,}통을 다시 보내기 시작했습니다 ({resent.round}차 발송).",
    )


ROUTES = [delivery_page, resend]
