"""How console handlers answer: a page with the shared context, a redirect
after a POST with a message for the next page, or a page that says one thing.

:func:`render` adds who is logged in, the menu for their role, the CSRF
token and the message the previous request left; :func:`done` answers a
successful POST; :func:`message_page` a refusal or an error. Who may ask at
all is decided before, in :mod:`gate`.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response
from litestar.response import Redirect, Template

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.ops import sessions
from newsletter.ops.sessions import Session
from newsletter.web.console.gate import Refused, expected_csrf, maybe_session

# Console sections, in menu order: (path, label, role needed).
SECTIONS = (
    ("/admin", "대시보드", "any"),
    ("/admin/news", "뉴스", "editor"),
    ("/admin/issues", "뉴스레터 발행", "any"),
    ("/admin/ops", "발송 현황", "ops"),
    ("/admin/subscribers", "구독자", "admin"),
    ("/admin/users", "계정", "admin"),
    ("/admin/audit", "변경 기록", "admin"),
)


def _state(request: Request[Any, Any, Any]) -> tuple[Database, Settings]:
    return request.app.state.db, request.app.state.settings


def sections_for(session: Session | None) -> list[dict[str, str]]:
    if session is None or not session.complete:
        return []
    user = session.user
    return [
        {"href": href, "label": label}
        for href, label, role in SECTIONS
        if role == "any" or user.allows(role)
    ]


def render(
    request: Request[Any, Any, Any],
    template: str,
    *,
    status: int = 200,
    title: str,
    errors: dict[str, str] | None = None,
    csrf: str | None = None,
    **context: Any,
) -> Template:
    """A console page: the template plus who is logged in, the menu, the CSRF
    token and the message left by the previous request. A page with errors
    says so in its title, as screen readers announce the title first."""
    session = maybe_session(request)
    _, settings = _state(request)
    flash = session.flash if session is not None else None
    if flash is not None and session is not None and request.method == "GET":
        request.state.clear_flash = True
    problems = errors or {}
    csrf = csrf or expected_csrf(request, settings) or ""
    path = request.url.path
    nav = sections_for(session)
    current = max(
        (s["href"] for s in nav if path == s["href"] or path.startswith(s["href"] + "/")),
        key=len,
        default=None,
    )
    return Template(
        template_name=template,
        status_code=status,
        media_type=MediaType.HTML,
        context={
            "session": session,
            "user": session.user if session is not None and session.complete else None,
            "csrf_token": csrf,
            "nav": nav,
            "current_section": current,
            "flash": flash,
            "title": ("입력 오류: " if problems else "") + title,
            "errors": problems,
            "oidc_label": settings.oidc_label if settings.oidc_enabled else None,
            **context,
        },
    )


async def forget_shown_flash(request: Request[Any, Any, Any]) -> None:
    """Once a page has shown the message, forget it (the router's after_response)."""
    session = maybe_session(request)
    if session is not None and request.state.get("clear_flash"):
        db, _ = _state(request)
        await sessions.clear_flash(db, session)


async def done(
    request: Request[Any, Any, Any], path: str, flash: str | None = None
) -> Response[Any]:
    """The answer to a successful POST: back to a page, with a message on it."""
    session = maybe_session(request)
    db, _ = _state(request)
    if flash and session is not None:
        await sessions.set_flash(db, session, flash)
    if request.headers.get("hx-request") and not request.headers.get("hx-boosted"):
        return Response(b"", status_code=200, headers={"HX-Redirect": path})
    return Redirect(path=path, status_code=303)


def message_page(
    request: Request[Any, Any, Any],
    heading: str,
    text: str,
    *,
    status: int,
    back: str | None = None,
    back_label: str | None = None,
) -> Template:
    """A page that says one thing (a refusal, an error) and where to go back to."""
    return render(
        request,
        "console/message.html",
        status=status,
        title=heading,
        heading=heading,
        text=text,
        back=back,
        back_label=back_label,
    )


def refused_page(request: Request[Any, Any, Any], refused: Refused) -> Template:
    return message_page(request, refused.heading, refused.text, status=refused.status)
