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
from functools import lru_cache
from typing import Any

from litestar import Request, route
from litestar.enums import HttpMethod
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.core.buckets import ip_bucket
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.editorial import clicks
from newsletter.ops import metrics
from newsletter.web.http.forms import client_ip
from newsletter.web.pages.shell import message, reader

# Nobody's webmail address travels on to the destination, no cache keeps a
# click from being seen, and search engines that find the link in the web
# archive do not index the redirect itself.
REDIRECT_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-robots-tag", b"noindex, nofollow"),
    (b"content-length", b"0"),
)
# The request headers the counting rule reads (ASGI gives names in lower case).
COUNTING_HEADERS = frozenset({b"user-agent", b"sec-purpose", b"purpose", b"x-purpose", b"x-moz"})
_EMPTY_BODY: Message = {"type": "http.response.body", "body": b"", "more_body": False}


class BareAnswer:
    """A response without a body, handed to the server as it is.

    Litestar's Response machinery (header containers, media types, content
    negotiation) costs more than everything else this route does; a redirect
    needs none of it.
    """

    __slots__ = ("headers", "status")

    def __init__(self, status: int, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        self.status = status
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A fresh message each time: middleware may add headers to it.
        await send(
            {"type": "http.response.start", "status": self.status, "headers": list(self.headers)}
        )
        await send(_EMPTY_BODY)


@lru_cache(maxsize=4096)
def _redirect(location: str) -> BareAnswer:
    return BareAnswer(302, ((b"location", location.encode("ascii")), *REDIRECT_HEADERS))


@lru_cache(maxsize=4096)
def _parse(issue: str, item: str, sig: str, secret: str) -> tuple[int, int] | None:
    # Every recipient's copy carries the same few links: check each signature once.
    return clicks.parse(issue, item, sig, secret)


@route(
    "/c/{issue:str}/{item:str}/{sig:str}",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    include_in_schema=False,
)
async def click(request: Request[Any, Any, Any]) -> ASGIApp:
    """302 to the news item's link; the click is counted unless it is not a person's."""
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    counter = clicks.counter_for(request.app.state, db)
    path = request.path_params
    ids = _parse(path["issue"], path["item"], path["sig"], settings.secret_key)
    target = await counter.target(*ids) if ids is not None else None
    if ids is None or target is None:
        return _not_found(request)
    headers = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in request.scope["headers"]
        if name in COUNTING_HEADERS
    }
    reason = clicks.not_counted(request.method, headers)
    if reason is None:
        # Without a usable client address (a proxy passing on garbage) nobody is
        # held to the per-client limit rather than everybody sharing one.
        ip = client_ip(request)
        counter.count(ids[0], ids[1], target, time.time(), ip_bucket(ip) if ip else None)
    else:
        metrics.click_not_counted(reason)
    return _redirect(target.location)


_HEAD_NOT_FOUND = BareAnswer(404, ((b"cache-control", b"no-store"), (b"content-length", b"0")))


def _not_found(request: Request[Any, Any, Any]) -> ASGIApp:
    # A tampered or unknown link leads nowhere: no redirect to any address.
    if request.method == "HEAD":
        return _HEAD_NOT_FOUND
    _ = reader(request).gettext
    page = message(
        request,
        _("링크를 찾을 수 없습니다"),
        _("주소가 잘못되었거나 더 이상 쓰이지 않는 링크입니다."),
        _("메일에 있는 링크를 그대로 눌러 주세요."),
        status=404,
    )
    asgi: ASGIApp = page.to_asgi_response(None, request)
    return asgi


ROUTES = [click]
