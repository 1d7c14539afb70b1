"""News items: the city news an issue is composed from.

Editors type them in or import them from the city's RSS/Atom feed. Body HTML
is sanitised with nh3 on the way in, so everything stored is safe to place in
an e-mail and the archive as is; every other field is plain text and gets
escaped when rendered.
"""

from __future__ import annotations

import asyncio
import calendar
import http.client
import ipaddress
import socket
import ssl
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import feedparser
import nh3

from newsletter.core.db import QUERIES, Connection, Database, Record
from newsletter.core.errors import Conflict, InvalidInput, NotFound
from newsletter.core.settings import Settings
from newsletter.editorial.rendering import NewsItemContent, html_to_text
from newsletter.ops.audit import Actor, record

MAX_TITLE = 200
MAX_SUMMARY = 2000
MAX_BODY = 100_000
MAX_URL = 2000
MAX_CATEGORY = 50
MAX_PAGE_SIZE = 100
MAX_ID = 2**63 - 1  # bigint: larger ids cannot exist, answer 404 instead of overflowing

FEED_MAX_BYTES = 5 * 1024 * 1024
FEED_TIMEOUT_SECONDS = 10.0
FEED_MAX_ENTRIES = 500

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


@dataclass(frozen=True)
class FeedImport:
    inserted: int = 0
    duplicates: int = 0
    ids: list[int] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


# --- validation -------------------------------------------------------------


def clean_text(value: str | None, name: str, limit: int, *, required: bool = False) -> str:
    """NFC text without control characters (PostgreSQL refuses NUL outright)."""
    text = unicodedata.normalize("NFC", (value or "").replace("\r\n", "\n")).strip()
    if required and not text:
        raise InvalidInput(f"{name} must not be empty", field=name)
    if len(text) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters", field=name)
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in text):
        raise InvalidInput(f"{name} contains control characters", field=name)
    return text


def clean_url(value: str | None, name: str) -> str | None:
    """An absolute http(s) URL, or None. Other schemes (javascript:, data:) are refused."""
    if value is None or not value.strip():
        return None
    url = value.strip()
    if len(url) > MAX_URL:
        raise InvalidInput(f"{name} is longer than {MAX_URL} characters", field=name)
    if any(c.isspace() or unicodedata.category(c) == "Cc" for c in url):
        raise InvalidInput(f"{name} must not contain spaces or control characters", field=name)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise InvalidInput(f"{name} is not a valid URL", field=name) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{name} must be an absolute http:// or https:// URL", field=name)
    return url


def aware(moment: datetime, settings: Settings, name: str) -> datetime:
    """Naive times are local city time (``settings.timezone``)."""
    if not 2000 <= moment.year <= 2199:
        raise InvalidInput(f"{name} must be between the years 2000 and 2199", field=name)
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=ZoneInfo(settings.timezone))
    return moment.astimezone(UTC)


def sanitise_body(body: str) -> str:
    """Keep only safe, mail-friendly HTML (nh3 / ammonia, a maintained sanitiser)."""
    return nh3.clean(
        body,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer",
    ).strip()


def validate(fields: NewsItemFields, settings: Settings) -> NewsItemFields:
    body = clean_text(fields.body, "body", MAX_BODY)
    return NewsItemFields(
        title=clean_text(fields.title, "title", MAX_TITLE, required=True).replace("\n", " "),
        summary=clean_text(fields.summary, "summary", MAX_SUMMARY),
        body=sanitise_body(body) if body else "",
        link=clean_url(fields.link, "link"),
        image_url=clean_url(fields.image_url, "image_url"),
        category=clean_text(fields.category, "category", MAX_CATEGORY).replace("\n", " ") or None,
        published_at=aware(fields.published_at, settings, "published_at")
        if fields.published_at
        else datetime.now(UTC),
    )


async def one(conn: Connection, query: str, *args: Any) -> Record:
    """The single row a RETURNING or locked statement is certain to give."""
    row: Record | None = await conn.fetchrow(query, *args)
    if row is None:  # pragma: no cover - callers checked existence under a lock
        raise NotFound("the row vanished while being changed")
    return row


def check_id(item_id: int, what: str = "news item") -> None:
    if not 1 <= item_id <= MAX_ID:
        raise NotFound(f"no {what} {item_id}")


def content(row: Record) -> NewsItemContent:
    return NewsItemContent(
        title=row["title"],
        summary=row["summary"],
        body=row["body"],
        link=row["link"],
        image_url=row["image_url"],
        category=row["category"],
        published_at=row["published_at"],
    )


# --- CRUD -------------------------------------------------------------------


def _args(item: NewsItemFields) -> tuple[Any, ...]:
    return (
        item.title,
        item.summary,
        item.body,
        item.link,
        item.image_url,
        item.category,
        item.published_at,
    )


