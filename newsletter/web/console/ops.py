"""The ops pages of the console: the live send and the service's health
(what ``/ops`` showed before, folded in), updating itself every few seconds
unless the person pauses it."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from litestar import MediaType, Request, get
from litestar.response import Template

from newsletter.editorial import issues
from newsletter.ops import stats, words
from newsletter.web.console.issues import send_chart
from newsletter.web.console.render import render
from newsletter.web.console.roles import OPS
from newsletter.web.http.deps import DB, Config
from newsletter.web.http.params import ChosenId

REFRESH_SECONDS = 5


async def _context(
    request: Request[Any, Any, Any], db: DB, settings: Config, chosen: int | None
) -> dict[str, Any]:
    figures = (
        await stats.issue_stats(db, settings, chosen)
        if chosen is not None
        else await stats.current_issue(db, settings)
    )
    view = await stats.overview(db, settings)
    async with stats.snapshot(db) as conn:
        workers = await stats.workers(conn)
        problems = await stats.worker_problems(conn)
    return {
        "figures": figures,
        "issue": await issues.get(db, figures.id) if figures is not None else None,
        "chart": send_chart(figures, ZoneInfo(settings.timezone)) if figures else None,
        "clicks": figures.clicks if figures is not None else None,
        "overview": view,
        "workers": workers,
        "alive": sum(1 for w in workers if w.alive),
        "problems": problems,
        "chosen": chosen,
        "refresh": REFRESH_SECONDS,
        "signups_30d": sum(g.signups for g in view.growth),
        "imports_30d": sum(g.imports for g in view.growth),
        "leaves_30d": sum(g.leaves for g in view.growth),
        "relay_words": words.RELAY_STATE,
        "rate_words": {"lowered": words.RATE_LOWERED, "ceiling": words.RATE_AT_CEILING},
    }


@get("/ops", opt=OPS, media_type=MediaType.HTML)
async def ops_page(
    request: Request[Any, Any, Any], db: DB, settings: Config, issue: ChosenId = None
) -> Template:
    return await _ops(request, db, settings, issue, "console/ops.html")


@get("/ops/live", opt=OPS, media_type=MediaType.HTML)
async def ops_live(
    request: Request[Any, Any, Any], db: DB, settings: Config, issue: ChosenId = None
) -> Template:
    return await _ops(request, db, settings, issue, "console/ops_live.html")


async def _ops(
    request: Request[Any, Any, Any], db: DB, settings: Config, issue: int | None, template: str
) -> Template:
    """The whole page, or the live part its script fetches: one context."""
    context = await _context(request, db, settings, issue)
    return render(request, template, title="발송 현황", **context)


ROUTES = [ops_page, ops_live]
