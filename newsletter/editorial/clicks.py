"""Click counts per issue and news item, without knowing who clicked.

Every recipient's copy of an issue carries the same link for a news item,
``BASE_URL/c/<issue>/<item>/<sig>`` (see :func:`newsletter.core.signing.click_path`),
so a click can be counted but never tied to a person: the redirect sees an
issue, an item and an hour, nothing else, and stores nothing else.

Not every request is a click. Not counted (still redirected): HEAD requests,
browser prefetches (``Sec-Purpose``/``Purpose: prefetch``), link scanners and
bots recognised by their User-Agent (the CrawlerDetect patterns; a request
without one too), and anything before the issue started sending (an editor
trying the preview or a test copy). Nor more than
:data:`CLICKS_PER_CLIENT_PER_HOUR` clicks on one link from one client address
(an IPv6 /64) in an hour: one machine cannot make an item look popular. Which
addresses clicked is held in memory for the hour, as hashes, and never stored.

The redirect is the busiest public route on the morning of an issue, so clicks
are added up in memory per (issue, item, hour) and written about once a second
with one upsert (:meth:`ClickCounter.flush`): a burst of thousands of clicks is
a few row updates a second, not one locked row per click queueing behind the
others. The counts are written again on shutdown; a write that fails keeps its
counts for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from crawlerdetect import CrawlerDetect

from newsletter.core.appstate import close_kept, kept
from newsletter.core.db import Database
from newsletter.core.kinds import MAX_ID
from newsletter.core.signing import click_signed
from newsletter.ops import metrics

log = logging.getLogger("newsletter.clicks")

HOUR_SECONDS = 3600
FLUSH_SECONDS = 1.0  # how stale the stored counts may be while clicks arrive
RETRY_SECONDS = 5.0  # after a failed write
CLOSE_SECONDS = 10.0  # shutdown waits this long for the last write
MAX_TARGETS = 10_000  # cached links (issues x items); far above what two issues a month need
# A person may come back to an item a couple of times; a script requesting it
# hundreds of times adds no more than this.
CLICKS_PER_CLIENT_PER_HOUR = 3
# (client, link) pairs remembered in an hour: ~100 bytes each, so at most some
# 50 MB; past it the hour starts over (logged), which no single machine can cause.
MAX_CLIENTS_TRACKED = 500_000
STATE_KEY = "click_counter"

# Characters a Location header may carry as they are; everything else in a
# stored link (Korean paths, say) is percent-encoded, so the header stays ASCII.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
_PREFETCH = ("prefetch", "prerender", "preview")


@dataclass(frozen=True, slots=True)
class Target:
    location: str  # the link, ready for a Location header
    started_at: float | None  # when the issue started sending (epoch s); None: not yet


def parse(issue: str, item: str, sig: str, secret: str) -> tuple[int, int] | None:
    """The (issue, item) a redirect path names, or None if it is not one we signed."""
    if not (issue.isdigit() and item.isdigit() and issue.isascii() and item.isascii()):
        return None
    if len(issue) > 19 or len(item) > 19:
        return None
    issue_id, item_id = int(issue), int(item)
    if not (1 <= issue_id <= MAX_ID and 1 <= item_id <= MAX_ID):
        return None
    if not click_signed(secret, issue_id, item_id, sig):
        return None
    return issue_id, item_id


def location(url: str) -> str | None:
    """``url`` as a Location value, or None unless it is an absolute http(s) link.

    Stored links were checked when they were saved; checking again here means
    that the redirect can never lead to a ``javascript:`` or relative address
    whatever reached the table.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return None
    if url.isascii():
        return url
    try:  # a Korean domain name travels as IDNA (xn--...)
        netloc = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if ":" in netloc:
        netloc = f"[{netloc}]"  # an IPv6 literal
    if port is not None:
        netloc += f":{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit(
        (
            parts.scheme,
            quote(netloc, safe=_URL_SAFE),
            quote(parts.path, safe=_URL_SAFE),
            quote(parts.query, safe=_URL_SAFE),
            quote(parts.fragment, safe=_URL_SAFE),
        )
    )


_crawlers = CrawlerDetect()


def not_counted(method: str, headers: Mapping[str, str]) -> str | None:
    """Why this request is not a person's click (``head``, ``prefetch``, ``bot``), or None."""
    if method != "GET":
        return "head"
    for name in ("sec-purpose", "purpose", "x-purpose", "x-moz"):
        value = headers.get(name)
        if value and any(word in value.lower() for word in _PREFETCH):
            return "prefetch"
    agent = headers.get("user-agent", "").strip()
    if not agent or _crawlers.is_crawler(agent):
        return "bot"
    return None


