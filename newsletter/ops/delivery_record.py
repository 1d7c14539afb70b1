"""The delivery record: which residents did not get an issue, and why, in words.

Each delivery row carries a reason code, set by the statement that made it
final or put it back to wait (the codes are listed in
``sql/migrations/0015_engagement.sql``). Here a code, the SMTP reply code and
the enhanced status code (RFC 3463) in the stored reply become what ops reads:
"없는 메일 주소", "메일함이 가득 참", "중계 서버가 우리를 거절", "3일이 지나 포기",
"발송 중에 수신 거부" ...

Addresses and names are personal data: the functions return them only when
the caller says so (the API does for admins only, and audits the read);
everyone else gets counts per reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from newsletter.core.db import Database, Record
from newsletter.core.errors import InvalidInput, NotFound
from newsletter.core.records import check_id

Status = Literal["failed", "bounced", "deferred", "skipped"]
STATUSES: tuple[Status, ...] = ("failed", "bounced", "deferred", "skipped")
MAX_PAGE = 500

# Failed for reasons that were not the recipient's: our relay unreachable or
# refusing us past the maximum age, or refusing our own sender address. Only
# these are ever sent again (editorial.issues.resend).
RESENDABLE = ("server_trouble", "sender_refused")

# How long server trouble may last before a delivery is failed, as people say
# it (delivery.claim.DELIVERY_MAX_AGE_SECONDS; a test keeps the two in step).
MAX_AGE_WORDS = "3일"

WORDS: dict[str, str] = {
    # failed: the recipient's server said no (5xx to RCPT or DATA)
    "mailbox_unknown": "없는 메일 주소 (받는 서버가 모르는 주소라고 답함)",
    "mailbox_full": "받는 사람의 메일함이 가득 참",
    "refused_policy": "받는 서버가 정책상 거절 (스팸 차단 등)",
    "message_too_big": "메일이 받는 서버의 크기 제한을 넘음",
    "refused": "받는 서버가 메일을 거절함",
    # failed: temporary refusals until MAX_ATTEMPTS
    "temporary_refusals": "일시 거절이 계속되어 정해진 횟수만큼 시도한 뒤 포기",
    # failed, not the recipient's doing (resendable)
    "sender_refused": "중계 서버가 우리 발신 주소를 거절 (우리 쪽 설정 문제)",
    "relay_unreachable": f"중계 서버에 연결하지 못한 채 {MAX_AGE_WORDS}이 지나 포기",
    "relay_refused": f"중계 서버가 우리를 거절(인증·EHLO)한 채 {MAX_AGE_WORDS}이 지나 포기",
    "relay_busy": f"중계 서버의 지연·속도 제한이 {MAX_AGE_WORDS} 동안 계속되어 포기",
    # bounced: accepted, then a delivery status notification came back
    "bounced_unknown": "보낸 뒤 반송됨: 없는 메일 주소",
    "bounced_soft": "보낸 뒤 반송됨: 일시적 문제 (메일함 가득 참 등)",
    # skipped: never handed to SMTP
    "unsubscribed": "발송 중에 수신 거부함",
    "suppressed": "반송이 거듭되어 수신이 중지된 주소",
    "erased": "개인정보 삭제 요청으로 지워진 구독자",
    "lapsed": "재동의가 없어 구독이 만료됨",
    "pending": "구독 확인 전인 주소",
    "cancelled": "발송이 취소되어 보내지 않음",
    # deferred: waiting to be tried again
    "waiting_relay": "중계 서버 문제로 미뤄 둠 (받는 사람의 시도 횟수에는 넣지 않음)",
    "waiting_retry": "일시 거절되어 다시 시도할 때를 기다림",
    "unknown": "사유가 기록되지 않음",
}


@dataclass(frozen=True, slots=True)
class Why:
    code: str  # a key of WORDS
    words: str
    resendable: bool


def _enhanced(text: str | None) -> tuple[int, int, int] | None:
    if not text:
        return None
    try:
        klass, subject, detail = (int(part) for part in text.split("."))
    except ValueError:
        return None
    return klass, subject, detail


def _refusal(code: int | None, enhanced: tuple[int, int, int] | None) -> str:
    """What a permanent refusal of a recipient says (RFC 3463 subjects first)."""
    if enhanced is not None and enhanced[0] == 5:
        _, subject, detail = enhanced
        if subject == 1 or (subject, detail) == (2, 1):
            return "mailbox_unknown"
        if (subject, detail) == (2, 2):
            return "mailbox_full"
        if (subject, detail) in ((3, 4), (2, 3)):
            return "message_too_big"
        if subject == 7:
            return "refused_policy"
        return "refused"
    if code in (550, 551, 553):
        return "mailbox_unknown"
    if code == 552:
        return "mailbox_full"
    return "refused"


def explain(status: str, reason: str | None, smtp_code: int | None, enhanced: str | None) -> Why:
    """The words for one delivery (or a group with the same status, reason and codes)."""
    status_code = _enhanced(enhanced)
    code: str
    if status in ("queued", "sending", "deferred"):
        code = "waiting_relay" if reason == "server_trouble" else "waiting_retry"
    elif status == "bounced":
        code = "bounced_unknown" if reason == "bounce_hard" else "bounced_soft"
    elif status == "skipped":
        code = reason if reason in WORDS else "unknown"
    elif reason == "refused":
        code = _refusal(smtp_code, status_code)
    elif reason == "retries_exhausted":
        full = status_code is not None and status_code[1:] == (2, 2)
        code = "mailbox_full" if full or smtp_code == 452 else "temporary_refusals"
    elif reason == "sender_refused":
        code = "sender_refused"
    elif reason == "server_trouble":
        if smtp_code is None:
            code = "relay_unreachable"
        elif smtp_code >= 500:
            code = "relay_refused"
        else:
            code = "relay_busy"
    else:
        code = "unknown"
    return Why(code, WORDS[code], status == "failed" and reason in RESENDABLE)


@dataclass(frozen=True, slots=True)
class ReasonCount:
    reason: str
    words: str
    smtp_code: int | None
    count: int
    resendable: bool  # a reason that is not the recipient's doing
    resend_would_take: int = 0  # of ``count``, those whose subscriber is still active


@dataclass(frozen=True, slots=True)
class DeliveryEntry:
    """One delivery that did not (yet) arrive. ``email``/``name`` only for admins."""

    delivery_id: int
    status: str  # failed, bounced, deferred, skipped
    reason: str
    words: str
    smtp_code: int | None
    detail: str | None  # the SMTP reply as the server gave it
    attempts: int
    deferrals: int
    round: int
    next_attempt_at: datetime | None  # deferred rows: when they are tried again
    bounced_at: datetime | None
    resendable: bool
    subscriber_id: int | None = None
    email: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    """One page of an issue's delivery record for one status."""

    issue_id: int
    status: str
    total: int
    resendable: int  # what POST .../resend would re-queue now
    reasons: list[ReasonCount]
    items: list[DeliveryEntry] | None  # None: the caller may not see addresses
    next_after: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_status(status: str) -> Status:
    for known in STATUSES:
        if status == known:
            return known
    raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")