async def create(db: Database, settings: Settings, actor: Actor, fields: NewsItemFields) -> Record:
    item = validate(fields, settings)
    async with db.transaction() as conn:
        try:
            row = await one(conn, QUERIES.insert_news_item, *_args(item))
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a news item with link {item.link} already exists") from None
        await record(conn, actor, "news_item.create", f"news_item:{row['id']}", title=item.title)
    return row


async def get(conn: Connection | Database, item_id: int) -> Record:
    check_id(item_id)
    if isinstance(conn, Database):
        row = await conn.fetchrow("get_news_item", item_id)
    else:
        row = await conn.fetchrow(QUERIES.get_news_item, item_id)
    if row is None:
        raise NotFound(f"no news item {item_id}")
    return row


async def replace(
    db: Database, settings: Settings, actor: Actor, item_id: int, fields: NewsItemFields
) -> Record:
    check_id(item_id)
    item = validate(fields, settings)
    async with db.transaction() as conn:
        try:
            row = await conn.fetchrow(QUERIES.update_news_item, item_id, *_args(item))
        except asyncpg.UniqueViolationError:
            raise Conflict(f"another news item already has link {item.link}") from None
        if row is None:
            raise NotFound(f"no news item {item_id}")
        await record(conn, actor, "news_item.update", f"news_item:{item_id}", title=item.title)
    return row


async def delete(db: Database, actor: Actor, item_id: int) -> None:
    check_id(item_id)
    async with db.transaction() as conn:
        # An issue still being composed or waiting to go out would lose a
        # section silently; sent issues carry their own rendered snapshot.
        using = await conn.fetch(QUERIES.unsent_issues_using_news_item, item_id)
        if using:
            ids = ", ".join(str(r["id"]) for r in using)
            raise Conflict(f"news item {item_id} is part of unsent issue(s) {ids}; remove it first")
        status = await conn.execute(QUERIES.delete_news_item, item_id)
        if status.endswith(" 0"):
            raise NotFound(f"no news item {item_id}")
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
) -> Page:
    if not 1 <= per_page <= MAX_PAGE_SIZE:
        raise InvalidInput(f"per_page must be between 1 and {MAX_PAGE_SIZE}", field="per_page")
    if not 1 <= page <= 100_000:
        raise InvalidInput("page must be between 1 and 100000", field="page")
    start = aware(published_from, settings, "published_from") if published_from else None
    end = aware(published_to, settings, "published_to") if published_to else None
    rows = await db.fetch("list_news_items", start, end, per_page, (page - 1) * per_page)
    total: int = await db.fetchval("count_news_items_between", start, end)
    return Page(rows=rows, total=total, page=page, per_page=per_page)


# --- feed import ------------------------------------------------------------


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # reaches the IPv4 address in its low bits


@dataclass(frozen=True)
class FeedFetchPolicy:
    """Which addresses a feed URL may reach. An editor's URL must never become
    a way to probe the city's own network (SSRF): only public addresses are
    fetched. Tests, whose feed server listens on loopback, name its exact
    address here (see tests/test_news_api.py); production never does."""

    allowed_private: frozenset[IPAddress] = frozenset()


FEED_FETCH_POLICY = FeedFetchPolicy()
FETCH_FAILED = "could not fetch the feed"  # one answer: never reveal what is reachable


class _Refused(OSError):
    """A resolved address is not public: handled like any connection failure."""


def is_public(address: IPAddress) -> bool:
    """Public unicast only. IPv4-mapped/compatible IPv6 is judged as the IPv4
    address it reaches; ``is_global`` alone lets multicast through."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo:
            embedded = address.teredo[1]
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _checked_addresses(
    host: str, port: int, allowed_private: frozenset[IPAddress]
) -> list[tuple[Any, ...]]:
    """Resolve once and check every address; a host with any non-public
    address is refused outright (mixed answers are how rebinding starts)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if not is_public(address) and address not in allowed_private:
            raise _Refused(f"{host} resolves to a non-public address")
    return infos


