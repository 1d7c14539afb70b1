"""Delivery and audience figures for ops, straight from the database.

Every report is read inside one REPEATABLE READ, READ ONLY transaction: all
its numbers come from one snapshot and one ``now()``, so a report taken while
workers are sending never shows a message twice or not at all, and no figure
can go negative or past 100 %. The queries and why they are cheap are in
``sql/queries/stats.sql`` and ``sql/migrations/0006_ops.sql``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from newsletter.core.db import QUERIES, Connection, Database, Record
from newsletter.core.kinds import SUBSCRIBER_STATUSES
from newsletter.core.records import missing
from newsletter.core.settings import Settings

GROWTH_DAYS = 30
UNVERIFIED_DAYS = 30  # how far back /ops counts unsigned bounce reports
CHART_MINUTES = 30
RATE_WINDOW_SECONDS = 60.0
TOP_ERROR_CODES = 5
ACQUIRE_TIMEOUT_SECONDS = 5.0  # a dashboard should fail fast, not hang, when the DB is gone


@dataclass(frozen=True, slots=True)
class ErrorCount:
    """How many messages of an issue ended (or wait to retry) with one SMTP code.

    ``code`` is None when there was no SMTP reply at all (refused, timed out).
    """

    code: int | None
    count: int


@dataclass(frozen=True, slots=True)
class MinuteCount:
    minute: datetime
    sent: int


@dataclass(frozen=True, slots=True)
class HourClicks:
    hour: datetime  # the start of the hour
    clicks: int


@dataclass(frozen=True, slots=True)
class ItemClicks:
    """Clicks on one news item's link in one issue: counts only, never who."""

    news_item_id: int
    title: str
    url: str
    clicks: int
    by_hour: list[HourClicks] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RoundStats:
    """One send round of an issue: the first, or a resend of failed deliveries.

    ``deliveries`` is how many the round set out to send (every recipient for
    the first); the other figures count the deliveries whose latest round this
    is, so a delivery resent again moves on to the next round and the rounds
    add up to the issue's recipients.
    """

    round: int
    started_at: datetime | None
    finished_at: datetime | None
    deliveries: int
    requested_by: str | None
    queued: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    bounced: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class RelayStats:
    """One relay of SMTP_URL, summed over every worker (``relay`` is host:port)."""

    relay: str
    state: str  # closed (delivering), open (refusing: not tried until its probe), half-open
    sent: int
    pushed_back: int
    refused: int  # connections refused or failed
    connections: int  # what the last worker to report allowed itself there
    last_error: str | None
    last_error_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Pace:
    """The send rate the relays allow: RATE_PER_SECOND, or less after push-back."""

    configured_per_second: float
    effective_per_second: float
    reason: str | None  # None: at the configured ceiling
    since: datetime | None  # the last decrease
    relays: list[RelayStats] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IssueStats:
    id: int
    number: int | None
    title: str
    status: str
    recipients: int
    queued: int
    sending: int  # claimed by a worker, being handed to SMTP right now
    sent: int
    failed: int
    bounced: int
    skipped: int
    attempts: int
    done: int  # sent + failed + bounced + skipped
    progress: float  # done / recipients, 0.0 .. 1.0
    rate_per_second: float  # messages accepted by SMTP over the last minute
    rate_limit_per_second: float
    started_at: datetime | None
    eta_seconds: float | None  # None: not sending (paused, cancelled, not started)
    eta_at: datetime | None
    finished_at: datetime | None
    error_codes: list[ErrorCount]
    sends_per_minute: list[MinuteCount] = field(default_factory=list)
    as_of: datetime | None = None
    clicks: list[ItemClicks] = field(default_factory=list)  # in the issue's order
    clicks_total: int = 0
    round: int = 1  # the current (or last) send round
    rounds: list[RoundStats] = field(default_factory=list)  # empty unless it was resent
    # The rate the relays allow now (shared by all workers) and why it is lower.
    effective_rate_per_second: float = 0.0
    effective_rate_reason: str | None = None
    effective_rate_since: datetime | None = None
    relays: list[RelayStats] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return self.queued + self.sending

    @property
    def percent(self) -> float:
        return round(self.progress * 100, 1)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DayGrowth:
    day: date
    signups: int  # residents' own signups
    confirmations: int
    leaves: int
    imports: int = 0  # added by an admin's CSV import (confirmed or invited)