async def require_issue(db: Database, issue_id: int) -> Record:
    """The issue's id, status and round; NotFound if there is no such issue."""
    check_id(issue_id, "issue")
    row = await db.fetchrow("delivery_record_issue", issue_id)
    if row is None:
        raise NotFound(f"no issue {issue_id}")
    return row


async def reason_counts(db: Database, issue_id: int, status: str) -> list[ReasonCount]:
    """How many deliveries of ``status`` there are for each reason, most first."""
    wanted = _check_status(status)
    await require_issue(db, issue_id)
    if wanted == "deferred":
        rows = await db.fetch("delivery_record_waiting_counts", issue_id)
    else:
        rows = await db.fetch("delivery_record_counts", issue_id, wanted)
    grouped: dict[tuple[str, int | None], tuple[Why, int, int]] = {}
    for row in rows:
        why = explain(wanted, row["reason"], row["smtp_code"], row["enhanced"])
        key = (why.code, row["smtp_code"])
        _, count, active = grouped.get(key, (why, 0, 0))
        grouped[key] = (why, count + row["count"], active + row["active"])
    counts = [
        ReasonCount(
            why.code, why.words, smtp_code, count, why.resendable, active if why.resendable else 0
        )
        for (_, smtp_code), (why, count, active) in grouped.items()
    ]
    counts.sort(key=lambda c: (-c.count, c.reason, c.smtp_code or 0))
    return counts


def _entry(row: Record, with_addresses: bool) -> DeliveryEntry:
    status = "deferred" if row["status"] in ("queued", "sending") else row["status"]
    why = explain(status, row["reason"], row["smtp_code"], row["enhanced"])
    return DeliveryEntry(
        delivery_id=row["id"],
        status=status,
        reason=why.code,
        words=why.words,
        smtp_code=row["smtp_code"],
        # The server's reply may quote the address: personal data too.
        detail=row["last_error"] if with_addresses else None,
        attempts=row["attempts"],
        deferrals=row["deferrals"],
        round=row["round"],
        next_attempt_at=row["next_attempt_at"] if status == "deferred" else None,
        bounced_at=row["bounced_at"],
        resendable=why.resendable,
        subscriber_id=row["subscriber_id"] if with_addresses else None,
        email=row["email"] if with_addresses else None,
        name=row["name"] if with_addresses else None,
    )


async def _rows(
    db: Database, issue_id: int, status: Status, after: int, limit: int
) -> list[Record]:
    if status == "deferred":
        return await db.fetch("delivery_record_waiting_page", issue_id, after, limit)
    return await db.fetch("delivery_record_page", issue_id, status, after, limit)


async def page(
    db: Database,
    issue_id: int,
    status: str,
    *,
    after: int = 0,
    limit: int = 100,
    with_addresses: bool,
) -> DeliveryPage:
    """Counts per reason, and (``with_addresses``) one keyset page of the deliveries."""
    wanted = _check_status(status)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    reasons = await reason_counts(db, issue_id, wanted)
    items: list[DeliveryEntry] | None = None
    next_after: int | None = None
    if with_addresses:
        rows = await _rows(db, issue_id, wanted, after, limit)
        items = [_entry(row, True) for row in rows]
        next_after = rows[-1]["id"] if len(rows) == limit else None
    return DeliveryPage(
        issue_id=issue_id,
        status=wanted,
        total=sum(r.count for r in reasons),
        resendable=sum(r.resend_would_take for r in reasons),
        reasons=reasons,
        items=items,
        next_after=next_after,
    )


async def entries(
    db: Database, issue_id: int, statuses: tuple[Status, ...], *, batch: int = 1000
) -> AsyncIterator[list[DeliveryEntry]]:
    """Every delivery of ``statuses``, with addresses, in pages (the CSV export)."""
    await require_issue(db, issue_id)
    for status in statuses:
        after = 0
        while True:
            rows = await _rows(db, issue_id, status, after, batch)
            if not rows:
                break
            yield [_entry(row, True) for row in rows]
            if len(rows) < batch:
                break
            after = rows[-1]["id"]


def statuses(status: str | None) -> tuple[Status, ...]:
    """One status, or all four when none is given (the export)."""
    return STATUSES if status is None else (_check_status(status),)
