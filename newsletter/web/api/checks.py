"""``GET /api/v1/issues/{id}/checks``: the pre-send check (editor).

Answers the kept result when the issue's content has not changed since it
was run (at once), otherwise runs it (a few seconds: links and images are
asked over the network). ``?again=true`` runs it anew whatever is kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get
from litestar.params import FromQuery, Parameter

from newsletter.editorial import checks as presend
from newsletter.web.api.auth import SECURITY, requires
from newsletter.web.http.deps import DB, Config
from newsletter.web.http.params import RowId

Id = Annotated[RowId, Parameter(description="issue id")]


class CheckOut(msgspec.Struct):
    id: str
    status: str
    detail: str
    where: dict[str, Any] | None


class ChecksOut(msgspec.Struct):
    issue_id: int
    content_version: str
    checked_at: datetime
    stale: bool
    problems: int
    warnings: int
    checks: list[CheckOut]

    @classmethod
    def of(cls, report: presend.Report, language: str = "en") -> ChecksOut:
        return cls(
            issue_id=report.issue_id,
            content_version=report.content_version,
            checked_at=report.checked_at,
            stale=report.stale,
            problems=len(report.problems),
            warnings=len(report.warnings),
            checks=[CheckOut(f.id, f.status, f.detail(language), f.where) for f in report.findings],
        )


@get("/issues/{issue_id:int}/checks", summary="Pre-send check")
async def issue_checks(
    request: Request[Any, Any, Any],
    db: DB,
    settings: Config,
    issue_id: Id,
    again: FromQuery[bool] = False,
) -> ChecksOut:
    """Links, images, size, reading, subject and preview text, recipients and
    the sending domain's DNS, each `ok`, `warning` or `problem`."""
    policy = request.app.state.feed_policy  # which private addresses tests may reach
    report = await presend.run(db, settings, issue_id, policy, again=again)
    return ChecksOut.of(report)


ROUTES = [
    Router(
        path="/api/v1",
        route_handlers=[issue_checks],
        guards=[requires("editor")],
        security=SECURITY,
        tags=["issues"],
    )
]