@dataclass(frozen=True, slots=True)
class Overview:
    subscribers: dict[str, int]
    growth: list[DayGrowth]
    issues: list[IssueStats]
    outbox_queued: int
    outbox_sending: int
    as_of: datetime
    # Bounce reports in the last UNVERIFIED_DAYS that named a subscriber's
    # address without our signature: recorded, never applied.
    unverified_bounces: int = 0
    pace: Pace | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rate_limit(settings: Settings) -> float:
    """The global limit in messages per second, the hourly cap included."""
    limit = settings.rate_per_second
    if settings.rate_per_hour is not None:
        limit = min(limit, settings.rate_per_hour / 3600.0)
    return limit


def send_rate(sent_last_minute: int, started_at: datetime | None, as_of: datetime) -> float:
    """Messages per second over the last minute, or since the start if that is sooner."""
    window = RATE_WINDOW_SECONDS
    if started_at is not None:
        window = min(window, max((as_of - started_at).total_seconds(), 1.0))
    return sent_last_minute / window


def eta_seconds(remaining: int, status: str, rate: float, limit: float) -> float | None:
    """Seconds until the last message goes, at the current pace (never above the limit).

    Before the first minute of figures, the limit is the best guess of the pace.
    """
    if remaining == 0:
        return 0.0
    if status != "sending":
        return None
    pace = min(rate, limit) if rate > 0 else limit
    return remaining / pace


async def pace(conn: Connection, settings: Settings) -> Pace:
    """The learned rate (from the bucket row every worker shares) and each relay's record."""
    limit = rate_limit(settings)
    row = await conn.fetchrow(QUERIES.rate_learned, "smtp")
    learned = row["learned_rate"] if row is not None else None
    effective = min(limit, learned) if learned is not None else limit
    relays = [
        RelayStats(
            relay=r["relay"],
            state=r["state"],
            sent=r["sent"],
            pushed_back=r["pushed_back"],
            refused=r["refused"],
            connections=r["connections"],
            last_error=r["last_error"],
            last_error_at=r["last_error_at"],
            updated_at=r["updated_at"],
        )
        for r in await conn.fetch(QUERIES.relay_health)
    ]
    lowered = learned is not None and learned < limit
    return Pace(
        configured_per_second=limit,
        effective_per_second=round(effective, 2),
        reason=f"relay pushed back: {row['learned_reason']}" if lowered and row else None,
        since=row["decreased_at"] if lowered and row else None,
        relays=relays,
    )


@asynccontextmanager
async def snapshot(db: Database) -> AsyncIterator[Connection]:
    """A connection whose every query sees the same committed state."""
    async with (
        db.pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        yield conn


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """One group of an issue's deliveries: same status, same SMTP code."""

    issue_id: int
    status: str
    smtp_code: int | None
    count: int
    tried: int  # rows with at least one attempt (tells a retry from a fresh row)
    attempts: int


@dataclass
class _Tally:
    """An issue's groups summed up (what the figures are built from)."""

    by_status: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    errors: dict[int | None, int] = field(default_factory=dict)
    sent_last_minute: int = 0

    def add(self, group: DeliveryResult) -> None:
        self.by_status[group.status] = self.by_status.get(group.status, 0) + group.count
        self.attempts += group.attempts
        # Why messages did not go: final failures and bounces, plus rows waiting
        # to retry after a transient error (queued, but already tried).
        # A DSN bounce keeps the 250 the server first gave; it shows in `bounced`,
        # not here, where only codes that explain a refusal belong.
        accepted_then_bounced = group.smtp_code is not None and group.smtp_code < 400
        failing = group.count if group.status in ("failed", "bounced") else 0
        if group.status == "queued":
            failing = group.tried
        if accepted_then_bounced:
            failing = 0
        if failing:
            self.errors[group.smtp_code] = self.errors.get(group.smtp_code, 0) + failing

    def top_errors(self) -> list[ErrorCount]:
        ranked = sorted(self.errors.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or 0))
        return [ErrorCount(code=code, count=count) for code, count in ranked[:TOP_ERROR_CODES]]


