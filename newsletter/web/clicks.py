"""The click redirect in issues: ``/c/<issue>/<item>/<sig>`` → 302 to the item's link.

The busiest public route on the morning of an issue. Like ``POST /subscribe``
it reads the pool and settings from app state instead of declaring
dependencies (Litestar resolves those in a task group per request, which
costs more than this handler's own work), and the database is asked only for
a link not yet cached; the count itself is a dictionary increment
(newsletter/editorial/clicks.py writes the counts in batches).
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, Response, route
from litestar.enums import HttpMethod
from litestar.response import Template

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.editorial import clicks
from newsletter.ops import metrics
from newsletter.web.forms import message

# Nobody's webmail address travels on to the destination, no cache keeps a
# click from being seen, and search engines that find the link in the web
# archive do not index the redirect itself.
REDIRECT_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


@route(
    "/c/{issue:str}/{item:str}/{sig:str}",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    include_in_schema=False,
)
async def click(request: Request[Any, Any, Any]) -> Response[bytes] | Template:
    """302 to the news item's link; the click is counted unless it is not a person's."""
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    counter = clicks.counter_for(request.app.state, db)
    path = request.path_params
    ids = clicks.parse(path["issue"], path["item"], path["sig"], settings.secret_key)
    target = await counter.target(*ids) if ids is not None else None
    if ids is None or target is None:
        return _not_found(request.method)
    reason = clicks.not_counted(request.method, request.headers)
    if reason is None:
        counter.count(ids[0], ids[1], target, time.time())
    else:
        metrics.click_not_counted(reason)
    return Response(b"", status_code=302, headers={"Location": target.location, **REDIRECT_HEADERS})


def _not_found(method: str) -> Response[bytes] | Template:
    # A tampered or unknown link leads nowhere: no redirect to any address.
    if method == "HEAD":
        return Response(b"", status_code=404, headers={"Cache-Control": "no-store"})
    return message(
        "링크를 찾을 수 없습니다",
        "주소가 잘못되었거나 더 이상 쓰이지 않는 링크입니다.",
        "메일에 있는 링크를 그대로 눌러 주세요.",
        status=404,
    )


ROUTES = [click]
