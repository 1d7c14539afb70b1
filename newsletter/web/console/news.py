"""News items in the console: list and search, write and edit (with image
upload and the same sanitising as the API), delete, and RSS/Atom import with
a preview of what it will add."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from litestar import MediaType, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Template

from newsletter.core.db import Database, Record
from newsletter.core.errors import Conflict, DomainError, InvalidInput, Stale
from newsletter.core.i18n import N_
from newsletter.core.settings import Settings
from newsletter.editorial import feeds, media, news, versions
from newsletter.ops.audit import Actor
from newsletter.web.console.fields import (
    body_html,
    checked,
    local_date,
    local_datetime,
    text,
    upload,
)
from newsletter.web.console.gate import session_of
from newsletter.web.console.korean import explain
from newsletter.web.console.render import done, message_page, render
from newsletter.web.console.roles import EDITOR
from newsletter.web.http.deps import DB, Config
from newsletter.web.http.params import PageNumber, form_id

PER_PAGE = 20
ITEM_BODY_LIMIT = media.MAX_UPLOAD_BYTES + 512 * 1024  # the image plus the text fields
FEED_BODY_LIMIT = feeds.FEED_MAX_BYTES + 64 * 1024
FEED_OUTCOME = {"new": "새 항목", "duplicate": "이미 있음", "invalid": "가져올 수 없음"}


def _form_values(row: Record | None, settings: Settings) -> dict[str, Any]:
    if row is None:
        return {
            "title": "",
            "summary": "",
            "body": "",
            "link": "",
            "image_url": "",
            "image_alt": "",
            "image_caption": "",
            "category": "",
            "published_at": "",
            "version": "",
        }
    local = row["published_at"].astimezone(ZoneInfo(settings.timezone))
    return {
        "title": row["title"],
        "summary": row["summary"],
        "body": row["body"],
        "link": row["link"] or "",
        "image_url": row["image_url"] or "",
        "image_alt": row["image_alt"] or "",
        "image_caption": row["image_caption"] or "",
        "category": row["category"] or "",
        "published_at": local.strftime("%Y-%m-%dT%H:%M"),
        # The version this form was loaded with: a save over someone else's
        # newer one is refused, never silent (editorial/versions.py).
        "version": versions.version_of(row),
    }


@get("/news", opt=EDITOR, media_type=MediaType.HTML)
async def news_list(
    request: Request[Any, Any, Any], db: DB, settings: Config, page: PageNumber = 1
) -> Template:
    params = request.query_params
    query = text(params, "q", 100)[:100]
    errors: dict[str, str] = {}
    zone = ZoneInfo(settings.timezone)
    start = end = None
    try:
        first = local_date(params.get("from", ""), "from")
        start = datetime.combine(first, time.min, zone) if first else None
    except InvalidInput as exc:
        errors["from"] = explain(exc)
    try:
        last = local_date(params.get("to", ""), "to")
        end = datetime.combine(last + timedelta(days=1), time.min, zone) if last else None
    except InvalidInput as exc:
        errors["to"] = explain(exc)
    result = await news.list_items(
        db,
        settings,
        page=page,
        per_page=PER_PAGE,
        published_from=start,
        published_to=end - timedelta(microseconds=1) if end else None,
        text=query,
    )
    return render(
        request,
        "console/news_list.html",
        status=422 if errors else 200,
        title="뉴스 항목",
        errors=errors,
        items=result.rows,
        total=result.total,
        page=page,
        has_next=page * PER_PAGE < result.total,
        q=query,
        date_from=params.get("from", "")[:10],
        date_to=params.get("to", "")[:10],
    )


def _editor_page(
    request: Request[Any, Any, Any],
    *,
    item_id: int | None,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
    preview: str | None = None,
    saved: Record | None = None,
) -> Template:
    return render(
        request,
        "console/news_form.html",
        status=status,
        title="뉴스 항목 고치기" if item_id else "새 뉴스 항목",
        errors=errors,
        item_id=item_id,
        values=values,
        body_preview=preview,
        saved=saved,
    )


@get("/news/new", opt=EDITOR, media_type=MediaType.HTML)
async def news_new(request: Request[Any, Any, Any], settings: Config) -> Template:
    return _editor_page(request, item_id=None, values=_form_values(None, settings))


@get("/news/{item_id:int}", opt=EDITOR, media_type=MediaType.HTML)
async def news_edit(
    request: Request[Any, Any, Any], db: DB, settings: Config, item_id: FromPath[int]
) -> Template:
    row = await news.get(db, item_id)
    values = _form_values(row, settings)
    return _editor_page(request, item_id=item_id, values=values, preview=values["body"] or None)


def _posted_values(form: Any) -> dict[str, str]:
    """The news form's fields as typed, each bounded (they go back into the form)."""
    return {
        "title": text(form, "title", news.MAX_TITLE),
        "summary": text(form, "summary", news.MAX_SUMMARY),
        "body": text(form, "body", news.MAX_BODY),
        "link": text(form, "link", news.MAX_URL).strip(),
        "image_url": text(form, "image_url", news.MAX_URL).strip(),
        "image_alt": text(form, "image_alt", news.MAX_IMAGE_ALT),
        "image_caption": text(form, "image_caption", news.MAX_IMAGE_CAPTION),
        "category": text(form, "category", news.MAX_CATEGORY),
        "published_at": text(form, "published_at", 40),
        "version": text(form, "version", 64).strip(),
    }