@dataclass
class _Engagement:
    """Clicks and rounds of the issues in one report, from the same snapshot."""

    clicks: dict[int, list[ItemClicks]] = field(default_factory=dict)
    rounds: dict[int, list[Record]] = field(default_factory=dict)
    round_results: dict[tuple[int, int], dict[str, int]] = field(default_factory=dict)

    def rounds_of(self, header: Record, tally: _Tally) -> list[RoundStats]:
        issue_id = header["id"]
        rows = self.rounds.get(issue_id, [])
        later = {key[1]: counts for key, counts in self.round_results.items() if key[0] == issue_id}
        first_counts = dict(tally.by_status)
        for counts in later.values():
            for status, n in counts.items():
                first_counts[status] = first_counts.get(status, 0) - n
        result: list[RoundStats] = []
        for row in rows:
            counts = first_counts if row["round"] == 1 else later.get(row["round"], {})
            finished = row["finished_at"]
            if row["round"] == header["round"] and header["status"] != "sending":
                finished = header["finished_at"]  # the last round ended when the issue did
            result.append(
                RoundStats(
                    round=row["round"],
                    started_at=row["started_at"],
                    finished_at=finished,
                    deliveries=row["deliveries"],
                    requested_by=row["requested_by"],
                    **{status: counts.get(status, 0) for status in _ROUND_STATUSES},
                )
            )
        return result


_ROUND_STATUSES = ("queued", "sending", "sent", "failed", "bounced", "skipped")


async def _engagement(conn: Connection, headers: list[Record]) -> _Engagement:
    found = _Engagement()
    ids = [h["id"] for h in headers]
    if not ids:
        return found
    # One row per item and hour, in the issue's order (dicts keep it).
    by_item: dict[tuple[int, int], tuple[Record, list[HourClicks]]] = {}
    for row in await conn.fetch(QUERIES.stats_issue_clicks, ids):
        _, hours = by_item.setdefault((row["issue_id"], row["news_item_id"]), (row, []))
        if row["hour"] is not None:
            hours.append(HourClicks(row["hour"], row["clicks"]))
    for (issue_id, _), (row, hours) in by_item.items():
        found.clicks.setdefault(issue_id, []).append(
            ItemClicks(
                row["news_item_id"], row["title"], row["url"], sum(h.clicks for h in hours), hours
            )
        )
    resent = [h["id"] for h in headers if h["round"] > 1]
    if resent:
        for row in await conn.fetch(QUERIES.stats_issue_rounds, resent):
            found.rounds.setdefault(row["issue_id"], []).append(row)
        for row in await conn.fetch(QUERIES.stats_round_results, resent):
            counts = found.round_results.setdefault((row["issue_id"], row["round"]), {})
            counts[row["status"]] = row["count"]
    return found


def _build_issue(
    header: Record,
    tally: _Tally,
    limit: float,
    chart: list[MinuteCount] | None = None,
    engagement: _Engagement | None = None,
    learned: Pace | None = None,
) -> IssueStats:
    seen = engagement or _Engagement()
    if learned is not None:
        limit = min(limit, learned.effective_per_second)
    clicks = seen.clicks.get(header["id"], [])
    count = tally.by_status.get
    recipients = sum(tally.by_status.values())
    queued, sending = count("queued", 0), count("sending", 0)
    done = recipients - queued - sending
    as_of: datetime = header["as_of"]
    rate = send_rate(tally.sent_last_minute, header["started_at"], as_of)
    eta = eta_seconds(queued + sending, header["status"], rate, limit)
    return IssueStats(
        id=header["id"],
        number=header["number"],
        title=header["title"],
        status=header["status"],
        recipients=recipients,
        queued=queued,
        sending=sending,
        sent=count("sent", 0),
        failed=count("failed", 0),
        bounced=count("bounced", 0),
        skipped=count("skipped", 0),
        attempts=tally.attempts,
        done=done,
        progress=done / recipients if recipients else 0.0,
        rate_per_second=round(rate, 2),
        rate_limit_per_second=limit,
        started_at=header["started_at"],
        eta_seconds=round(eta, 1) if eta is not None else None,
        eta_at=as_of + timedelta(seconds=eta) if eta is not None else None,
        finished_at=header["finished_at"],
        error_codes=tally.top_errors(),
        sends_per_minute=chart or [],
        as_of=as_of,
        clicks=clicks,
        clicks_total=sum(item.clicks for item in clicks),
        round=header["round"],
        rounds=seen.rounds_of(header, tally),
        effective_rate_per_second=limit,
        effective_rate_reason=learned.reason if learned is not None else None,
        effective_rate_since=learned.since if learned is not None else None,
        relays=learned.relays if learned is not None else [],
    )


