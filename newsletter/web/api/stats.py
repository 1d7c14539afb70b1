"""Ops API: delivery and audience figures (ops or admin key)."""

from __future__ import annotations

from typing import Annotated

from litestar import Router, get
from litestar.params import QueryParameter

from newsletter.ops import stats
from newsletter.ops.stats import IssueStats, Overview
from newsletter.web.api.auth import SECURITY, provide_actor, requires
from newsletter.web.http.deps import DB, Config
from newsletter.web.http.params import RowId


@get("/stats", summary="Audience and delivery figures")
async def get_stats(
    db: DB,
    settings: Config,
    issues: Annotated[int, QueryParameter(ge=1, le=100)] = 10,
) -> Overview:
    """Subscribers by status, signups/confirmations/leaves per day for the last
    30 days, and the figures of the most recent issues (the sending one first).
    All figures come from one database snapshot."""
    return await stats.overview(db, settings, issue_limit=issues)


@get("/issues/{issue_id:int}/stats", summary="One issue's delivery figures and clicks")
async def get_issue_stats(db: DB, settings: Config, issue_id: RowId) -> IssueStats:
    """Recipients, queued, in flight (`sending`), sent, failed, bounced, skipped,
    attempts, send rate over the last minute, ETA, top SMTP error codes and
    messages accepted per minute over the last 30 minutes of the send; `clicks`
    per news item (`news_item_id`, `title`, `url`, `clicks`, `by_hour`), counted
    without knowing who clicked; `round` and `rounds` once failed deliveries
    were resent. `effective_rate_per_second` is the rate the relays allow now
    (all workers together: `rate_limit_per_second`, or lower after push-back),
    `effective_rate_reason` why ("relay pushed back: 450 4.7.1 …", null at the
    ceiling) and `effective_rate_since` when; `relays` what each relay of
    SMTP_URL sent, pushed back and refused, and its circuit breaker's state."""
    return await stats.issue_stats(db, settings, issue_id)


ROUTES = [
    Router(
        "/api/v1",
        route_handlers=[get_stats, get_issue_stats],
        guards=[requires("ops")],
        dependencies={"actor": provide_actor},
        security=SECURITY,
        tags=["ops"],
    )
]
