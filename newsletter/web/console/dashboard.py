"""The console's first page: the next issue, the one going out, the last
one's results, and the audience over the last 30 days."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, get
from litestar.response import Template

from newsletter.ops import stats
from newsletter.ops.stats import DayGrowth
from newsletter.web.console.charts import Chart, bar_chart
from newsletter.web.console.render import render
from newsletter.web.console.roles import ANYONE
from newsletter.web.http.deps import DB, Config


def growth_chart(growth: list[DayGrowth]) -> Chart:
    labels = [f"{g.day.month}/{g.day.day}" for g in growth]
    signups = sum(g.signups for g in growth)
    imports = sum(g.imports for g in growth)
    leaves = sum(g.leaves for g in growth)
    return bar_chart(
        labels,
        [[g.signups for g in growth], [g.imports for g in growth]],
        y_title="명 / 일",
        x_title="날짜 (KST)",
        summary=f"최근 {len(growth)}일 하루 단위 새 구독자: 직접 신청 {signups:,}명, "
        f"명단 가져오기 {imports:,}명 (같은 기간 해지 {leaves:,}명)",
    )


@get("/", opt=ANYONE, media_type=MediaType.HTML)
async def dashboard(request: Request[Any, Any, Any], db: DB, settings: Config) -> Template:
    board = await stats.dashboard(db, settings)
    growth = board.overview.growth
    return render(
        request,
        "console/dashboard.html",
        title="대시보드",
        board=board,
        chart=growth_chart(growth),
        totals={
            "signups": sum(g.signups for g in growth),
            "imports": sum(g.imports for g in growth),
            "confirmations": sum(g.confirmations for g in growth),
            "leaves": sum(g.leaves for g in growth),
        },
    )


ROUTES = [dashboard]