async def _groups(conn: Connection, ids: list[int]) -> list[DeliveryResult]:
    return [
        DeliveryResult(
            issue_id=r["issue_id"],
            status=r["status"],
            smtp_code=r["smtp_code"],
            count=r["count"],
            tried=r["tried"],
            attempts=r["attempts"],
        )
        for r in await conn.fetch(QUERIES.stats_delivery_groups, ids)
    ]


async def _tallies(
    conn: Connection, ids: list[int]
) -> tuple[dict[int, _Tally], list[DeliveryResult]]:
    tallies = {i: _Tally() for i in ids}
    groups = await _groups(conn, ids)
    for group in groups:
        tallies[group.issue_id].add(group)
    for row in await conn.fetch(QUERIES.stats_sent_last_minute, ids):
        tallies[row["issue_id"]].sent_last_minute = row["count"]
    return tallies, groups


async def sends_per_minute(
    conn: Connection, issue_id: int, end: datetime, minutes: int = CHART_MINUTES
) -> list[MinuteCount]:
    rows = await conn.fetch(QUERIES.stats_sends_per_minute, issue_id, end, minutes)
    return [MinuteCount(minute=r["minute"], sent=r["sent"]) for r in rows]


async def issue_stats(db: Database, settings: Settings, issue_id: int) -> IssueStats:
    """Figures for one issue, with its per-minute send chart."""
    async with snapshot(db) as conn:
        header = await conn.fetchrow(QUERIES.stats_issue_header, issue_id)
        if header is None:
            raise missing("issue", issue_id)
        tallies, _ = await _tallies(conn, [issue_id])
        chart = await sends_per_minute(conn, issue_id, header["finished_at"] or header["as_of"])
        engagement = await _engagement(conn, [header])
        learned = await pace(conn, settings)
    return _build_issue(header, tallies[issue_id], rate_limit(settings), chart, engagement, learned)


async def current_issue(db: Database, settings: Settings) -> IssueStats | None:
    """The issue sending now, else the one that started last (what ops wants to watch)."""
    async with snapshot(db) as conn:
        headers = await conn.fetch(QUERIES.stats_recent_issues, 1)
        if not headers:
            return None
        header = headers[0]
        tallies, _ = await _tallies(conn, [header["id"]])
        chart = await sends_per_minute(conn, header["id"], header["finished_at"] or header["as_of"])
        engagement = await _engagement(conn, [header])
        learned = await pace(conn, settings)
    limit = rate_limit(settings)
    return _build_issue(header, tallies[header["id"]], limit, chart, engagement, learned)


async def overview(db: Database, settings: Settings, *, issue_limit: int = 10) -> Overview:
    """Audience by status, growth per day, and the recent issues' figures."""
    limit = rate_limit(settings)
    async with snapshot(db) as conn:
        by_status = {
            r["status"]: r["count"] for r in await conn.fetch(QUERIES.stats_subscriber_counts)
        }
        growth = await conn.fetch(QUERIES.stats_subscriber_growth, settings.timezone, GROWTH_DAYS)
        headers = await conn.fetch(QUERIES.stats_recent_issues, issue_limit)
        tallies, _ = await _tallies(conn, [h["id"] for h in headers])
        engagement = await _engagement(conn, headers)
        outbox = await conn.fetchrow(QUERIES.stats_outbox_depth)
        unverified = await conn.fetchval(QUERIES.unverified_bounce_count, UNVERIFIED_DAYS)
        learned = await pace(conn, settings)
    assert outbox is not None
    return Overview(
        subscribers={status: by_status.get(status, 0) for status in SUBSCRIBER_STATUSES},
        growth=[
            DayGrowth(
                day=r["day"],
                signups=r["signups"],
                confirmations=r["confirmations"],
                leaves=r["leaves"],
                imports=r["imports"],
            )
            for r in growth
        ],
        issues=[
            _build_issue(h, tallies[h["id"]], limit, None, engagement, learned) for h in headers
        ],
        outbox_queued=outbox["queued"],
        outbox_sending=outbox["sending"],
        as_of=outbox["as_of"],
        unverified_bounces=unverified,
        pace=learned,
    )


