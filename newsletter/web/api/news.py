"""Editors' API: news items (CRUD, paged list, feed import)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, Router, delete, get, post, put
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException
from litestar.params import FromQuery, JSONBody, Parameter, QueryParameter

from newsletter.core.db import Record
from newsletter.core.errors import InvalidInput
from newsletter.core.i18n import N_
from newsletter.editorial import feeds, news
from newsletter.editorial.feeds import FeedFetchPolicy
from newsletter.web.api.auth import SECURITY, provide_actor, requires
from newsletter.web.api.preconditions import IfMatch, etag, expected_versions
from newsletter.web.http.deps import DB, Config, Who
from newsletter.web.http.params import RowId, body_text

FEED_BODY_LIMIT = feeds.FEED_MAX_BYTES + 64 * 1024  # the feed plus multipart framing

Title = Annotated[str, body_text(news.MAX_TITLE, "plain text")]
Url = Annotated[str, body_text(news.MAX_URL, "http:// or https:// only")]


class NewsItemIn(msgspec.Struct, forbid_unknown_fields=True):
    """A news item as an editor writes it. ``body`` may hold simple HTML; it is sanitised."""

    title: Title
    summary: Annotated[str, body_text(news.MAX_SUMMARY)] = ""
    body: Annotated[str, body_text(news.MAX_BODY)] = ""
    link: Url | None = None
    image_url: Url | None = None
    image_alt: (
        Annotated[
            str,
            body_text(
                news.MAX_IMAGE_ALT,
                "what the image shows (and any words in it), for readers who cannot see it; "
                "required with image_url",
            ),
        ]
        | None
    ) = None
    image_caption: (
        Annotated[str, body_text(news.MAX_IMAGE_CAPTION, "shown under the image")] | None
    ) = None
    category: Annotated[str, body_text(news.MAX_CATEGORY)] | None = None
    published_at: Annotated[
        datetime | None,
        msgspec.Meta(description="ISO 8601; without an offset it is Asia/Seoul time"),
    ] = None

    def fields(self) -> news.NewsItemFields:
        return news.NewsItemFields(
            title=self.title,
            summary=self.summary,
            body=self.body,
            link=self.link,
            image_url=self.image_url,
            category=self.category,
            published_at=self.published_at,
            image_alt=self.image_alt,
            image_caption=self.image_caption,
        )


class NewsItemOut(msgspec.Struct):
    id: int
    # News items have no workflow: once saved, an item is published, i.e.
    # ready to be placed in an issue. Stated so every created object carries
    # a status, as clients expect (SPEC).
    status: Literal["published"]
    title: str
    summary: str
    body: str
    link: str | None
    image_url: str | None
    image_alt: str | None
    image_caption: str | None
    category: str | None
    published_at: datetime
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Record) -> NewsItemOut:
        fields = {name: row[name] for name in cls.__struct_fields__ if name != "status"}
        return cls(status="published", **fields)


class NewsItemPage(msgspec.Struct):
    items: list[NewsItemOut]
    total: int
    page: int
    per_page: int


class FeedUrl(msgspec.Struct, forbid_unknown_fields=True):
    url: Url


class FeedError(msgspec.Struct):
    entry: int
    reason: str


class FeedImportOut(msgspec.Struct):
    inserted: int
    duplicates: int
    ids: list[int]
    errors: list[FeedError]


@post("/news-items", summary="Create a news item")
async def create_news_item(
    db: DB, settings: Config, actor: Who, data: JSONBody[NewsItemIn]
) -> NewsItemOut:
    return NewsItemOut.of(await news.create(db, settings, actor, data.fields()))


@get("/news-items", summary="List news items, newest first")
async def list_news_items(
    db: DB,
    settings: Config,
    page: Annotated[int, QueryParameter(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, QueryParameter(ge=1, le=news.MAX_PAGE_SIZE)] = 20,
    published_from: Annotated[
        FromQuery[datetime | None], Parameter(description="inclusive; naive = Asia/Seoul")
    ] = None,
    published_to: Annotated[
        FromQuery[datetime | None], Parameter(description="inclusive; naive = Asia/Seoul")
    ] = None,
) -> NewsItemPage:
    result = await news.list_items(
        db,
        settings,
        page=page,
        per_page=per_page,
        published_from=published_from,
        published_to=published_to,
    )
    return NewsItemPage(
        items=[NewsItemOut.of(r) for r in result.rows],
        total=result.total,
        page=result.page,
        per_page=result.per_page,
    )


@get("/news-items/{item_id:int}", summary="Get one news item")
async def get_news_item(db: DB, item_id: RowId) -> Response[NewsItemOut]:
    """The `ETag` names this version: send it back as `If-Match` with a PUT."""
    row = await news.get(db, item_id)
    return Response(NewsItemOut.of(row), headers=etag(row))


@put("/news-items/{item_id:int}", summary="Replace a news item")
async def update_news_item(
    db: DB,
    settings: Config,
    actor: Who,
    item_id: RowId,
    data: JSONBody[NewsItemIn],
    if_match: IfMatch = None,
) -> Response[NewsItemOut]:
    """Replaces every field (send the whole item, as returned by GET, with your changes).
    With `If-Match` (the `ETag` of your GET), a version someone else changed
    meanwhile gets 412 (who and when in `detail`) and nothing changes."""
    row = await news.replace(
        db, settings, actor, item_id, data.fields(), expected=expected_versions(if_match)
    )
    return Response(NewsItemOut.of(row), headers=etag(row))


@delete("/news-items/{item_id:int}", summary="Delete a news item")
async def delete_news_item(db: DB, actor: Who, item_id: RowId) -> None:
    """Refused (409) while an unsent issue still lists the item."""
    await news.delete(db, actor, item_id)


async def _feed_bytes(request: Request[Any, Any, Any], feed_policy: FeedFetchPolicy) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            payload = msgspec.json.decode(await request.body(), type=FeedUrl)
        except msgspec.ValidationError as exc:
            raise InvalidInput(
                N_("JSON 본문은 url 하나를 담은 객체여야 합니다 (%(detail)s)."),
                field="url",
                detail=str(exc),
            ) from None
        except msgspec.DecodeError:
            raise ClientException("request body is not valid JSON") from None
        return await feeds.fetch_feed(payload.url, feed_policy)
    if content_type == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput(N_("피드를 multipart의 'file' 필드로 보내 주세요."), field="file")
        data: bytes = await upload.read(feeds.FEED_MAX_BYTES + 1)
        if len(data) > feeds.FEED_MAX_BYTES:
            raise InvalidInput(N_("피드 파일이 너무 큽니다 (5 MB까지)."), field="file")
        return data
    return await request.body()


@post(
    "/news-items/import-feed",
    summary="Import news items from an RSS/Atom feed",
    request_max_body_size=FEED_BODY_LIMIT,
    status_code=200,
)
async def import_feed(
    request: Request[Any, Any, Any], db: DB, settings: Config, actor: Who
) -> FeedImportOut:
    """Three ways to hand over the feed:

    * `Content-Type: application/json` with `{"url": "https://www.gimpo.go.kr/.../rss"}`
      (http/https to public addresses only, redirects re-checked, 10 s timeout, 5 MB cap;
      any failure answers "could not fetch the feed");
    * the feed document itself as the body (`application/rss+xml`, `application/xml`, ...);
    * a multipart upload in the field `file`.

    Entries whose link is already known are counted as `duplicates` and left alone.
    """
    data = await _feed_bytes(request, request.app.state.feed_policy)
    result = await feeds.import_feed(db, settings, actor, data)
    return FeedImportOut(
        inserted=result.inserted,
        duplicates=result.duplicates,
        ids=result.ids,
        errors=[FeedError(entry=e["entry"], reason=e["reason"]) for e in result.errors],
    )


ROUTES = [
    Router(
        "/api/v1",
        route_handlers=[
            create_news_item,
            list_news_items,
            get_news_item,
            update_news_item,
            delete_news_item,
            import_feed,
        ],
        guards=[requires("editor")],
        dependencies={"actor": provide_actor},
        security=SECURITY,
        tags=["news items"],
    )
]
