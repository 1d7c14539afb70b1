"""The public archive: sent issues as web pages (the mails' "웹에서 보기" link)."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from litestar import MediaType, Response, get
from litestar.params import FromPath, FromQuery, Parameter
from litestar.response import Template

from newsletter.core.errors import NotFound
from newsletter.editorial import issues
from newsletter.editorial.rendering import for_web
from newsletter.web.deps import DB, Config

PER_PAGE = 20


@get("/archive", media_type=MediaType.HTML, tags=["public"])
async def archive_list(
    db: DB, settings: Config, page: Annotated[FromQuery[int], Parameter(ge=1, le=100_000)] = 1
) -> Template:
    """Sent issues, newest first."""
    rows, total = await issues.archive_page(db, page=page, per_page=PER_PAGE)
    return Template(
        template_name="archive.html",
        context={
            "issues": rows,
            "page": page,
            "has_next": page * PER_PAGE < total,
            "tz": ZoneInfo(settings.timezone),
        },
    )


@get("/archive/{number:int}", media_type=MediaType.HTML, tags=["public"])
async def archive_issue(
    db: DB, settings: Config, number: FromPath[int]
) -> Response[str] | Template:
    """The issue as mailed, minus anything personal: no name, no unsubscribe token.
    Residents type these URLs: any number that cannot exist (0, beyond the
    integer column) gets the same friendly 404 page, checked in issues.archived."""
    try:
        row = await issues.archived(db, number)
    except NotFound:
        return Template(
            template_name="message.html",
            status_code=404,
            context={
                "heading": "뉴스레터를 찾을 수 없습니다",
                "paragraphs": ["요청하신 호의 뉴스레터가 없거나 아직 발송되지 않았습니다."],
                "link": {"href": "/archive", "label": "지난 뉴스레터 목록"},
            },
        )
    return Response(for_web(row["rendered_html"], settings), media_type=MediaType.HTML)


ROUTES = [archive_list, archive_issue]