@dataclass(frozen=True, slots=True)
class ScheduledIssue:
    id: int
    title: str
    send_at: datetime


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The console's first page: what is next, what is going out, how the last one did."""

    next_scheduled: ScheduledIssue | None
    current: IssueStats | None  # sending or paused right now
    last_sent: IssueStats | None
    overview: Overview


async def dashboard(db: Database, settings: Settings) -> Dashboard:
    view = await overview(db, settings, issue_limit=5)
    current = next((i for i in view.issues if i.status in ("sending", "paused")), None)
    async with snapshot(db) as conn:
        upcoming = await conn.fetchrow(QUERIES.stats_next_scheduled)
        last_id: int | None = await conn.fetchval(QUERIES.stats_last_sent)
    last = await issue_stats(db, settings, last_id) if last_id is not None else None
    return Dashboard(
        next_scheduled=ScheduledIssue(upcoming["id"], upcoming["title"], upcoming["send_at"])
        if upcoming is not None
        else None,
        current=current,
        last_sent=last,
        overview=view,
    )


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    worker_id: str
    last_seen_at: datetime
    alive: bool  # heartbeat within the last minute


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """What /metrics reports from the database: the same for every process."""

    results: list[DeliveryResult]
    outbox_queued: int
    outbox_sending: int
    rates: dict[int, float]
    workers: list[WorkerBeat] | None = None  # None: no heartbeat table yet
    clicks: dict[tuple[int, int], int] = field(default_factory=dict)  # (issue, item)
    pace: Pace | None = None


async def metrics_snapshot(
    db: Database, settings: Settings, *, issue_limit: int = 10
) -> MetricsSnapshot:
    async with snapshot(db) as conn:
        headers = await conn.fetch(QUERIES.stats_recent_issues, issue_limit)
        tallies, groups = await _tallies(conn, [h["id"] for h in headers])
        outbox = await conn.fetchrow(QUERIES.stats_outbox_depth)
        beats = await workers(conn)
        engagement = await _engagement(conn, headers)
        learned = await pace(conn, settings)
    assert outbox is not None
    rates = {
        h["id"]: send_rate(tallies[h["id"]].sent_last_minute, h["started_at"], h["as_of"])
        for h in headers
    }
    return MetricsSnapshot(
        results=groups,
        outbox_queued=outbox["queued"],
        outbox_sending=outbox["sending"],
        rates=rates,
        workers=beats,
        clicks={
            (issue_id, item.news_item_id): item.clicks
            for issue_id, items in engagement.clicks.items()
            for item in items
        },
        pace=learned,
    )


HEARTBEAT_WINDOW_SECONDS = 60


async def worker_problems(conn: Connection) -> list[str]:
    """Why sending is stuck: an issue is 'sending' but no worker beat in the last minute."""
    row = await conn.fetchrow(QUERIES.readyz_worker_check)
    assert row is not None
    issue_ids: list[int] = list(row["sending_issue_ids"])
    if not issue_ids or row["live_workers"] > 0:
        return []
    last = row["last_heartbeat"]
    seen = f"last heartbeat {last.isoformat(timespec='seconds')}" if last else "no worker ever seen"
    ids = ", ".join(str(i) for i in issue_ids)
    return [
        f"issue {ids} is sending but no worker heartbeat in the last "
        f"{HEARTBEAT_WINDOW_SECONDS} s ({seen}); start `newsletter worker`"
    ]


async def workers(conn: Connection) -> list[WorkerBeat]:
    return [
        WorkerBeat(worker_id=r["worker_id"], last_seen_at=r["last_seen_at"], alive=r["alive"])
        for r in await conn.fetch(QUERIES.stats_workers)
    ]


def format_duration(seconds: float | None, units: tuple[str, str, str, str]) -> str:
    """``1 h 05 min`` / ``3분 07초``: units are (hours, minutes, seconds, unknown),
    each with the spacing its language wants before it."""
    hours_unit, minutes_unit, seconds_unit, unknown = units
    if seconds is None:
        return unknown
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}{hours_unit} {minutes:02d}{minutes_unit}"
    if minutes:
        return f"{minutes}{minutes_unit} {secs:02d}{seconds_unit}"
    return f"{secs}{seconds_unit}"