class ClickCounter:
    """Per app (and so per event loop): looks links up, adds clicks up, writes them.

    No task runs while idle: one starts with the first click to count and ends
    once everything is written, so an app that is never started or stopped
    (tests) leaves nothing behind.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: Counter[tuple[int, int, int]] = Counter()  # (issue, item, hour)
        self._targets: dict[tuple[int, int], Target] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False
        self.writes = 0  # statements that stored clicks (tests, diagnostics)
        # Clicks this hour per hash of (client address, issue, item): in memory only.
        self._by_client: Counter[int] = Counter()
        self._client_hour = 0

    @property
    def pending(self) -> int:
        """Clicks counted here and not yet stored."""
        return sum(self._pending.values())

    @property
    def idle(self) -> bool:
        """Everything counted is stored and no write is under way."""
        return self._task is None and not self._pending

    async def target(self, issue_id: int, item_id: int) -> Target | None:
        """Where the link leads, or None if this issue does not link that item.

        Links of an issue that has started sending never change (they were
        stored with its snapshot), so they are cached; before that the item's
        current link is looked up every time (previews, test copies).
        """
        key = (issue_id, item_id)
        cached = self._targets.get(key)
        if cached is not None:
            return cached
        row = await self._db.fetchrow("click_target", issue_id, item_id)
        if row is None or row["url"] is None:
            return None
        where = location(row["url"])
        if where is None:
            log.warning("issue %s item %s links to an unusable URL", issue_id, item_id)
            return None
        started = row["started_at"]
        found = Target(where, started.timestamp() if started is not None else None)
        if found.started_at is not None:
            if len(self._targets) >= MAX_TARGETS:
                self._targets.clear()
            self._targets[key] = found
        return found

    def count(
        self, issue_id: int, item_id: int, target: Target, now: float, client: str | None = None
    ) -> bool:
        """Count one click at ``now`` (epoch s) from ``client`` (its address
        bucket); False if the issue was not sending yet or this client has
        clicked the link often enough this hour."""
        if target.started_at is None or now < target.started_at:
            metrics.click_not_counted("before_send")
            return False
        hour = int(now // HOUR_SECONDS)
        if client is not None and not self._client_may_count(client, issue_id, item_id, hour):
            metrics.click_not_counted("repeat")
            return False
        self._pending[(issue_id, item_id, hour)] += 1
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._write_soon(), name="click-counter")
        return True

    def _client_may_count(self, client: str, issue_id: int, item_id: int, hour: int) -> bool:
        if hour != self._client_hour or len(self._by_client) >= MAX_CLIENTS_TRACKED:
            if hour == self._client_hour:
                log.warning("more than %s clients clicked this hour", MAX_CLIENTS_TRACKED)
            self._by_client.clear()
            self._client_hour = hour
        # A hash, not the address: nothing here could be read back as who clicked.
        key = hash((client, issue_id, item_id))
        if self._by_client[key] >= CLICKS_PER_CLIENT_PER_HOUR:
            return False
        self._by_client[key] += 1
        return True

    async def _write_soon(self) -> None:
        try:
            while self._pending and not self._closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
                if self._closed:
                    return  # close() writes what is left
                try:
                    await self.flush()
                except Exception as exc:  # the database is away: keep counting, retry
                    log.warning("could not store %d clicks yet: %s", self.pending, exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), RETRY_SECONDS)
        finally:
            self._task = None

    async def flush(self) -> int:
        """Write every click counted so far in one statement; return how many.

        The counts are taken out before the write, so clicks arriving meanwhile
        go to the next one; if the write fails they are put back.
        """
        pending, self._pending = self._pending, Counter()
        if not pending:
            return 0
        keys = list(pending)
        try:
            await self._db.execute(
                "add_clicks",
                [k[0] for k in keys],
                [k[1] for k in keys],
                [float(k[2] * HOUR_SECONDS) for k in keys],
                [pending[k] for k in keys],
            )
        except BaseException:
            self._pending.update(pending)
            raise
        self.writes += 1
        return sum(pending.values())

    async def close(self) -> None:
        """Stop the timer and write what is left (shutdown must not lose clicks)."""
        self._closed = True
        self._wake.set()
        task = self._task
        if task is not None:
            # Never cancel a write in flight: whether it committed would be unknown.
            await asyncio.wait({task}, timeout=CLOSE_SECONDS)
        deadline = time.monotonic() + CLOSE_SECONDS
        while self._pending:
            try:
                await self.flush()
            except Exception as exc:
                if time.monotonic() >= deadline:
                    log.error(
                        "shutting down with %d clicks not stored (%s): %s",
                        self.pending,
                        exc,
                        dict(self._pending),
                    )
                    return
                await asyncio.sleep(0.5)


def counter_for(state: MutableMapping[str, Any], db: Database) -> ClickCounter:
    """The app's counter, made on first use (tests build many apps)."""
    return kept(state, STATE_KEY, lambda: ClickCounter(db))


async def close(state: MutableMapping[str, Any]) -> None:
    await close_kept(state, STATE_KEY)
