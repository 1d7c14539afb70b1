"""The delivery record: which residents did not get an issue, and why, in words.

Each delivery row carries a reason code, set by the statement that made it
final or put it back to wait (the codes are listed in
``sql/migrations/0015_engagement.sql``). Here a code, the SMTP reply code and
the enhanced status code (RFC 3463) stored beside it, read by
``core/replies.py``, become what ops reads:
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

from newsletter.core import replies
from newsletter.core.db import Database, Record
from newsletter.core.errors import InvalidInput
from newsletter.core.records import check_id, missing
from newsletter.ops import words

Status = Literal["failed", "bounced", "deferred", "skipped"]
STATUSES: tuple[Status, ...] = ("failed", "bounced", "deferred", "skipped")
MAX_PAGE = 500

# Failed for reasons that were not the recipient's: our relay unreachable or
# refusing us past the maximum age, or refusing our own sender address. Only
# these are ever sent again (editorial.issues.resend).
RESENDABLE = ("server_trouble", "sender_refused")


@dataclass(frozen=True, slots=True)
class Why:
    code: str  # a key of words.DELIVERY_REASON
    words: str
    resendable: bool


def explain(status: str, reason: str | None, smtp_code: int | None, enhanced: str | None) -> Why:
    """The words for one delivery (or a group with the same status, reason and codes)."""
    reply = replies.stored(smtp_code, enhanced)
    code: str
    if status in ("queued", "sending", "deferred"):
        code = "waiting_relay" if reason == "server_trouble" else "waiting_retry"
    elif status == "bounced":
        code = "bounced_unknown" if reason == "bounce_hard" else "bounced_soft"
    elif status == "skipped":
        code = reason if reason in words.DELIVERY_REASON else "unknown"
    elif reason == "refused":
        code = reply.refusal
    elif reason == "retries_exhausted":
        code = "mailbox_full" if reply.mailbox_full else "temporary_refusals"
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
    return Why(code, words.DELIVERY_REASON[code], status == "failed" and reason in RESENDABLE)


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
    detail: str | None  # the SMTP reply as the server gave it, addresses masked
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
    raise InvalidInput.one_of("status", STATUSES)


async def require_issue(db: Database, issue_id: int) -> Record:
    """The issue's id, status and round; NotFound if there is no such issue."""
    check_id(issue_id, "issue")
    row = await db.fetchrow("delivery_record_issue", issue_id)
    if row is None:
        raise missing("issue", issue_id)
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
        raise InvalidInput.out_of_range("limit", 1, MAX_PAGE)
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
