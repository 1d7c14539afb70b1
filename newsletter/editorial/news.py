"""News items: the city news an issue is composed from.

Editors type them in or import them from the city's RSS/Atom feed
(:mod:`newsletter.editorial.feeds`). Body HTML
is sanitised with nh3 on the way in, so everything stored is safe to place in
an e-mail and the archive as is; every other field is plain text and gets
escaped when rendered.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import asyncpg
import nh3

from newsletter.core.clock import aware, city_zone
from newsletter.core.db import QUERIES, Connection, Database, Record
from newsletter.core.errors import Conflict, InvalidInput, NotFound, field_name
from newsletter.core.i18n import N_, Term
from newsletter.core.records import check_id, one
from newsletter.core.settings import Settings
from newsletter.core.text import is_fit, without_unfit
from newsletter.editorial import versions
from newsletter.editorial.rendering import NewsItemContent
from newsletter.ops.audit import Actor, record

MAX_TITLE = 200
MAX_SUMMARY = 2000
MAX_BODY = 100_000
MAX_URL = 2000
MAX_CATEGORY = 50
MAX_IMAGE_ALT = 300
MAX_IMAGE_CAPTION = 300
MAX_PAGE_SIZE = 100

# A small, mail-safe subset of HTML: text structure, links and images only.
ALLOWED_TAGS = {
    "p", "br", "strong", "b", "em", "i", "u", "s", "a", "ul", "ol", "li",
    "h2", "h3", "h4", "blockquote", "img", "hr",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


@dataclass(frozen=True)
class NewsItemFields:
    """What an editor sends to create or replace a news item (not yet validated)."""

    title: str
    summary: str = ""
    body: str = ""
    link: str | None = None
    image_url: str | None = None
    category: str | None = None
    published_at: datetime | None = None
    # Words for readers who cannot see the image (required with one), and an
    # optional line shown under it.
    image_alt: str | None = None
    image_caption: str | None = None


# --- validation -------------------------------------------------------------

TOO_LONG = N_("%(name)s은(는) %(limit)s자 이하로 써 주세요.")
NO_NEWS_ITEM = N_("#%(id)s 뉴스 항목이 없습니다. 이미 지워졌을 수 있습니다.")


def clean_text(value: str | None, name: str, limit: int, *, required: bool = False) -> str:
    """NFC text without control characters (PostgreSQL refuses NUL outright)."""
    text = unicodedata.normalize("NFC", (value or "").replace("\r\n", "\n")).strip()
    if required and not text:
        raise InvalidInput(N_("%(name)s을(를) 입력해 주세요."), field=name, name=field_name(name))
    if len(text) > limit:
        raise InvalidInput(TOO_LONG, field=name, name=field_name(name), limit=limit)
    # Non-characters (U+FFFF...) too: no mail or XML parser takes them.
    if not is_fit(text) or any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in text):
        raise InvalidInput(
            N_("%(name)s에 쓸 수 없는 제어 문자가 있습니다."), field=name, name=field_name(name)
        )
    return text


def clean_url(value: str | None, name: str) -> str | None:
    """An absolute http(s) URL, or None. Other schemes (javascript:, data:) are refused."""
    if value is None or not value.strip():
        return None
    url = value.strip()
    if len(url) > MAX_URL:
        raise InvalidInput(TOO_LONG, field=name, name=field_name(name), limit=MAX_URL)
    if not is_fit(url) or any(c.isspace() or unicodedata.category(c) == "Cc" for c in url):
        raise InvalidInput(
            N_("%(name)s에 빈칸이나 제어 문자가 있으면 안 됩니다."),
            field=name,
            name=field_name(name),
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise InvalidInput(
            N_("%(name)s이(가) 올바른 주소가 아닙니다."), field=name, name=field_name(name)
        ) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            N_("%(name)s은(는) http:// 또는 https://로 시작하는 전체 주소여야 합니다."),
            field=name,
            name=field_name(name),
        )
    return url


# What stands on its own line in a body; everything else at the top level is
# inline text that belongs in a paragraph.
BLOCK_TAGS = {"p", "ul", "ol", "li", "h2", "h3", "h4", "blockquote", "hr"}
VOID_TAGS = {"br", "img", "hr"}
_PARAGRAPH_BREAK = re.compile(r"[ \t]*\n[ \t]*\n\s*")
UNUSABLE_LINK = N_(
    "본문의 링크 %(links)s에 열 수 있는 주소가 없습니다. "
    "http:// 또는 https://로 시작하는 전체 주소를 넣거나 링크를 빼 주세요."
)


@dataclass
class _Link:
    href: str | None
    text: list[str] = field(default_factory=list)


class _BodyShape(HTMLParser):
    """Walks nh3's (well-formed) output once: inline text at the top level is
    put into ``<p>`` paragraphs, split where the editor left a blank line, and
    every link is noted with its text.

    Editors mix the two ways of writing a body: a blank line for a paragraph
    and a tag or two for bold or a link. HTML reads a blank line as one space,
    so without this the mail and the archive ran every paragraph together."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.run: list[tuple[str, str]] = []  # ("tag" | "text", html or raw text)
        self.open: list[str] = []
        self.links: list[_Link] = []
        self._open_links: list[_Link] = []

    def _in_run(self) -> bool:
        return not self.open or self.open[0] not in BLOCK_TAGS

    def _put_tag(self, markup: str) -> None:
        if self._in_run():
            self.run.append(("tag", markup))
        else:
            self.out.append(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        shown = "".join(
            f' {name}="{html.escape(value or "", quote=True)}"' for name, value in attrs
        )
        if not self.open and tag in BLOCK_TAGS:
            self.flush()
            self.out.append(f"<{tag}{shown}>")
        else:
            self._put_tag(f"<{tag}{shown}>")
        if tag == "a":
            link = _Link(dict(attrs).get("href"))
            self.links.append(link)
            self._open_links.append(link)
        if tag == "img":
            for link in self._open_links:
                link.text.append(dict(attrs).get("alt") or "")
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_TAGS or tag not in self.open:
            return
        self._put_tag(f"</{tag}>")
        while self.open and self.open.pop() != tag:
            pass
        if tag == "a" and self._open_links:
            self._open_links.pop()

    def handle_data(self, data: str) -> None:
        for link in self._open_links:
            link.text.append(data)
        if not self._in_run():
            if self.open == ["p"]:  # <p>a⏎⏎b</p>: the blank line still parts them
                data = "</p><p>".join(
                    html.escape(part, quote=False) for part in _PARAGRAPH_BREAK.split(data)
                )
            else:
                data = html.escape(data, quote=False)
            self.out.append(data)
            return
        if self.open:  # inside <b>…</b>: a paragraph cannot end here
            self.run.append(("text", data))
            return
        first, *rest = _PARAGRAPH_BREAK.split(data)
        self.run.append(("text", first))
        for part in rest:
            self.flush()
            self.run.append(("text", part))

    def flush(self) -> None:
        """The inline run so far as one paragraph (nothing if it shows nothing)."""
        run, self.run = self.run, []
        if not any(kind == "tag" or value.strip() for kind, value in run):
            return
        pieces: list[str] = []
        for index, (kind, value) in enumerate(run):
            if kind == "tag":
                pieces.append(value)
                continue
            # A line break beside a <br> is the source's layout, not a second break.
            if index == 0 or run[index - 1][1] == "<br>":
                value = value.lstrip()
            if index == len(run) - 1 or run[index + 1][1] == "<br>":
                value = value.rstrip()
            # A single line break typed in the textarea stays a line break, as
            # the console's plain-text body has always kept it.
            pieces.append("<br>".join(html.escape(line, quote=False) for line in value.split("\n")))
        inner = "".join(pieces)
        tags = (value.split()[0].strip("<>/") for kind, value in run if kind == "tag")
        if any(tag in BLOCK_TAGS for tag in tags):
            self.out.append(inner)  # a block inside an inline tag: leave it be
        else:
            self.out.append(f"<p>{inner}</p>")

    def result(self) -> str:
        self.close()
        self.flush()
        return "".join(self.out)


def usable_href(href: str | None) -> bool:
    """An address a reader's click can open: absolute http(s) with a host, or mailto."""
    if not href:
        return False
    try:
        parts = urlsplit(href)
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme == "mailto":
        return bool(parts.path.strip())
    return scheme in ("http", "https") and bool(parts.hostname)


@dataclass(frozen=True)
class CleanBody:
    html: str
    # The text of each link with no address a reader could open (in order).
    unusable_links: tuple[str, ...] = ()


def clean_body(body: str, *, base: str | None = None) -> CleanBody:
    """Keep only safe, mail-friendly HTML (nh3 / ammonia, a maintained sanitiser),
    with paragraphs where the editor left blank lines; ``base`` resolves
    relative addresses (a feed's entry link).

    nh3 decodes character references, so ``&#xFFFF;`` comes out as a
    non-character no mail can carry: dropped (it shows nothing anyway)."""
    options: dict[str, Any] = {
        "tags": ALLOWED_TAGS,
        "attributes": ALLOWED_ATTRIBUTES,
        "url_schemes": ALLOWED_URL_SCHEMES,
        "link_rel": "noopener noreferrer",
    }
    if base:
        # An empty address stays empty (and is refused) rather than silently
        # becoming a link to the base page.
        options["url_relative"] = lambda url: urljoin(base, url) if url.strip() else None
    cleaned = nh3.clean(body, **options)
    shape = _BodyShape()
    shape.feed(without_unfit(cleaned))
    shaped = shape.result().replace("<p></p>", "").strip()
    unusable = tuple(
        " ".join("".join(link.text).split()) for link in shape.links if not usable_href(link.href)
    )
    return CleanBody(shaped, unusable)


def sanitise_body(body: str) -> str:
    """The body as it is stored; a link without a usable address is refused
    (nh3 would keep its text and drop the address: blue text that goes nowhere)."""
    cleaned = clean_body(body)
    if cleaned.unusable_links:
        raise unusable_links(cleaned.unusable_links)
    return cleaned.html


def unusable_links(texts: tuple[str, ...]) -> InvalidInput:
    named = ", ".join(f"‘{text or '(글자 없음)'}’" for text in texts[:5])
    return InvalidInput(UNUSABLE_LINK, field="body", links=named)


def _image_words(fields: NewsItemFields, image_url: str | None) -> tuple[str | None, str | None]:
    """``(alt, caption)``: none without an image; an image needs its alt text."""
    alt = clean_text(fields.image_alt, "image_alt", MAX_IMAGE_ALT).replace("\n", " ")
    caption = clean_text(fields.image_caption, "image_caption", MAX_IMAGE_CAPTION)
    if image_url is None:
        return None, None
    if not alt:
        raise InvalidInput(
            N_(
                "이미지가 있으면 %(name)s을(를) 입력해 주세요. 이미지를 볼 수 없는 분께 "
                "사진에 무엇이 있는지(글자가 있다면 그 글자)를 알려 줍니다."
            ),
            field="image_alt",
            name=field_name("image_alt"),
        )
    return alt, caption.replace("\n", " ") or None


def validate(fields: NewsItemFields, settings: Settings) -> NewsItemFields:
    body = clean_text(fields.body, "body", MAX_BODY)
    image_url = clean_url(fields.image_url, "image_url")
    image_alt, image_caption = _image_words(fields, image_url)
    return NewsItemFields(
        title=clean_text(fields.title, "title", MAX_TITLE, required=True).replace("\n", " "),
        summary=clean_text(fields.summary, "summary", MAX_SUMMARY),
        body=sanitise_body(body) if body else "",
        link=clean_url(fields.link, "link"),
        image_url=image_url,
        category=clean_text(fields.category, "category", MAX_CATEGORY).replace("\n", " ") or None,
        published_at=aware(fields.published_at, settings, "published_at")
        if fields.published_at
        else datetime.now(UTC),
        image_alt=image_alt,
        image_caption=image_caption,
    )


def content(row: Record) -> NewsItemContent:
    return NewsItemContent(
        title=row["title"],
        summary=row["summary"],
        body=row["body"],
        link=row["link"],
        image_url=row["image_url"],
        category=row["category"],
        published_at=row["published_at"],
        id=row["id"],
        image_alt=row["image_alt"],
        image_caption=row["image_caption"],
    )


# --- CRUD -------------------------------------------------------------------


def row_values(item: NewsItemFields) -> tuple[Any, ...]:
    return (
        item.title,
        item.summary,
        item.body,
        item.link,
        item.image_url,
        item.category,
        item.published_at,
        item.image_alt,
        item.image_caption,
    )


async def create(db: Database, settings: Settings, actor: Actor, fields: NewsItemFields) -> Record:
    item = validate(fields, settings)
    async with db.transaction() as conn:
        try:
            row = await one(conn, QUERIES.insert_news_item, *row_values(item))
        except asyncpg.UniqueViolationError:
            raise Conflict(
                N_("같은 링크의 뉴스 항목이 이미 있습니다: %(link)s"), link=item.link or ""
            ) from None
        await record(conn, actor, "news_item.create", f"news_item:{row['id']}", title=item.title)
    return row


async def get(conn: Connection | Database, item_id: int) -> Record:
    check_id(item_id, "news item")
    if isinstance(conn, Database):
        row = await conn.fetchrow("get_news_item", item_id)
    else:
        row = await conn.fetchrow(QUERIES.get_news_item, item_id)
    if row is None:
        raise NotFound(NO_NEWS_ITEM, id=item_id)
    return row


async def replace(
    db: Database,
    settings: Settings,
    actor: Actor,
    item_id: int,
    fields: NewsItemFields,
    *,
    expected: Collection[str] | None = None,
) -> Record:
    """Replace every field; ``expected``: the versions the writer read (see
    :mod:`newsletter.editorial.versions`), None when they named none."""
    check_id(item_id, "news item")
    item = validate(fields, settings)
    async with db.transaction() as conn:
        current = await conn.fetchrow(QUERIES.lock_news_item, item_id)
        if current is None:
            raise NotFound(NO_NEWS_ITEM, id=item_id)
        await versions.require(
            conn,
            current,
            expected,
            target=f"news_item:{item_id}",
            what=Term(ko="이 뉴스 항목", en="the news item"),
            zone=city_zone(settings),
        )
        try:
            row = await conn.fetchrow(QUERIES.update_news_item, item_id, *row_values(item))
        except asyncpg.UniqueViolationError:
            raise Conflict(
                N_("같은 링크의 다른 뉴스 항목이 있습니다: %(link)s"), link=item.link or ""
            ) from None
        if row is None:
            raise NotFound(NO_NEWS_ITEM, id=item_id)
        await record(conn, actor, "news_item.update", f"news_item:{item_id}", title=item.title)
    return row


async def delete(db: Database, actor: Actor, item_id: int) -> None:
    check_id(item_id, "news item")
    async with db.transaction() as conn:
        # An issue still being composed or waiting to go out would lose a
        # section silently; sent issues carry their own rendered snapshot.
        using = await conn.fetch(QUERIES.unsent_issues_using_news_item, item_id)
        if using:
            ids = ", ".join(str(r["id"]) for r in using)
            raise Conflict(
                N_(
                    "아직 발송하지 않은 호(번호 %(issues)s)에 들어 있는 항목(#%(id)s)입니다. "
                    "그 호에서 먼저 빼 주세요."
                ),
                id=item_id,
                issues=ids,
            )
        status = await conn.execute(QUERIES.delete_news_item, item_id)
        if status.endswith(" 0"):
            raise NotFound(NO_NEWS_ITEM, id=item_id)
        await record(conn, actor, "news_item.delete", f"news_item:{item_id}")


@dataclass(frozen=True)
class Page:
    rows: list[Record]
    total: int
    page: int
    per_page: int


async def list_items(
    db: Database,
    settings: Settings,
    *,
    page: int = 1,
    per_page: int = 20,
    published_from: datetime | None = None,
    published_to: datetime | None = None,
    text: str | None = None,
) -> Page:
    """A page of items, newest first; ``text`` finds it in title or summary."""
    if not 1 <= per_page <= MAX_PAGE_SIZE:
        raise InvalidInput.out_of_range("per_page", 1, MAX_PAGE_SIZE)
    if not 1 <= page <= 100_000:
        raise InvalidInput.out_of_range("page", 1, 100_000)
    start = aware(published_from, settings, "published_from") if published_from else None
    end = aware(published_to, settings, "published_to") if published_to else None
    pattern = _contains(text)
    rows = await db.fetch("list_news_items", start, end, per_page, (page - 1) * per_page, pattern)
    total: int = await db.fetchval("count_news_items_between", start, end, pattern)
    return Page(rows=rows, total=total, page=page, per_page=per_page)


def _contains(text: str | None) -> str | None:
    """An ILIKE pattern matching ``text`` literally anywhere (% and _ escaped)."""
    printable = "".join(c for c in text or "" if unicodedata.category(c) != "Cc")
    cleaned = " ".join(printable.split())[:100]
    if not cleaned:
        return None
    escaped = cleaned.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
