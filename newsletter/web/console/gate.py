"""Who is at the console, and whether their request may go ahead.

:func:`gate` runs before every ``/admin`` handler (the router's
``before_request``):

1. the session cookie is looked up in PostgreSQL (``ops.sessions``);
2. a request that changes something (anything but GET/HEAD) must come from
   our own origin (``Origin``, else ``Referer``) and carry the session's
   CSRF token, as the form field ``csrf_token`` or the ``X-CSRF-Token``
   header (htmx sends it from ``hx-headers``). Before login, the token is
   derived from a random pre-login cookie instead (login CSRF);
3. the handler's ``opt["role"]`` decides who may see it: ``None`` for the
   login pages, ``"any"`` for every logged-in person, else a role (admins
   pass every role).

Handlers take the session with :func:`session_of` and answer with
:func:`render` (a console page with the shared context) or :func:`done`
(redirect after a POST, with a one-line message for the next page).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import quote, urlsplit

from litestar import MediaType, Request, Response
from litestar.datastructures import Cookie
from litestar.response import Redirect, Template

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.ops import sessions, words
from newsletter.ops.sessions import Session
from newsletter.web.http import forms

COOKIE = "nl_session"
LOGIN_COOKIE = "nl_login"  # pre-login nonce: the login form's CSRF token is derived from it
COOKIE_PATH = "/admin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
AUTO_UPDATE_HEADER = "x-auto-update"  # set by console.js on automatic refreshes
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

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

ROLE_NEEDED = {
    "editor": "편집자 또는 관리자",
    "ops": "운영 담당 또는 관리자",
    "admin": "관리자",
}


class Refused(Exception):
    """A request the gate turns away before its handler runs."""

    def __init__(self, status: int, heading: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.heading = heading
        self.text = text


def _state(request: Request[Any, Any, Any]) -> tuple[Database, Settings]:
    return request.app.state.db, request.app.state.settings


def client_ip(request: Request[Any, Any, Any]) -> str | None:
    """The client's IP address, or None when a proxy passed on something else."""
    return forms.client_ip(request)


def session_of(request: Request[Any, Any, Any]) -> Session:
    """The logged-in session (the gate has already refused anyone else)."""
    session: Session | None = request.state.get("session")
    assert session is not None, "route without opt['role'] asked for a session"
    return session


def maybe_session(request: Request[Any, Any, Any]) -> Session | None:
    session: Session | None = request.state.get("session")
    return session


# --- origin and CSRF -------------------------------------------------------------


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request[Any, Any, Any], settings: Settings) -> bool:
    """The request was made by a page of ours: its Origin (or, from older
    browsers, its Referer) is the public URL or the address it reached us at.
    Requests naming neither (curl) are left to the CSRF token alone."""
    claimed = request.headers.get("origin")
    if claimed is None:
        referer = request.headers.get("referer")
        if not referer:
            return True
        claimed = _origin(referer)
    if claimed.strip().lower() == "null":
        return False
    own = {_origin(settings.base_url), _origin(str(request.base_url))}
    return claimed.strip().lower().rstrip("/") in own


def login_token(settings: Settings, nonce: str) -> str:
    """The pre-login form's CSRF token: only a page that set the nonce cookie knows it."""
    return hmac.new(
        settings.secret_key.encode(), b"console-login:" + nonce.encode(), hashlib.sha256
    ).hexdigest()


def expected_csrf(request: Request[Any, Any, Any], settings: Settings) -> str | None:
    session = maybe_session(request)
    if session is not None:
        return session.csrf_token
    nonce = request.cookies.get(LOGIN_COOKIE)
    return login_token(settings, nonce) if nonce else None


def csrf_matches(request: Request[Any, Any, Any], settings: Settings, sent: str | None) -> bool:
    expected = expected_csrf(request, settings)
    given = sent or request.headers.get(CSRF_HEADER) or ""
    return expected is not None and bool(given) and hmac.compare_digest(given, expected)


def refuse_csrf() -> Refused:
    return Refused(
        403,
        "요청을 처리할 수 없습니다",
        "보안 확인 값(CSRF 토큰)이 없거나 맞지 않습니다. 페이지를 새로 고친 뒤 다시 시도해 주세요.",
    )


def login_nonce_cookie(settings: Settings, nonce: str) -> Cookie:
    return Cookie(
        key=LOGIN_COOKIE,
        value=nonce,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        max_age=3600,
    )


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def session_cookie(settings: Settings, token: str) -> Cookie:
    # No max-age: the browser forgets it when it closes; the server ends it
    # after the idle timeout or the maximum session length anyway.
    return Cookie(
        key=COOKIE,
        value=token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def cleared_session_cookie(settings: Settings) -> Cookie:
    return Cookie(
        key=COOKIE,
        value="",
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        max_age=0,
    )


# --- the gate ----------------------------------------------------------------------


def _login_redirect(request: Request[Any, Any, Any]) -> Response[Any]:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    location = "/admin/login" + ("" if target == "/admin" else "?next=" + quote(target, safe="/"))
    if request.headers.get("hx-request"):
        # htmx would swap the login page into a fragment; send the whole page there.
        return Response(b"", status_code=200, headers={"HX-Redirect": location})
    return Redirect(path=location, status_code=303)


async def gate(request: Request[Any, Any, Any]) -> Response[Any] | None:
    db, settings = _state(request)
    opt = request.route_handler.opt
    token = request.cookies.get(COOKIE)
    session = None
    if token:
        passive = request.headers.get(AUTO_UPDATE_HEADER) == "1"
        session = await sessions.load(db, settings, token, touch=not passive)
    request.state.session = session
    if request.method not in SAFE_METHODS:
        if not same_origin(request, settings):
            raise Refused(
                403,
                "요청을 처리할 수 없습니다",
                "다른 사이트에서 보낸 요청은 받지 않습니다. 콘솔 화면에서 다시 시도해 주세요.",
            )
        # Streamed uploads check the token themselves once the field is read.
        if opt.get("csrf", "form") == "form":
            form = await request.form()
            sent = form.get(CSRF_FIELD)
            if not csrf_matches(request, settings, sent if isinstance(sent, str) else None):
                raise refuse_csrf()
    role = opt.get("role")
    if role is None:
        return None
    if session is None:
        return _login_redirect(request)
    if not session.complete:
        return Redirect(path="/admin/login/second-factor", status_code=303)
    if session.user.must_change_password and not opt.get("while_password_due"):
        return Redirect(path="/admin/account/password", status_code=303)
    if role != "any" and not session.user.allows(role):
        raise Refused(
            403,
            "권한이 없습니다",
            f"이 화면은 {ROLE_NEEDED.get(role, role)}만 쓸 수 있습니다. "
            f"지금 계정은 {words.role(session.user.role)} 계정입니다.",
        )
    return None


# --- answering -------------------------------------------------------------------


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
