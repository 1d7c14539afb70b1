"""Who is at the console, and whether their request may go ahead.

:func:`gate` runs before every ``/admin`` handler (the router's
``before_request``):

1. the session cookie is looked up in PostgreSQL (``ops.sessions``);
2. a request that changes something (anything but GET/HEAD) must come from
   our own origin (``Origin``, else ``Referer``) and carry the session's
   CSRF token, as the ``X-CSRF-Token`` header (htmx sends it from
   ``hx-headers``) or the form field ``csrf_token``. Before login, the token
   is derived from a random pre-login cookie instead (login CSRF). Nothing
   of the body is read until we know who is asking: a POST to a page that
   needs a login without a session, or to the login pages without the
   pre-login cookie, is refused unread; the form of anyone else is read
   within the bounds of ``web/http/forms.py``;
3. the handler's ``opt["role"]`` decides who may see it: ``None`` for the
   login pages, ``"any"`` for every logged-in person, else a role (admins
   pass every role).

Handlers take the session with :func:`session_of`; how they answer is in
:mod:`newsletter.web.console.render`, the cookies in
:mod:`newsletter.web.console.cookies`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import quote, urlsplit

from litestar import Request, Response
from litestar.response import Redirect

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.ops import sessions, words
from newsletter.ops.sessions import Session
from newsletter.web.console.cookies import LOGIN_COOKIE, SESSION_COOKIE
from newsletter.web.http import forms

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
AUTO_UPDATE_HEADER = "x-auto-update"  # set by console.js on automatic refreshes
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def who_may(role: str) -> str:
    """Who may use a page that needs ``role``, in words: admins pass every guard."""
    return words.role(role) if role == "admin" else f"{words.role(role)} 또는 {words.role('admin')}"


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


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


async def _csrf_sent(request: Request[Any, Any, Any], settings: Settings) -> bool:
    """The request carries the token: in its header (the body stays unread),
    else in its form, read within the bounds every form has."""
    if request.headers.get(CSRF_HEADER):
        return csrf_matches(request, settings, None)
    sent = (await request.form()).get(CSRF_FIELD)
    return csrf_matches(request, settings, sent if isinstance(sent, str) else None)


def refuse_csrf() -> Refused:
    return Refused(
        403,
        "요청을 처리할 수 없습니다",
        "보안 확인 값(CSRF 토큰)이 없거나 맞지 않습니다. 페이지를 새로 고친 뒤 다시 시도해 주세요.",
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
    role = opt.get("role")
    token = request.cookies.get(SESSION_COOKIE)
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
        # Who is asking comes before the body: reading and parsing a form
        # costs the server, so a stranger's never is (a pre-login nonce, which
        # anyone can fetch, opens only the small login forms).
        if expected_csrf(request, settings) is None or (role is not None and session is None):
            raise refuse_csrf()
        # Streamed uploads check the token themselves once the field is read.
        if opt.get("csrf", "form") == "form" and not await _csrf_sent(request, settings):
            raise refuse_csrf()
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
            f"이 화면은 {who_may(role)}만 쓸 수 있습니다. "
            f"지금 계정은 {words.role(session.user.role)} 계정입니다.",
        )
    return None
