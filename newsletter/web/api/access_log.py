"""``GET /api/v1/access-log``: the privacy officer's view of who read which
personal data (admin). Reading it is itself recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get
from litestar.params import QueryParameter

from newsletter.core.kinds import MAX_ID
from newsletter.ops.access_log import AccessFilter, read_entries
from newsletter.web.api.auth import SECURITY, provide_actor, requires
from newsletter.web.http.deps import DB, Who
from newsletter.web.http.forms import client_ip
from newsletter.web.http.params import QueryText


class AccessOut(msgspec.Struct):
    id: int
    occurred_at: datetime
    actor: str  # api_key:3, user:5, cli
    actor_name: str
    role: str
    ip: str | None
    action: str
    description: str  # the action in Korean, as a report would say it
    subscriber_ids: list[int]
    query: dict[str, Any]
    rows: int | None


class AccessPage(msgspec.Struct):
    items: list[AccessOut]
    next_before: int | None


@get("/access-log", summary="Who read which personal data (newest first)")
async def access_log(
    request: Request[Any, Any, Any],
    db: DB,
    actor: Who,
    since: Annotated[datetime | None, QueryParameter(description="from this time on")] = None,
    until: Annotated[datetime | None, QueryParameter(description="before this time")] = None,
    who: QueryText = None,
    subscriber_id: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
    action: QueryText = None,
    before: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> AccessPage:
    """Each entry: when, who (`actor`: the key, person or command line; `ip`),
    what (`action`, `query`) and whose data (`subscriber_ids`). Filter by time,
    by `who` (a name or `api_key:3`), by subscriber or by action; pass
    `next_before` as `before` for the next page. Times are UTC (ISO 8601)."""
    wanted = AccessFilter(
        since=since,
        until=until,
        actor=who,
        subscriber_id=subscriber_id,
        action=action,
        before=before,
        limit=limit,
    )
    async with db.transaction() as conn:
        found = await read_entries(conn, actor, client_ip(request), wanted)
    items = [
        AccessOut(
            e.id,
            e.occurred_at,
            e.actor_ref,
            e.actor_name,
            e.role,
            e.ip,
            e.action,
            e.described,
            e.subscriber_ids,
            e.query,
            e.rows,
        )
        for e in found
    ]
    return AccessPage(items, found[-1].id if len(found) == limit else None)


ROUTES = [
    Router(
        "/api/v1",
        route_handlers=[access_log],
        guards=[requires("admin")],
        dependencies={"actor": provide_actor},
        security=SECURITY,
        tags=["privacy"],
    )
]