async def _store_upload(
    db: Database,
    settings: Settings,
    actor: Actor,
    form: Any,
    values: dict[str, str],
    errors: dict[str, str],
) -> None:
    """An uploaded picture, stored: its address into the form, or why not into errors."""
    image = upload(form, "image")
    if image is None:
        return
    try:
        stored = await media.store(db, actor, await image.read(), filename=image.filename)
        values["image_url"] = stored.url(settings)
    except InvalidInput as exc:
        errors["image"] = explain(exc)


async def _save(
    request: Request[Any, Any, Any], db: Database, settings: Settings, item_id: int | None
) -> Response[Any]:
    session = session_of(request)
    form = await request.form()
    values = _posted_values(form)
    errors: dict[str, str] = {}
    saved: Record | None = None
    body = body_html(values["body"])
    if text(form, "action", 20) == "preview":
        shown = news.clean_body(body)
        if shown.unusable_links:
            errors["body"] = explain(news.unusable_links(shown.unusable_links))
        return _editor_page(
            request,
            item_id=item_id,
            values=values,
            errors=errors,
            status=422 if errors else 200,
            preview=shown.html or None,
        )
    try:
        published = local_datetime(values["published_at"], "published_at")
    except InvalidInput as exc:
        errors["published_at"] = explain(exc)
        published = None
    if checked(form, "remove_image"):
        values["image_url"] = ""
    if not errors:
        await _store_upload(db, settings, session.user.actor, form, values, errors)
    fields = news.NewsItemFields(
        title=values["title"],
        summary=values["summary"],
        body=body,
        link=values["link"] or None,
        image_url=values["image_url"] or None,
        category=values["category"] or None,
        published_at=published,
        image_alt=values["image_alt"],
        image_caption=values["image_caption"],
    )
    if not errors:
        try:
            if item_id is None:
                row = await news.create(db, settings, session.user.actor, fields)
            else:
                row = await news.replace(
                    db,
                    settings,
                    session.user.actor,
                    item_id,
                    fields,
                    expected={values["version"]} if values["version"] else None,
                )
        except InvalidInput as exc:
            errors[exc.field or "title"] = explain(exc)
        except Stale as exc:
            # The editor's text stays in the form; saving again now is a
            # choice made after seeing the other person's version below.
            errors["version"] = explain(exc)
            values["version"] = exc.current
            saved = await news.get(db, item_id) if item_id is not None else None
        except Conflict as exc:
            errors["link"] = explain(exc)
        else:
            saved_id = row["id"]
            return await done(request, f"/admin/news/{saved_id}", "뉴스 항목을 저장했습니다.")
    return _editor_page(
        request,
        item_id=item_id,
        values=values,
        errors=errors,
        status=412 if "version" in errors else 422,
        preview=news.clean_body(body).html or None,
        saved=saved,
    )


@post("/news", opt=EDITOR, request_max_body_size=ITEM_BODY_LIMIT)
async def news_create(request: Request[Any, Any, Any], db: DB, settings: Config) -> Response[Any]:
    return await _save(request, db, settings, None)


@post("/news/{item_id:int}", opt=EDITOR, request_max_body_size=ITEM_BODY_LIMIT)
async def news_update(
    request: Request[Any, Any, Any], db: DB, settings: Config, item_id: FromPath[int]
) -> Response[Any]:
    await news.get(db, item_id)  # a 404 page for an item deleted meanwhile
    return await _save(request, db, settings, item_id)


@post("/news/body-preview", opt=EDITOR, media_type=MediaType.HTML)
async def body_preview(request: Request[Any, Any, Any]) -> Template:
    """The body exactly as it will be stored (sanitised), for the editor's live preview."""
    form = await request.form()
    cleaned = news.clean_body(body_html(text(form, "body", news.MAX_BODY)))
    problem = (
        explain(news.unusable_links(cleaned.unusable_links)) if cleaned.unusable_links else None
    )
    return Template(
        template_name="console/body_preview.html",
        context={"body_preview": cleaned.html or None, "body_problem": problem},
    )


