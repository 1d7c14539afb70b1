"""Subscribers in the console (admins only): search, one person's record and
consent history, erasure with confirmation, CSV import in the background
with a progress bar and a line-by-line report, and export.

Residents' personal data is read through :mod:`newsletter.audience.personal_data`,
which records every read (who, when, from which address, what, whose).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from litestar import MediaType, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Stream, Template

from newsletter.audience import import_jobs, lifecycle, personal_data, roster
from newsletter.core.errors import InvalidInput
from newsletter.core.i18n import N_
from newsletter.core.kinds import SUBSCRIBER_STATUSES
from newsletter.web.console import privacy
from newsletter.web.console.fields import text
from newsletter.web.console.gate import CSRF_FIELD, csrf_matches, refuse_csrf, session_of
from newsletter.web.console.render import done, render
from newsletter.web.console.roles import ADMIN
from newsletter.web.http import uploads
from newsletter.web.http.deps import DB, Config
from newsletter.web.http.head import asks_headers_only
from newsletter.web.http.params import AfterId, RowId

PAGE = 50
IMPORT_BODY_LIMIT = 256 * 1024 * 1024


@get("/subscribers", opt=ADMIN, media_type=MediaType.HTML)
async def subscriber_list(request: Request[Any, Any, Any], db: DB, after: AfterId = 0) -> Template:
    params = request.query_params
    query = text(params, "q", 254).strip()[:254]
    status = params.get("status") or None
    status = status if status in SUBSCRIBER_STATUSES else None
    rows = await personal_data.page(
        db,
        privacy.reader(request),
        after=after,
        limit=PAGE,
        status=status,
        email_prefix=query or None,
    )
    return render(
        request,
        "console/subscribers.html",
        title="구독자",
        rows=rows,
        q=query,
        filter_status=status,
        statuses=SUBSCRIBER_STATUSES,
        next_after=rows[-1]["id"] if len(rows) == PAGE else None,
        after=after,
        jobs=await import_jobs.recent(db, 5),
    )


@get("/subscribers/{subscriber_id:int}", opt=ADMIN, media_type=MediaType.HTML)
async def subscriber_page(
    request: Request[Any, Any, Any], db: DB, subscriber_id: RowId
) -> Template:
    found = await personal_data.person(db, privacy.reader(request), subscriber_id)
    return render(
        request,
        "console/subscriber.html",
        title=f"구독자 #{subscriber_id}",
        person=found.row,
        events=found.consent_events,
    )


@post("/subscribers/{subscriber_id:int}/erase", opt=ADMIN)
async def subscriber_erase(
    request: Request[Any, Any, Any], db: DB, settings: Config, subscriber_id: RowId
) -> Response[Any]:
    form = await request.form()
    typed = text(form, "typed", 320).strip()
    errors: dict[str, str] = {}
    if text(form, "confirmed", 5) == "yes":
        try:
            await lifecycle.erase(
                db,
                settings,
                subscriber_id=subscriber_id,
                actor=session_of(request).user.actor,
                typed=typed,
            )
        except lifecycle.NotTheAddress:
            errors["typed"] = "주소가 맞지 않습니다. 지울 주소를 그대로 입력해 주세요."
        else:
            return await done(
                request,
                "/admin/subscribers",
                f"구독자 #{subscriber_id}의 개인정보를 지웠습니다. 다시 받지 않도록 "
                "암호화한 값만 남습니다.",
            )
    # The page shows the address it asks about: that is a read, on record.
    row = await personal_data.erasure_preview(db, privacy.reader(request), subscriber_id)
    return render(
        request,
        "console/confirm.html",
        status=422 if errors else 200,
        title="구독자 삭제",
        errors=errors,
        heading="이 사람의 개인정보를 지울까요?",
        paragraphs=[
            f"구독자 #{subscriber_id}: {row['email']}",
            "이메일 주소, 이름, 수신 동의 기록이 모두 지워지고 되돌릴 수 없습니다 "
            "(개인정보 보호법의 삭제 요구).",
            "다시는 메일을 받지 않도록, 주소를 알아볼 수 없게 만든 값(해시)만 남깁니다.",
        ],
        typed={"label": "확인을 위해 지울 이메일 주소를 입력하세요", "hint": row["email"]},
        action=f"/admin/subscribers/{subscriber_id}/erase",
        button="개인정보 지우기",
        danger=True,
        back=f"/admin/subscribers/{subscriber_id}",
    )


# --- import -----------------------------------------------------------------------


@get("/subscribers/import", opt=ADMIN, media_type=MediaType.HTML)
async def import_form(request: Request[Any, Any, Any]) -> Template:
    return render(
        request,
        "console/subscriber_import.html",
        title="구독자 명단 가져오기",
        values={"mode": "confirmed", "source": ""},
    )


@post(
    "/subscribers/import",
    opt={**ADMIN, "csrf": "stream"},
    request_max_body_size=IMPORT_BODY_LIMIT,
)
async def import_start(request: Request[Any, Any, Any], db: DB, settings: Config) -> Response[Any]:
    try:
        upload = await uploads.stream_multipart(request)
    except uploads.MalformedUpload:
        raise InvalidInput(
            N_("올린 파일을 읽을 수 없습니다. 다시 올려 주세요."), field="file"
        ) from None
    fields, spool = upload.fields, upload.file
    filename = (upload.filename or "") if upload.size else ""
    if not csrf_matches(request, settings, fields.get(CSRF_FIELD)):
        spool.close()
        raise refuse_csrf()
    mode = fields.get("mode", "confirmed")
    source = fields.get("source", "").strip()
    values = {"mode": mode, "source": source}
    error: tuple[str, str] | None = None
    if mode not in roster.MODES:
        error = ("mode", "가져오는 방식을 골라 주세요.")
    elif not filename:
        error = ("file", "CSV 파일을 골라 주세요.")
    elif mode == "confirmed" and not source:
        error = ("source", "동의 출처를 적어 주세요 (언제, 어디서, 어떻게 동의했는지).")
    if error is not None:
        spool.close()
        return render(
            request,
            "console/subscriber_import.html",
            status=422,
            title="구독자 명단 가져오기",
            errors={error[0]: error[1]},
            values=values,
        )
    session = session_of(request)
    spool.seek(0, 2)
    total = spool.tell()
    spool.seek(0)
    job_id = await import_jobs.create(
        db,
        user_id=session.user.id,
        mode=mode,
        source=source or None,
        filename=filename,
        total_bytes=total,
    )
    task = asyncio.create_task(
        import_jobs.run(
            db, settings, job_id, spool, mode=mode, source=source or None, actor=session.user.actor
        )
    )
    running: set[asyncio.Task[None]] = request.app.state.setdefault("import_tasks", set())
    running.add(task)
    task.add_done_callback(running.discard)
    return Redirect(path=f"/admin/subscribers/import/{job_id}", status_code=303)


def _job_context(job: Any) -> dict[str, Any]:
    report = job["report"] or {}
    total = job["total_bytes"] or 0
    percent = (
        100.0
        if job["status"] == "done"
        else round(100 * job["done_bytes"] / total, 1)
        if total
        else 0.0
    )
    return {
        "job": job,
        "failure": job["error"],
        "report": report,
        "percent": percent,
        "errors_list": [
            {"line": e["line"], "reason": e["reason"]} for e in report.get("errors", [])
        ],
        "skipped_list": [
            {"line": e["line"], "reason": e["reason"]} for e in report.get("skipped_rows", [])
        ],
    }


@get("/subscribers/import/{job_id:int}", opt=ADMIN, media_type=MediaType.HTML)
async def import_page(request: Request[Any, Any, Any], db: DB, job_id: FromPath[int]) -> Template:
    job = await import_jobs.get(db, job_id)
    return render(
        request, "console/import_job.html", title="명단 가져오기 진행", **_job_context(job)
    )


@get("/subscribers/import/{job_id:int}/progress", opt=ADMIN, media_type=MediaType.HTML)
async def import_progress(
    request: Request[Any, Any, Any], db: DB, job_id: FromPath[int]
) -> Template:
    job = await import_jobs.get(db, job_id)
    running = job["status"] == "running" and not job["stalled"]
    # 286: htmx stops polling once the import has ended.
    return render(
        request,
        "console/import_progress.html",
        status=200 if running else 286,
        title="명단 가져오기 진행",
        **_job_context(job),
    )


# --- export -----------------------------------------------------------------------


@get("/subscribers/export", opt=ADMIN, media_type=MediaType.HTML)
async def export_form(request: Request[Any, Any, Any]) -> Template:
    return render(
        request,
        "console/subscriber_export.html",
        title="구독자 명단 내려받기",
        statuses=SUBSCRIBER_STATUSES,
    )


@get("/subscribers/export.csv", opt=ADMIN)
async def export_file(request: Request[Any, Any, Any], db: DB, settings: Config) -> Stream:
    status = request.query_params.get("status") or None
    status = status if status in SUBSCRIBER_STATUSES else None
    bom = request.query_params.get("bom") == "1"
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    headers = {
        "Content-Disposition": f'attachment; filename="subscribers-{stamp}.csv"',
        "Cache-Control": "no-store",
    }
    if asks_headers_only(request):
        return Stream(iter(()), media_type="text/csv; charset=utf-8", headers=headers)
    body = await personal_data.export(db, settings, privacy.reader(request), status=status, bom=bom)
    return Stream(body, media_type="text/csv; charset=utf-8", headers=headers)


ROUTES = [
    subscriber_list,
    subscriber_page,
    subscriber_erase,
    import_form,
    import_start,
    import_page,
    import_progress,
    export_form,
    export_file,
]
