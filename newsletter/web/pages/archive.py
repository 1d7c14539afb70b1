"""The public archive: sent issues as web pages (the mails' "웹에서 보기" link),
and an Atom feed of them for people and the city homepage to follow."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import MediaType, Request, Response, get
from litestar.params import FromPath, FromQuery, Parameter
from litestar.response import Template

from newsletter.core.clock import city_zone, korean_date
from newsletter.core.errors import NotFound
from newsletter.core.settings import Settings
from newsletter.editorial import issues
from newsletter.editorial.rendering import for_web
from newsletter.web.http.deps import DB, Config
from newsletter.web.pages import shell as pages
from newsletter.web.pages.shell import context, message, reader

PER_PAGE = 20
FEED_ENTRIES = 20


def _date_text(settings: Settings, language: str) -> Any:
    zone = city_zone(settings)

    def date(moment: datetime) -> str:
        if language == "en":
            return f"{moment.astimezone(zone):%-d %B %Y}"
        return korean_date(moment, zone)

    return date


@get("/archive", media_type=MediaType.HTML, tags=["public"])
async def archive_list(
    request: Request[Any, Any, Any],
    db: DB,
    settings: Config,
    page: Annotated[FromQuery[int], Parameter(ge=1, le=100_000)] = 1,
) -> Template:
    """Sent issues, newest first."""
    rows, total = await issues.archive_page(db, page=page, per_page=PER_PAGE)
    return pages.page(
        request,
        "archive.html",
        issues=rows,
        page=page,
        has_next=page * PER_PAGE < total,
        tz=city_zone(settings),
        date=_date_text(settings, reader(request).language),
    )


@get("/archive/{number:int}", media_type=MediaType.HTML, tags=["public"])
async def archive_issue(
    request: Request[Any, Any, Any], db: DB, settings: Config, number: FromPath[int]
) -> Response[str] | Template:
    """The issue as a web page, minus anything personal (no name, no unsubscribe
    token). Residents type these URLs: any number that cannot exist (0, beyond
    the integer column) gets the same friendly 404 page, checked in issues.archived."""
    who = reader(request)
    _ = who.gettext
    try:
        row = await issues.archived(db, number)
    except NotFound:
        return message(
            request,
            _("뉴스레터를 찾을 수 없습니다"),
            _("요청하신 호의 뉴스레터가 없거나 아직 발송되지 않았습니다."),
            status=404,
            action={"href": who.link("/archive"), "label": _("지난 뉴스레터 목록")},
        )
    content = row["web_content"]
    if content is None:  # sent before the archive had pages of its own
        return Response(for_web(row["rendered_html"], settings), media_type=MediaType.HTML)
    started = row["started_at"]
    return pages.page(
        request,
        "archive_issue.html",
        issue={"number": row["number"], **content},
        # The issue is in the editors' language whatever the page around it is in.
        content_lang="ko",
        sent_on=_date_text(settings, who.language)(started) if started else None,
        sent_on_iso=started.astimezone(city_zone(settings)).date().isoformat() if started else None,
    )


@get("/archive/feed.xml", include_in_schema=False)
async def archive_feed(request: Request[Any, Any, Any], db: DB, settings: Config) -> Response[str]:
    """Atom: the latest sent issues, each linking to its archive page."""
    rows, _total = await issues.archive_page(db, page=1, per_page=FEED_ENTRIES)
    template = request.app.template_engine.get_template("feed.xml")  # type: ignore[union-attr]
    body = template.render(
        **context(
            request,
            entries=rows,
            updated=max((r["finished_at"] or r["started_at"] for r in rows), default=None),
            now=datetime.now(UTC),
        )
    )
    return Response(body, media_type="application/atom+xml; charset=utf-8")


ROUTES = [archive_list, archive_issue, archive_feed]
