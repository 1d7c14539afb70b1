"""Counts every HTTP request of this web process by route template and status.

The route label is the template (``/api/v1/issues/{issue_id}/stats``), never
the raw path, so ids and probes of random URLs cannot blow up the number of
series. Requests that match no route are not seen here (Litestar answers 404
before route middleware runs).
"""

from __future__ import annotations

import time

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.ops.metrics import HTTP_REQUESTS, HTTP_SECONDS


class RequestMetrics(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, send_and_note)
        except HTTPException as exc:
            status = exc.status_code
            raise
        finally:
            route = scope.get("path_template") or "unmatched"
            HTTP_REQUESTS.labels(scope.get("method", "GET"), route, str(status)).inc()
            HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
