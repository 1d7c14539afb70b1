"""City news from an RSS/Atom feed: fetched safely, parsed, added as news items.

An editor's feed URL must never become a way to probe the city's own network
(SSRF): :func:`fetch_feed` reaches public addresses only, checks every
connection (so every redirect hop), connects to the very addresses it checked
(no DNS rebinding) and ignores proxies. Which private addresses may be
reached is an explicit :class:`FeedFetchPolicy`, passed in by the caller:
:data:`PUBLIC_ONLY` in production, a test's own loopback server in tests.

A fetch blocks (urllib), so it runs in a thread -- one of the few threads of
its own (:data:`FETCHERS`), never the event loop's shared executor -- and it
ends when its time is up, whatever the server does: a watchdog shuts the
fetch's sockets at the deadline, so a server dribbling a byte at a time cannot
keep the thread (each read's own timeout would never fire). While every
fetcher is busy, a new import is refused at once (429) instead of queueing.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import http.client
import ipaddress
import secrets
import socket
import ssl
import threading
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import feedparser

from newsletter.core.db import QUERIES, Database
from newsletter.core.errors import InvalidInput, RateLimited, field_name
from newsletter.core.i18n import N_
from newsletter.core.settings import Settings
from newsletter.core.text import without_unfit
from newsletter.editorial import news
from newsletter.editorial.rendering import html_to_text
from newsletter.ops.audit import Actor, record

FEED_MAX_BYTES = 5 * 1024 * 1024
FEED_TIMEOUT_SECONDS = 10.0
FEED_MAX_ENTRIES = 500
FETCHERS = 4  # feed downloads at once, per process

_fetch_threads = ThreadPoolExecutor(max_workers=FETCHERS, thread_name_prefix="feed-fetch")
_busy = threading.BoundedSemaphore(FETCHERS)


@dataclass(frozen=True)
class FeedImport:
    inserted: int = 0
    duplicates: int = 0
    ids: list[int] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # reaches the IPv4 address in its low bits


@dataclass(frozen=True)
class FeedFetchPolicy:
    """Which addresses a feed URL may reach: public ones, plus exactly these
    private ones. Production allows none (:data:`PUBLIC_ONLY`); tests name
    their loopback feed server's address."""

    allowed_private: frozenset[IPAddress] = frozenset()


PUBLIC_ONLY = FeedFetchPolicy()
# One answer: never reveal what is reachable.
NO_LINK = N_("링크가 없는 항목이라 중복을 가릴 수 없어 건너뜁니다.")
FETCH_FAILED = N_("피드를 가져오지 못했습니다. 주소를 확인해 주세요.")
FETCH_REFUSED = N_("피드를 가져오지 못했습니다 (HTTP %(code)s). 주소를 확인해 주세요.")


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


