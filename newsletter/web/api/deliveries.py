"""An issue's delivery record and its safe resend (editor, ops or admin key).

``GET /api/v1/issues/{id}/deliveries?status=failed|bounced|deferred|skipped``
says why residents did not (yet) get an issue, in words with the SMTP code;
``.../deliveries/export`` gives the same as CSV. Addresses are personal data:
only an admin key sees them (each such read is audited); every other key gets
the counts per reason. ``POST .../resend`` sends the issue again to exactly
the deliveries that failed for reasons that were not the recipient's.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from litestar import Request, Router, get, post
from litestar.params import FromQuery, QueryParameter
from litestar.response import Stream

from newsletter.audience import personal_data
from newsletter.audience.roster import neutralise
from newsletter.editorial import issues
from newsletter.ops import delivery_record
from newsletter.ops.delivery_record import DeliveryEntry, DeliveryPage, ReasonCount
from newsletter.web.api.auth import SECURITY, provide_actor, requires
from newsletter.web.api.issues import IssueOut
from newsletter.web.http.deps import DB, Config, Who
from newsletter.web.http.forms import client_ip
from newsletter.web.http.params import AfterId, RowId

RecordStatus = Literal["failed", "bounced", "deferred", "skipped"]
ADMIN_COLUMNS = (
    "delivery_id",
    "email",
    "name",
    "status",
    "reason",
    "words",
    "smtp_code",
    "detail",
    "attempts",
    "round",
    "next_attempt_at",
    "resendable",
)
COUNT_COLUMNS = ("status", "reason", "words", "smtp_code", "count", "resendable")


class ResendOut(msgspec.Struct):
    issue: IssueOut
    round: int
    requeued: int


@get("/issues/{issue_id:int}/deliveries", summary="Who did not get an issue, and why")
async def list_deliveries(
    request: Request[Any, Any, Any],
    db: DB,
    actor: Who,
    issue_id: RowId,
    status: FromQuery[RecordStatus] = "failed",
    after: AfterId = 0,
    limit: Annotated[int, QueryParameter(ge=1, le=delivery_record.MAX_PAGE)] = 100,
) -> DeliveryPage:
    """Counts per reason (`reasons`: code, words, SMTP code, count, resendable)
    for one status. An admin key also gets the deliveries themselves (`items`,
    with address, name and the server's reply), keyset-paged: pass
    `next_after` as `after`. Other keys get `items: null`."""
    if actor.role == "admin":
        reader = personal_data.Reader(actor, client_ip(request))
        return await personal_data.deliveries(
            db, reader, issue_id, status, after=after, limit=limit
        )
    return await delivery_record.page(
        db, issue_id, status, after=after, limit=limit, with_addresses=False
    )


def _csv(rows: list[tuple[Any, ...]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue().encode()


def _admin_row(entry: DeliveryEntry, zone: ZoneInfo) -> tuple[Any, ...]:
    return (
        entry.delivery_id,
        neutralise(entry.email or ""),
        neutralise(entry.name or ""),
        entry.status,
        entry.reason,
        entry.words,
        entry.smtp_code if entry.smtp_code is not None else "",
        neutralise(entry.detail or ""),
        entry.attempts,
        entry.round,
        entry.next_attempt_at.astimezone(zone).isoformat(timespec="seconds")
        if entry.next_attempt_at
        else "",
        "yes" if entry.resendable else "no",
    )


def _count_row(status: str, count: ReasonCount) -> tuple[Any, ...]:
    return (
        status,
        count.reason,
        count.words,
        count.smtp_code if count.smtp_code is not None else "",
        count.count,
        "yes" if count.resendable else "no",
    )


@get(
    "/issues/{issue_id:int}/deliveries/export",
    summary="The delivery record as CSV (all four statuses unless ?status=)",
    media_type="text/csv; charset=utf-8",
)
async def export_deliveries(
    request: Request[Any, Any, Any],
    db: DB,
    settings: Config,
    actor: Who,
    issue_id: RowId,
    status: FromQuery[RecordStatus | None] = None,
    bom: FromQuery[bool] = False,
) -> Stream:
    """Admin key: one line per delivery with address, reason in words and SMTP
    code (times in the city's zone). Other keys: one line per reason with its
    count. `?bom=1` adds a byte-order mark for Excel."""
    wanted = delivery_record.statuses(status)
    admin = actor.role == "admin"
    zone = ZoneInfo(settings.timezone)
    if admin:
        # 404 before streaming starts; the read is on record before the first byte.
        batches = await personal_data.delivery_export(
            db, personal_data.Reader(actor, client_ip(request)), issue_id, status
        )
    else:
        counts = [(s, await delivery_record.reason_counts(db, issue_id, s)) for s in wanted]

    async def body() -> AsyncIterator[bytes]:
        yield (codecs.BOM_UTF8 if bom else b"") + _csv([ADMIN_COLUMNS if admin else COUNT_COLUMNS])
        if not admin:
            yield _csv([_count_row(s, c) for s, group in counts for c in group])
            return
        async for batch in batches:
            yield _csv([_admin_row(entry, zone) for entry in batch])

    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return Stream(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="issue-{issue_id}-deliveries-{stamp}.csv"'
        },
    )


@post(
    "/issues/{issue_id:int}/resend",
    summary="Send again what failed through no fault of the recipient",
    status_code=202,
)
async def resend_issue(db: DB, actor: Who, issue_id: RowId) -> ResendOut:
    """Re-queues, once, the deliveries of a sent issue that failed because of
    server trouble past its maximum age or our relay refusing our sender —
    never a bounced, suppressed, unsubscribed, erased or already-sent
    recipient. The issue is `sending` again (round 2, 3 …) with the same
    content. 409 while it is still sending, or when nothing qualifies; two
    calls at once re-queue the deliveries once."""
    resent = await issues.resend(db, actor, issue_id)
    return ResendOut(issue=IssueOut.of(resent.issue), round=resent.round, requeued=resent.requeued)


ROUTES = [
    Router(
        "/api/v1",
        route_handlers=[list_deliveries, export_deliveries, resend_issue],
        guards=[requires("editor", "ops")],
        dependencies={"actor": provide_actor},
        security=SECURITY,
        tags=["deliveries"],
    )
]
