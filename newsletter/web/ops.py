"""Ops HTTP surface: ``GET /metrics`` and the read-only ``/ops`` page.

The page works without JavaScript: the server renders the progress bar and the
per-minute chart (inline SVG), and ``<meta http-equiv="refresh">`` reloads it.
Access: an ops or admin key, either as ``Authorization: Bearer`` (scripts,
curl) or typed once into the login form, which sets an HttpOnly, SameSite
cookie holding only the signed key id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from newsletter.core.clock import clock as city_clock
from newsletter.core.settings import Settings
from newsletter.ops import metrics, stats
from newsletter.ops.access import SESSION_MAX_AGE_SECONDS, read_session, session_key, sign_session
from newsletter.ops.apikeys import ApiKey, authenticate
from newsletter.ops.stats import IssueStats, MinuteCount
from newsletter.web.deps import DB, Config

KOREAN_UNITS = ("시간", "분", "초", "—")

COOKIE = "nl_ops"
REFRESH_SECONDS = 5
LOGIN_BODY_LIMIT = 4 * 1024
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


# --- /metrics ----------------------------------------------------------------


@get("/metrics", media_type=metrics.CONTENT_TYPE_LATEST, tags=["ops"])
async def metrics_endpoint(db: DB, settings: Config) -> Response[bytes]:
    """Prometheus text format. Delivery figures come from the database (the same
    whichever process answers); HTTP figures are this process's own."""
    snapshot: stats.MetricsSnapshot | None
    try:
        snapshot = await stats.metrics_snapshot(db, settings)
    except DB_ERRORS:
        snapshot = None  # still answer: process metrics plus newsletter_database_up 0
    body = metrics.process_exposition() + metrics.database_exposition(snapshot)
    return Response(body, media_type=metrics.CONTENT_TYPE_LATEST)


# --- who is looking ------------------------------------------------------------


async def _viewer(request: Request[Any, Any, Any], db: DB, settings: Settings) -> ApiKey | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    async with db.pool.acquire(timeout=stats.ACQUIRE_TIMEOUT_SECONDS) as conn:
        key: ApiKey | None = None
        if scheme.lower() == "bearer" and value.strip():
            key = await authenticate(conn, value.strip())
        elif token := request.cookies.get(COOKIE):
            key_id = read_session(settings.secret_key, token)
            key = await session_key(conn, key_id) if key_id is not None else None
    return key if key is not None and key.allows("ops") else None


def _login(error: str | None = None, status: int = 200) -> Template:
    return Template(template_name="ops_login.html", context={"error": error}, status_code=status)


@post("/ops/login", request_max_body_size=LOGIN_BODY_LIMIT, include_in_schema=False)
async def ops_login(request: Request[Any, Any, Any], db: DB, settings: Config) -> Response[Any]:
    form = await request.form()
    raw = form.get("key", "")
    typed = raw.strip() if isinstance(raw, str) else ""
    if not typed:
        return _login("API 키를 입력해 주세요. (Enter an ops API key.)", 400)
    async with db.pool.acquire(timeout=stats.ACQUIRE_TIMEOUT_SECONDS) as conn:
        key = await authenticate(conn, typed)
    if key is None:
        return _login("유효하지 않거나 폐기된 키입니다. (Invalid or revoked key.)", 401)
    if not key.allows("ops"):
        return _login(f"ops 권한이 필요합니다. 이 키는 {key.role} 키입니다.", 403)
    cookie = Cookie(
        key=COOKIE,
        value=sign_session(settings.secret_key, key.id),
        max_age=SESSION_MAX_AGE_SECONDS,
        path="/ops",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return Redirect(path="/ops", status_code=303, cookies=[cookie])


@post("/ops/logout", include_in_schema=False)
async def ops_logout() -> Redirect:
    redirect = Redirect(path="/ops", status_code=303)
    redirect.delete_cookie(COOKIE, path="/ops")
    return redirect


# --- the page ------------------------------------------------------------------

CHART_WIDTH = 600
CHART_HEIGHT = 160


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    sent: int
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    bars: list[Bar]
    limit_y: float | None  # where the rate limit (per minute) sits, if on the scale
    limit_per_minute: float
    peak: int
    first_label: str
    last_label: str


def _chart(series: list[MinuteCount], limit_per_second: float, zone: ZoneInfo) -> Chart:
    limit_per_minute = limit_per_second * 60
    peak = max((m.sent for m in series), default=0)
    ceiling = max(peak, 1) * 1.15
    show_limit = limit_per_minute <= ceiling * 2
    if show_limit:
        ceiling = max(ceiling, limit_per_minute * 1.05)
    slot = CHART_WIDTH / max(len(series), 1)
    bars = []
    for index, minute in enumerate(series):
        height = CHART_HEIGHT * minute.sent / ceiling
        bars.append(
            Bar(
                x=round(index * slot + 1, 1),
                y=round(CHART_HEIGHT - height, 1),
                width=round(max(slot - 2, 1), 1),
                height=round(height, 1),
                sent=minute.sent,
                label=minute.minute.astimezone(zone).strftime("%H:%M"),
            )
        )
    return Chart(
        bars=bars,
        limit_y=round(CHART_HEIGHT * (1 - limit_per_minute / ceiling), 1) if show_limit else None,
        limit_per_minute=limit_per_minute,
        peak=peak,
        first_label=bars[0].label if bars else "",
        # The axis says its zone once, at its right end.
        last_label=f"{bars[-1].label} {series[-1].minute.astimezone(zone).tzname()}"
        if bars
        else "",
    )


@get("/ops", include_in_schema=False)
async def ops_page(
    request: Request[Any, Any, Any],
    db: DB,
    settings: Config,
    issue: FromQuery[int | None] = None,
) -> Template:
    viewer = await _viewer(request, db, settings)
    if viewer is None:
        if request.headers.get("authorization"):
            return _login("유효하지 않은 키입니다. (Invalid key.)", 401)
        return _login()
    zone = ZoneInfo(settings.timezone)

    def clock(moment: datetime | None) -> str:
        return city_clock(moment, zone)

    overview = await stats.overview(db, settings)
    focus: IssueStats | None
    if issue is not None:
        focus = await stats.issue_stats(db, settings, issue)
    else:
        focus = await stats.current_issue(db, settings)
    context = {
        "viewer": viewer,
        "overview": overview,
        "focus": focus,
        "chart": _chart(focus.sends_per_minute, focus.rate_limit_per_second, zone)
        if focus
        else None,
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "eta": stats.format_duration(focus.eta_seconds, KOREAN_UNITS) if focus else "—",
        "eta_at": clock(focus.eta_at) if focus and focus.eta_seconds else "—",
        "started": clock(focus.started_at) if focus else "—",
        "finished": clock(focus.finished_at) if focus else "—",
        "as_of": clock(overview.as_of),
        "clock": clock,
        "refresh": REFRESH_SECONDS,
    }
    return Template(template_name="ops.html", context=context, media_type=MediaType.HTML)


ROUTES = [metrics_endpoint, ops_login, ops_logout, ops_page]