def _connector(allowed_private: frozenset[IPAddress]) -> Any:
    """``socket.create_connection`` that connects to the very addresses it
    checked: no second DNS lookup between check and connect (DNS rebinding).
    Every connection, so every redirect hop, goes through it."""

    def create_connection(
        address: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        host, port = address
        last: OSError = _Refused(f"{host} has no address")
        for family, kind, proto, _, sockaddr in _checked_addresses(host, port, allowed_private):
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not None:
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            return sock
        raise last

    return create_connection


def _opener(allowed_private: frozenset[IPAddress]) -> urllib.request.OpenerDirector:
    connect = _connector(allowed_private)
    tls = ssl.create_default_context()  # verifies certificates and host names

    class CheckedHTTP(http.client.HTTPConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = connect

    class CheckedHTTPS(http.client.HTTPSConnection):
        # TLS still verifies the certificate against the URL's host name.
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = connect

    class HTTPOnly(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(CheckedHTTP, req)

    class HTTPSOnly(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(CheckedHTTPS, req, context=tls)

    # No ProxyHandler: a proxy would resolve and connect on our behalf, unchecked.
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), HTTPOnly, HTTPSOnly, _HttpOnlyRedirects
    )


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s): never to file:, ftp: or anything else.
    (The new host is checked when its connection opens.)"""

    max_redirections = 5

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        if urlsplit(newurl).scheme.lower() not in ("http", "https"):
            fp.close()
            raise InvalidInput("the feed redirected to a non-http(s) URL", field="url")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(
    url: str, timeout: float, limit: int, allowed_private: frozenset[IPAddress] = frozenset()
) -> bytes:
    request = urllib.request.Request(  # noqa: S310 - scheme checked by clean_url
        url, headers={"User-Agent": "gimpo-newsletter/1.0 (feed import)"}
    )
    try:
        with _opener(allowed_private).open(request, timeout=timeout) as response:
            data: bytes = response.read(limit + 1)
    except InvalidInput:
        raise
    except urllib.error.HTTPError as exc:
        exc.close()  # the server answered: it is public, its status may be told
        raise InvalidInput(f"{FETCH_FAILED}: HTTP {exc.code}", field="url") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        # Refused, unresolvable, unreachable, timed out: all look the same.
        raise InvalidInput(FETCH_FAILED, field="url") from None
    if len(data) > limit:
        raise InvalidInput(f"the feed is larger than {limit // 1024 // 1024} MB", field="url")
    return data


async def fetch_feed(
    url: str, *, seconds: float = FEED_TIMEOUT_SECONDS, limit: int = FEED_MAX_BYTES
) -> bytes:
    """Download a feed (http/https only, public addresses only, with a timeout
    and a size cap)."""
    checked = clean_url(url, "url")
    if checked is None:
        raise InvalidInput("url must not be empty", field="url")
    allowed = FEED_FETCH_POLICY.allowed_private
    # urllib blocks; a thread keeps the event loop serving other requests.
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(_fetch, checked, seconds, limit, allowed), timeout=seconds * 3
        )
    except TimeoutError:
        raise InvalidInput(FETCH_FAILED, field="url") from None


def _entry_time(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    try:
        # feedparser normalises to a UTC struct_time.
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _entry_image(entry: Any) -> str | None:
    for media in entry.get("media_content", []) or []:
        if str(media.get("medium", "image")) == "image" and media.get("url"):
            return str(media["url"])
    for enclosure in entry.get("enclosures", []) or []:
        if str(enclosure.get("type", "")).startswith("image/") and enclosure.get("href"):
            return str(enclosure["href"])
    return None


def entry_fields(entry: Any) -> NewsItemFields:
    """One feed entry as news item fields (validated later like typed-in items)."""
    contents = entry.get("content") or []
    body_html = str(contents[0].get("value", "")) if contents else ""
    summary_html = str(entry.get("summary", ""))
    if not body_html and "<" in summary_html:
        body_html = summary_html
    summary = html_to_text(summary_html)
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1] + "…"
    tags = entry.get("tags") or []
    category = str(tags[0].get("term") or "")[:MAX_CATEGORY] if tags else None
    title = html_to_text(str(entry.get("title", "")))
    return NewsItemFields(
        title=title[:MAX_TITLE],
        summary=summary,
        body=body_html[:MAX_BODY],
        link=str(entry.get("link", "")) or None,
        image_url=_entry_image(entry),
        category=category or None,
        published_at=_entry_time(entry),
    )


async def import_feed(db: Database, settings: Settings, actor: Actor, data: bytes) -> FeedImport:
    """Add the feed's entries as news items, skipping links already known."""
    if not data.strip():
        raise InvalidInput("the feed is empty", field="feed")
    parsed = await asyncio.to_thread(feedparser.parse, data)
    entries = list(parsed.entries)
    if not entries:
        if parsed.get("bozo"):
            raise InvalidInput("this is not a readable RSS or Atom feed", field="feed")
        return FeedImport()
    if len(entries) > FEED_MAX_ENTRIES:
        raise InvalidInput(f"the feed has more than {FEED_MAX_ENTRIES} entries", field="feed")
    inserted: list[int] = []
    duplicates = 0
    errors: list[dict[str, Any]] = []
    async with db.transaction() as conn:
        for index, entry in enumerate(entries, start=1):
            try:
                item = validate(entry_fields(entry), settings)
            except InvalidInput as exc:
                errors.append({"entry": index, "reason": exc.detail})
                continue
            if item.link is None:
                errors.append({"entry": index, "reason": "entry has no link to de-duplicate by"})
                continue
            item_id = await conn.fetchval(QUERIES.import_news_item, *_args(item))
            if item_id is None:
                duplicates += 1
            else:
                inserted.append(item_id)
        await record(
            conn,
            actor,
            "news_item.import_feed",
            None,
            inserted=len(inserted),
            duplicates=duplicates,
            errors=len(errors),
        )
    return FeedImport(inserted=len(inserted), duplicates=duplicates, ids=inserted, errors=errors)