class _Deadline:
    """Shuts every socket of one fetch when its time is up: a blocked read then
    returns at once, so the fetching thread ends on time."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                raise TimeoutError("feed fetch deadline passed")
            self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                with contextlib.suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def _connector(allowed_private: frozenset[IPAddress], deadline: _Deadline) -> Any:
    """``socket.create_connection`` that connects to the very addresses it
    checked: no second DNS lookup between check and connect (DNS rebinding).
    Every connection, so every redirect hop, goes through it, and is shut by
    the fetch's deadline."""

    def create_connection(
        address: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        host, port = address
        last: OSError = _Refused(f"{host} has no address")
        for family, kind, proto, _, sockaddr in _checked_addresses(host, port, allowed_private):
            sock = socket.socket(family, kind, proto)
            deadline.watch(sock)
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


def _opener(
    allowed_private: frozenset[IPAddress], deadline: _Deadline
) -> urllib.request.OpenerDirector:
    connect = _connector(allowed_private, deadline)
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
            raise InvalidInput(N_("피드 주소가 http(s)가 아닌 곳으로 넘어갑니다."), field="url")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(
    url: str, timeout: float, limit: int, allowed_private: frozenset[IPAddress] = frozenset()
) -> bytes:
    request = urllib.request.Request(  # noqa: S310 - scheme checked by clean_url
        url, headers={"User-Agent": "gimpo-newsletter/1.0 (feed import)"}
    )
    deadline = _Deadline(timeout)
    try:
        with _opener(allowed_private, deadline).open(request, timeout=timeout) as response:
            data: bytes = response.read(limit + 1)
        if deadline.expired:  # the read ended because the watchdog shut the socket
            raise InvalidInput(FETCH_FAILED, field="url")
    except InvalidInput:
        raise
    except urllib.error.HTTPError as exc:
        exc.close()  # the server answered: it is public, its status may be told
        raise InvalidInput(FETCH_REFUSED, field="url", code=exc.code) from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        # Refused, unresolvable, unreachable, timed out: all look the same.
        raise InvalidInput(FETCH_FAILED, field="url") from None
    finally:
        deadline.cancel()
    if len(data) > limit:
        raise InvalidInput(
            N_("피드가 %(mb)s MB보다 큽니다."), field="url", mb=limit // 1024 // 1024
        )
    return data


async def fetch_feed(
    url: str,
    policy: FeedFetchPolicy,
    *,
    seconds: float = FEED_TIMEOUT_SECONDS,
    limit: int = FEED_MAX_BYTES,
) -> bytes:
    """Download a feed (http/https only, public addresses only, with a timeout
    and a size cap)."""
    checked = news.clean_url(url, "url")
    if checked is None:
        raise InvalidInput(N_("%(name)s을(를) 입력해 주세요."), field="url", name=field_name("url"))
    allowed = policy.allowed_private
    if not _busy.acquire(blocking=False):
        raise RateLimited(N_("다른 피드를 가져오는 중입니다. 몇 초 뒤에 다시 해 주세요."))
    running = _fetch_threads.submit(_fetch, checked, seconds, limit, allowed)
    # The slot is free when the thread is, not when this request stops waiting.
    running.add_done_callback(lambda _: _busy.release())
    return await asyncio.wrap_future(running)


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


MEDIA_RSS = "{http://search.yahoo.com/mrss/}"
# Where _entries puts an entry's image words: a key no feed element can make
# (feedparser names keys after elements, and element names have no colon).
IMAGE_WORDS = "newsletter:image_words"


def _image_words(data: bytes) -> list[str | None]:
    """Per item (RSS) or entry (Atom), in document order: the words its feed
    gives for its picture (media:description, else media:title), or None.

    feedparser folds media:description into the entry's text and media:title
    into its title, so the words are read from the document here. Expat
    (2.4+) refuses entity-expansion bombs and ElementTree fetches nothing
    external; a document it cannot read gives no words (the title stands in)."""
    try:
        root = ET.fromstring(data)  # noqa: S314 - see above; bounded by FEED_MAX_BYTES
    except (ET.ParseError, ValueError):
        return []
    words: list[str | None] = []
    for element in root.iter():
        if not isinstance(element.tag, str) or element.tag.rsplit("}", 1)[-1] not in (
            "item",
            "entry",
        ):
            continue
        said = None
        for name in ("description", "title"):
            found = element.find(f".//{MEDIA_RSS}{name}")
            if found is not None and (found.text or "").strip():
                said = " ".join(without_unfit(found.text or "").split())
                break
        words.append(said)
    return words


def entry_fields(entry: Any) -> news.NewsItemFields:
    """One feed entry as news item fields (validated later like typed-in items).

    The parser decodes references like ``&#xFFFF;`` into non-characters that
    no mail can carry; they are invisible, so they are dropped here rather than
    refusing the entry (typed-in text with them is refused: news.clean_text).
    """
    contents = entry.get("content") or []
    body_html = without_unfit(str(contents[0].get("value", ""))) if contents else ""
    if body_html and " ".join(body_html.split()) == entry.get(IMAGE_WORDS):
        body_html = ""  # feedparser's reading of media:description: the picture's, not the text
    summary_html = without_unfit(str(entry.get("summary", "")))
    if not body_html and "<" in summary_html:
        body_html = summary_html
    summary = without_unfit(html_to_text(summary_html))
    if len(summary) > news.MAX_SUMMARY:
        summary = summary[: news.MAX_SUMMARY - 1] + "…"
    tags = entry.get("tags") or []
    category = without_unfit(str(tags[0].get("term") or ""))[: news.MAX_CATEGORY] if tags else None
    title = without_unfit(html_to_text(str(entry.get("title", ""))))
    link = without_unfit(str(entry.get("link", ""))) or None
    if body_html and news.usable_href(link):
        # The city's CMS writes links inside its site relative to the article.
        body_html = news.clean_body(body_html, base=link).html
    image_url = _entry_image(entry)
    # A feed rarely describes its pictures; the title is the next best words.
    image_alt = (entry.get(IMAGE_WORDS) or title)[: news.MAX_IMAGE_ALT] if image_url else None
    return news.NewsItemFields(
        title=title[: news.MAX_TITLE],
        summary=summary,
        body=body_html[: news.MAX_BODY],
        link=link,
        image_url=image_url,
        image_alt=image_alt,
        category=category or None,
        published_at=_entry_time(entry),
    )


async def _entries(data: bytes) -> list[Any]:
    if not data.strip():
        raise InvalidInput(N_("피드가 비어 있습니다."), field="feed")
    parsed, words = await asyncio.to_thread(lambda: (feedparser.parse(data), _image_words(data)))
    entries = list(parsed.entries)
    if len(words) == len(entries):  # else the two readers disagree: no words rather than wrong
        for entry, said in zip(entries, words, strict=True):
            entry[IMAGE_WORDS] = said
    if not entries and parsed.get("bozo"):
        raise InvalidInput(N_("RSS나 Atom 피드로 읽을 수 없는 내용입니다."), field="feed")
    if len(entries) > FEED_MAX_ENTRIES:
        raise InvalidInput(
            N_("피드의 항목이 %(max)s개를 넘습니다."), field="feed", max=FEED_MAX_ENTRIES
        )
    return entries


async def import_feed(
    db: Database,
    settings: Settings,
    actor: Actor,
    data: bytes,
    *,
    only: Collection[int] | None = None,
) -> FeedImport:
    """Add the feed's entries as news items, skipping links already known.
    ``only``: the entry numbers (1-based, as in :func:`preview_feed`) to add."""
    entries = await _entries(data)
    if not entries:
        return FeedImport()
    inserted: list[int] = []
    duplicates = 0
    errors: list[dict[str, Any]] = []
    async with db.transaction() as conn:
        for index, entry in enumerate(entries, start=1):
            if only is not None and index not in only:
                continue
            try:
                item = news.validate(entry_fields(entry), settings)
            except InvalidInput as exc:
                errors.append({"entry": index, "reason": exc.detail})
                continue
            if item.link is None:
                errors.append({"entry": index, "reason": InvalidInput(NO_LINK).detail})
                continue
            item_id = await conn.fetchval(QUERIES.import_news_item, *news.row_values(item))
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


# --- preview: what an import would add, before it does -------------------------


@dataclass(frozen=True)
class EntryPreview:
    """One feed entry as the import would treat it."""

    entry: int  # 1-based, the number import_feed(only=...) takes
    title: str
    link: str | None
    published_at: datetime | None
    summary: str
    image_url: str | None
    outcome: str  # "new", "duplicate" or "invalid"
    reason: str | None = None  # in Korean: the console shows the preview


async def preview_feed(db: Database, settings: Settings, data: bytes) -> list[EntryPreview]:
    """Every entry of the feed with what importing it would do; nothing is stored."""
    entries = await _entries(data)
    checked: list[tuple[int, news.NewsItemFields | None, str | None, Any]] = []
    for index, entry in enumerate(entries, start=1):
        try:
            item = news.validate(entry_fields(entry), settings)
        except InvalidInput as exc:
            checked.append((index, None, exc.text("ko"), entry))
            continue
        if item.link is None:
            checked.append((index, None, InvalidInput(NO_LINK).text("ko"), entry))
            continue
        checked.append((index, item, None, entry))
    links = [c[1].link for c in checked if c[1] is not None and c[1].link]
    known = {r["link"] for r in await db.fetch("known_news_links", links)} if links else set()
    previews = []
    for index, valid, reason, entry in checked:
        if valid is None:
            raw = entry_fields(entry)
            previews.append(
                EntryPreview(
                    entry=index,
                    title=raw.title or "(제목 없음)",
                    link=raw.link,
                    published_at=raw.published_at,
                    summary=raw.summary[:300],
                    image_url=None,
                    outcome="invalid",
                    reason=reason,
                )
            )
            continue
        previews.append(
            EntryPreview(
                entry=index,
                title=valid.title,
                link=valid.link,
                published_at=valid.published_at,
                summary=valid.summary[:300],
                image_url=valid.image_url,
                outcome="duplicate" if valid.link in known else "new",
            )
        )
    return previews


async def keep_for_preview(db: Database, user_id: int, source: str, data: bytes) -> str:
    """Keep the fetched bytes for an hour, so the import adds exactly what was previewed."""
    preview_id = secrets.token_urlsafe(16)
    async with db.transaction() as conn:
        await conn.execute(QUERIES.prune_feed_previews)
        await conn.execute(QUERIES.insert_feed_preview, preview_id, user_id, source[:500], data)
    return preview_id


async def kept_preview(db: Database, user_id: int, preview_id: str) -> tuple[str, bytes]:
    row = await db.fetchrow("get_feed_preview", preview_id[:64], user_id)
    if row is None:
        raise InvalidInput(
            N_("미리 보기가 만료되었습니다 (1시간). 피드를 다시 가져와 주세요."), field="feed"
        )
    return row["source"], bytes(row["data"])


async def forget_preview(db: Database, preview_id: str) -> None:
    await db.execute("delete_feed_preview", preview_id[:64])
