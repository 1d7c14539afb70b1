"""The editors' console at ``/admin``: server-rendered Korean pages for people.

Every route sits behind :func:`gate.gate` (session, same-origin and CSRF
checks, role); each module lists its handlers in ``ROUTES``. Errors become
Korean pages here, not the API's JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from litestar import Request, Router
from litestar.datastructures import ResponseHeader, State
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Template

from newsletter.core.errors import DomainError
from newsletter.web.console import (
    account,
    dashboard,
    deliveries,
    issues,
    login,
    news,
    ops,
    people,
    subscribers,
)
from newsletter.web.console.gate import Refused, gate
from newsletter.web.console.korean import explain
from newsletter.web.console.render import forget_shown_flash, message_page, refused_page

log = logging.getLogger("newsletter.console")

# The console's own policy, strict: scripts and styles only from our origin
# (no inline ones anywhere), no framing but its own preview frame. Images may
# come from the news items' own https addresses. The preview route sets the
# mail's own, looser policy on its answer.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https:; "
    "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)
HEADERS = [
    ResponseHeader(name="Content-Security-Policy", value=CONSOLE_CSP),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Referrer-Policy", value="same-origin"),
    ResponseHeader(name="Cache-Control", value="no-store"),
]

HTTP_HEADINGS = {
    400: "요청을 이해할 수 없습니다",
    404: "찾을 수 없습니다",
    405: "이 방법으로는 열 수 없습니다",
    413: "파일이 너무 큽니다",
    429: "요청이 너무 많습니다",
}


def _refused(request: Request[Any, Any, Any], exc: Refused) -> Template:
    return refused_page(request, exc)


def _domain(request: Request[Any, Any, Any], exc: DomainError) -> Template:
    heading = HTTP_HEADINGS.get(exc.status, "처리할 수 없습니다")
    return message_page(request, heading, explain(exc), status=exc.status)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Template:
    status = exc.status_code if exc.status_code < 500 else 500
    heading = HTTP_HEADINGS.get(status, "처리할 수 없습니다")
    text = {
        404: "주소가 잘못되었거나, 이미 지워진 항목입니다.",
        405: "화면의 단추나 링크로 다시 시도해 주세요.",
        413: "보낸 내용이 허용된 크기를 넘었습니다.",
    }.get(status, "입력한 값을 확인한 뒤 다시 시도해 주세요.")
    if isinstance(exc, ValidationException) or status == 400:
        text = "주소나 입력값이 올바르지 않습니다. 화면의 링크로 다시 시도해 주세요."
    page = message_page(request, heading, text, status=status)
    if exc.headers:
        page.headers.update(exc.headers)
    return page


def http_error_page(request: Request[Any, Any, Any], exc: HTTPException) -> Template:
    """The console's page for what Litestar refuses before any console route
    runs (an unknown ``/admin`` address, a wrong method), with the headers its
    routes carry."""
    page = _http(request, exc)
    page.headers.update({header.name: header.value for header in HEADERS if header.value})
    return page


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Template:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return message_page(
        request,
        "문제가 생겼습니다",
        "요청을 처리하지 못했습니다. 잠시 뒤 다시 시도하고, 계속되면 운영 담당에게 알려 주세요.",
        status=500,
    )


ROUTES: list[Any] = [
    Router(
        "/admin",
        route_handlers=[
            *login.ROUTES,
            *dashboard.ROUTES,
            *news.ROUTES,
            *issues.ROUTES,
            *deliveries.ROUTES,
            *ops.ROUTES,
            *subscribers.ROUTES,
            *people.ROUTES,
            *account.ROUTES,
        ],
        before_request=gate,
        response_headers=HEADERS,
        after_response=forget_shown_flash,
        exception_handlers={
            Refused: _refused,
            DomainError: _domain,
            # Named here too: the app's JSON answer for it would win otherwise.
            ValidationException: _http,
            HTTPException: _http,
            Exception: _unexpected,
        },
        include_in_schema=False,
    )
]


async def stop_background_work(state: State) -> None:
    """At shutdown: CSV imports still running are cancelled (their transaction
    rolls back, their job row says so) rather than cut off mid-write."""
    running: set[asyncio.Task[None]] = state.get("import_tasks") or set()
    for task in list(running):
        task.cancel()
    for task in list(running):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