@post("/news/{item_id:int}/delete", opt=EDITOR)
async def news_delete(
    request: Request[Any, Any, Any], db: DB, item_id: FromPath[int]
) -> Response[Any]:
    row = await news.get(db, item_id)
    form = await request.form()
    if text(form, "confirmed", 5) != "yes":
        return render(
            request,
            "console/confirm.html",
            title="뉴스 항목 삭제",
            heading="뉴스 항목을 지울까요?",
            paragraphs=[
                f"‘{row['title']}’ 항목을 지웁니다. 되돌릴 수 없습니다.",
                "이미 발송한 호에 실린 내용은 그대로 남습니다.",
            ],
            action=f"/admin/news/{item_id}/delete",
            button="지우기",
            danger=True,
            back=f"/admin/news/{item_id}",
        )
    try:
        await news.delete(db, session_of(request).user.actor, item_id)
    except DomainError as exc:
        return message_page(
            request,
            "지울 수 없습니다",
            explain(exc),
            status=exc.status,
            back=f"/admin/news/{item_id}",
            back_label="항목으로 돌아가기",
        )
    return await done(request, "/admin/news", "뉴스 항목을 지웠습니다.")


# --- feed import ------------------------------------------------------------------


@get("/news/import", opt=EDITOR, media_type=MediaType.HTML)
async def feed_form(request: Request[Any, Any, Any]) -> Template:
    return render(request, "console/feed_import.html", title="RSS/Atom 피드 가져오기", url="")


@post("/news/import", opt=EDITOR, request_max_body_size=FEED_BODY_LIMIT)
async def feed_preview(request: Request[Any, Any, Any], db: DB, settings: Config) -> Template:
    """Fetch (or read the uploaded file), then show what the import would add."""
    session = session_of(request)
    form = await request.form()
    url = text(form, "url", news.MAX_URL).strip()
    file = upload(form, "file")
    try:
        if file is not None:
            data = await file.read(feeds.FEED_MAX_BYTES + 1)
            if len(data) > feeds.FEED_MAX_BYTES:
                raise InvalidInput(N_("피드 파일이 너무 큽니다 (5 MB까지)."), field="file")
            source = f"파일 {file.filename}"
        elif url:
            data = await feeds.fetch_feed(url, request.app.state.feed_policy)
            source = url
        else:
            raise InvalidInput(N_("피드 주소를 입력하거나 파일을 골라 주세요."), field="url")
        entries = await feeds.preview_feed(db, settings, data)
    except InvalidInput as exc:
        field = exc.field if exc.field in ("url", "file") else ("file" if file else "url")
        return render(
            request,
            "console/feed_import.html",
            status=422,
            title="RSS/Atom 피드 가져오기",
            errors={field: explain(exc)},
            url=url,
        )
    preview_id = await feeds.keep_for_preview(db, session.user.id, source, data)
    return render(
        request,
        "console/feed_import.html",
        title="가져올 항목 확인",
        url=url,
        source=source,
        preview_id=preview_id,
        entries=entries,
        outcome_words=FEED_OUTCOME,
        new_count=sum(1 for e in entries if e.outcome == "new"),
    )


@post("/news/import/{preview_id:str}", opt=EDITOR)
async def feed_import(
    request: Request[Any, Any, Any], db: DB, settings: Config, preview_id: FromPath[str]
) -> Response[Any]:
    session = session_of(request)
    form = await request.form()
    chosen = {i for i in map(form_id, form.getall("entry", [])) if i is not None}
    _, data = await feeds.kept_preview(db, session.user.id, preview_id)
    if not chosen:
        return message_page(
            request,
            "고른 항목이 없습니다",
            "가져올 항목에 하나 이상 표시한 뒤 다시 눌러 주세요.",
            status=422,
            back="/admin/news/import",
            back_label="피드 가져오기로",
        )
    result = await feeds.import_feed(db, settings, session.user.actor, data, only=chosen)
    await feeds.forget_preview(db, preview_id)
    note = f"뉴스 항목 {result.inserted}개를 가져왔습니다."
    if result.duplicates:
        note += f" 이미 있던 {result.duplicates}개는 건너뛰었습니다."
    if result.errors:
        note += f" {len(result.errors)}개는 가져올 수 없었습니다."
    return await done(request, "/admin/news", note)


ROUTES = [
    news_list,
    news_new,
    news_edit,
    news_create,
    news_update,
    body_preview,
    news_delete,
    feed_form,
    feed_preview,
    feed_import,
]
