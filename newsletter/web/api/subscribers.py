"""``/api/v1/subscribers``: list/search, get, CSV import and export, erasure.

Who may see what: editors see counts (``/counts``) and nothing personal;
everything that shows a person (list, search, one subscriber with their
consent history, export) and every change (import, erase) needs the admin
role. Every read of personal data is in the access log
(:mod:`newsletter.ops.access_log`, read back at ``/api/v1/access-log``);
every change is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import IO, Annotated, Any

from litestar import Request, Router, delete, get, post
from litestar.exceptions import ClientException
from litestar.params import FromQuery, QueryParameter
from litestar.response import Stream

from newsletter.audience import lifecycle, personal_data, roster
from newsletter.core.db import Record
from newsletter.core.errors import InvalidInput
from newsletter.core.i18n import N_
from newsletter.core.kinds import SUBSCRIBER_STATUSES
from newsletter.web.api.auth import SECURITY, provide_actor, requires
from newsletter.web.http import uploads
from newsletter.web.http.deps import DB, Config, Who
from newsletter.web.http.forms import client_ip
from newsletter.web.http.head import asks_headers_only
from newsletter.web.http.params import AfterId, QueryText, RowId

# A million rows of "email,name,date,source" is ~70 MB; leave headroom.
IMPORT_BODY_LIMIT = 256 * 1024 * 1024


def _reader(request: Request[Any, Any, Any], actor: Who) -> personal_data.Reader:
    return personal_data.Reader(actor, client_ip(request))


def _subscriber(row: Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "email": row["email"],
        "name": row["name"],
        "status": row["status"],
        "source": row["source"],
        "created_at": row["created_at"],
        "confirmed_at": row["confirmed_at"],
        "unsubscribed_at": row["unsubscribed_at"],
        "last_consent_at": row["last_consent_at"],
        "reconfirm_sent_at": row["reconfirm_sent_at"],
    }


@get("/counts", guards=[requires("editor")], summary="How many subscribers, by status")
async def count_subscribers(db: DB) -> dict[str, Any]:
    """Counts only, for editors planning an issue: no person is shown."""
    rows = await db.fetch("stats_subscriber_counts")
    counts = dict.fromkeys(SUBSCRIBER_STATUSES, 0)
    counts.update({row["status"]: row["count"] for row in rows})
    return {"by_status": counts, "total": sum(counts.values())}


@get("/", guards=[requires("admin")], summary="List or search subscribers (keyset paged)")
async def list_subscribers(
    request: Request[Any, Any, Any],
    db: DB,
    actor: Who,
    after: AfterId = 0,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    status: QueryText = None,
    email_prefix: QueryText = None,
) -> dict[str, Any]:
    """Pages in id order: pass the previous answer's ``next_after`` as ``after``.
    Admin only; each page is recorded in the access log with whom it showed."""
    rows = await personal_data.page(
        db,
        _reader(request, actor),
        after=after,
        limit=limit,
        status=status,
        email_prefix=email_prefix,
    )
    return {
        "items": [_subscriber(row) for row in rows],
        "next_after": rows[-1]["id"] if len(rows) == limit else None,
    }


@get("/{subscriber_id:int}", guards=[requires("admin")], summary="One subscriber")
async def get_subscriber(
    request: Request[Any, Any, Any], db: DB, actor: Who, subscriber_id: RowId
) -> dict[str, Any]:
    """The subscriber and their consent history. Admin only; recorded in the access log."""
    found = await personal_data.person(db, _reader(request, actor), subscriber_id)
    row = found.row
    return {
        **_subscriber(row),
        "updated_at": row["updated_at"],
        "suppressed_reason": row["suppressed_reason"],
        "soft_bounces": row["soft_bounces"],
        "consent_events": [dict(event) for event in found.consent_events],
    }


@delete(
    "/{subscriber_id:int}",
    guards=[requires("admin")],
    status_code=200,
    summary="Erase a subscriber (PIPA): personal data deleted, a salted hash keeps them out",
)
async def erase_subscriber(
    db: DB, settings: Config, actor: Who, subscriber_id: RowId
) -> dict[str, Any]:
    await lifecycle.erase(db, settings, subscriber_id=subscriber_id, actor=actor)
    return {"id": subscriber_id, "status": "erased"}


async def _spool_body(request: Request[Any, Any, Any]) -> IO[bytes]:
    """The CSV from a text/csv body or a multipart ``file`` field, streamed to
    a spooled temporary file (memory stays flat for big uploads)."""
    kind, _ = uploads.content_type(request)
    if kind == b"multipart/form-data":
        try:
            upload = await uploads.stream_multipart(request)
        except uploads.MalformedUpload as exc:
            raise ClientException(f"malformed multipart body: {exc}") from None
        if upload.filename is None:
            upload.file.close()
            raise InvalidInput(N_("multipart 본문에 'file' 필드가 없습니다."), field="file")
        return upload.file
    if kind not in (b"text/csv", b"text/plain", b"application/csv", b"application/octet-stream"):
        raise InvalidInput(
            N_("CSV를 본문(Content-Type: text/csv)이나 multipart의 'file' 필드로 보내 주세요."),
            field="file",
        )
    spool = uploads.spool()
    try:
        async for chunk in request.stream():
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


@post(
    "/import",
    guards=[requires("admin")],
    request_max_body_size=IMPORT_BODY_LIMIT,
    status_code=200,
    summary="Import a CSV (email,name,subscribed_at,source); mode=confirmed&source=... or invite",
)
async def import_subscribers(
    request: Request[Any, Any, Any],
    db: DB,
    settings: Config,
    actor: Who,
    mode: FromQuery[roster.Mode] = "confirmed",
    source: QueryText = None,
) -> dict[str, Any]:
    """UTF-8 (with or without BOM) or CP949/EUC-KR. Answers with counts and the
    line number and reason of every invalid or skipped row (first 1,000 each)."""
    if mode == "confirmed" and not (source or "").strip():
        raise InvalidInput(
            N_(
                "동의를 받은 명단을 가져오려면 ?source=...에 동의 출처(언제 어디서 어떻게 "
                "동의했는지)를 적어 주세요. 아니면 mode=invite로 가져오세요."
            ),
            field="source",
        )
    spool = await _spool_body(request)
    try:
        report = await roster.import_csv(
            db, settings, spool, mode=mode, source=source, actor=actor, now=datetime.now(UTC)
        )
    finally:
        spool.close()
    return report.as_dict()


@get(
    "/export",
    guards=[requires("admin")],
    summary="Export the roster as CSV (streamed; ?bom=1 for Excel)",
    media_type="text/csv",
)
async def export_subscribers(
    request: Request[Any, Any, Any],
    db: DB,
    settings: Config,
    actor: Who,
    bom: FromQuery[bool] = False,
    status: QueryText = None,
    reason: QueryText = None,
) -> Stream:
    """Admin only; recorded in the access log (with ``reason``, why it was
    downloaded, when given) before the first byte goes out."""
    roster.check_status(status)
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    headers = {"Content-Disposition": f'attachment; filename="subscribers-{stamp}.csv"'}
    if asks_headers_only(request):
        return Stream(iter(()), media_type="text/csv", headers=headers)
    body = await personal_data.export(
        db, settings, _reader(request, actor), status=status, reason=reason, bom=bom
    )
    return Stream(body, media_type="text/csv", headers=headers)


ROUTES = [
    Router(
        "/api/v1/subscribers",
        route_handlers=[
            count_subscribers,
            list_subscribers,
            get_subscriber,
            erase_subscriber,
            import_subscribers,
            export_subscribers,
        ],
        dependencies={"actor": provide_actor},
        security=SECURITY,
        tags=["subscribers"],
    )
]
