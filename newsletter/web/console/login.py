"""Logging in and out of the console: password, second factor (TOTP), SSO.

A login that passes the password starts a session in the ``password`` stage
when a second factor is due (enrolled, or required by an admin and not yet
set up); the code, or the enrolment, then replaces it with a fresh ``full``
session (a new token, so a token seen before the second factor never becomes
a login). Every attempt is counted before it is checked (against the
client address and the account, see ``ops.sessions``) and forgiven when
right; past the limit the answer is 429 with ``Retry-After``. A full login
leaves the browser a device cookie that keeps it clear of guessers' limits.
"""

from __future__ import annotations

from typing import Any

import segno
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.response import Redirect, Template

from newsletter.core.errors import DomainError
from newsletter.core.text import is_fit
from newsletter.ops import oidc, sessions, users
from newsletter.ops.audit import record
from newsletter.ops.sessions import Session
from newsletter.ops.users import User
from newsletter.web.console.cookies import (
    LOGIN_COOKIE,
    LOGIN_NONCE_SECONDS,
    SESSION_COOKIE,
    console_cookie,
)
from newsletter.web.console.gate import client_ip, login_token, maybe_session, new_login_nonce
from newsletter.web.console.korean import explain
from newsletter.web.console.render import render
from newsletter.web.http.deps import DB, Config

LOGIN_BODY_LIMIT = 8 * 1024
SECOND_FACTOR = "/admin/login/second-factor"


def safe_next(value: Any) -> str:
    """Only a console path of ours: never another site (open redirect)."""
    if not isinstance(value, str) or not value.startswith("/admin") or value.startswith("//"):
        return "/admin"
    if any(c in value for c in "\\\r\n") or value.startswith("/admin/login"):
        return "/admin"
    return value


def _text(form: Any, name: str, limit: int = 320) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _login_page(
    request: Request[Any, Any, Any],
    *,
    status: int = 200,
    email: str = "",
    error: str | None = None,
    next_path: str = "/admin",
    notice: str | None = None,
) -> Template:
    """The login form, with the pre-login nonce cookie its CSRF token is derived from."""
    settings = request.app.state.settings
    nonce = request.cookies.get(LOGIN_COOKIE) or new_login_nonce()
    page = render(
        request,
        "console/login.html",
        status=status,
        title="오류: 로그인" if error else "로그인",
        csrf=login_token(settings, nonce),
        email=email,
        login_error=error,
        next_path=next_path,
        notice=notice,
    )
    page.cookies.append(console_cookie(settings, LOGIN_COOKIE, nonce, max_age=LOGIN_NONCE_SECONDS))
    return page


@get("/login", opt={"role": None}, media_type=MediaType.HTML)
async def login_form(request: Request[Any, Any, Any]) -> Response[Any]:
    session = maybe_session(request)
    next_path = safe_next(request.query_params.get("next"))
    if session is not None and session.complete:
        return Redirect(path=next_path, status_code=303)
    notice = "로그아웃했습니다." if request.query_params.get("bye") else None
    if request.query_params.get("expired"):
        notice = "오래 쓰지 않아 로그아웃되었습니다. 다시 로그인해 주세요."
    return _login_page(request, next_path=next_path, notice=notice)


def _too_many(request: Request[Any, Any, Any], wait: int, email: str, next_path: str) -> Template:
    minutes = max(1, (wait + 59) // 60)
    page = _login_page(
        request,
        status=429,
        email=email,
        next_path=next_path,
        error=f"로그인 시도가 너무 많습니다. {minutes}분 뒤에 다시 시도해 주세요.",
    )
    page.headers["Retry-After"] = str(wait)
    return page


async def _begin(
    request: Request[Any, Any, Any],
    db: DB,
    settings: Config,
    user: User,
    next_path: str,
    *,
    second_factor_done: bool = False,
) -> Response[Any]:
    """Password (or SSO) accepted: a full session, or one waiting for the
    second factor. The old session, if any, ends: each stage has its own token."""
    due = user.totp_enabled or user.needs_totp_enrolment
    stage = "full" if second_factor_done or not due else "password"
    async with db.transaction() as conn:
        old = maybe_session(request)
        if old is not None:
            await sessions.end(conn, old)
        token = await sessions.start(
            conn,
            settings,
            user,
            stage=stage,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
        if stage == "full":
            await conn.execute(db.queries.touch_user_login, user.id)
            await record(
                conn,
                user.actor,
                "user.login",
                f"user:{user.id}",
                ip=client_ip(request),
                second_factor=second_factor_done,
            )
    target = next_path if stage == "full" else f"{SECOND_FACTOR}?next={next_path}"
    response = Redirect(path=target, status_code=303)
    response.cookies.append(console_cookie(settings, SESSION_COOKIE, token))
    if stage == "full":
        response.cookies.append(_device_cookie(request, settings, user))
    return response


def _device_cookie(request: Request[Any, Any, Any], settings: Config, user: User) -> Cookie:
    """This browser has logged in to the account: it keeps its own throttle
    bucket from now on (see ``sessions``), for a year from its last login."""
    return Cookie(
        key=sessions.DEVICE_COOKIE,
        value=sessions.device_cookie_value(
            settings, user.email, request.cookies.get(sessions.DEVICE_COOKIE)
        ),
        path="/admin/login",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        max_age=sessions.DEVICE_MAX_AGE_SECONDS,
    )


@post("/login", opt={"role": None}, request_max_body_size=LOGIN_BODY_LIMIT)
async def login(request: Request[Any, Any, Any], db: DB, settings: Config) -> Response[Any]:
    form = await request.form()
    email = _text(form, "email")
    password = form.get("password")
    next_path = safe_next(form.get("next"))
    ip = client_ip(request)
    if not email or not isinstance(password, str) or not password:
        return _login_page(
            request,
            status=400,
            email=email,
            next_path=next_path,
            error="이메일과 비밀번호를 모두 입력해 주세요.",
        )
    async with db.pool.acquire() as conn:
        # No account's address or password holds NUL or a non-character (the
        # database would refuse the look-up): a failed attempt like any other.
        fit = is_fit(email) and is_fit(password)
        attempt = await sessions.take_attempt(
            conn,
            settings,
            kind="password",
            email=email,
            ip=ip,
            device_cookie=request.cookies.get(sessions.DEVICE_COOKIE),
            second_factor=fit and await users.has_second_factor(conn, email),
        )
        if not isinstance(attempt, sessions.Attempt):
            return _too_many(request, attempt, email, next_path)
        user = await users.verify_login(conn, email, password) if fit else None
        if user is not None:
            await sessions.forgive(conn, attempt)
    if user is None:
        return _login_page(
            request,
            status=401,
            email=email,
            next_path=next_path,
            error="이메일 또는 비밀번호가 맞지 않습니다.",
        )
    return await _begin(request, db, settings, user, next_path)


def qr_svg(uri: str) -> str:
    return str(segno.make(uri, error="m").svg_inline(scale=4, dark="#1f2933", light="#ffffff"))


def _second_factor_page(
    request: Request[Any, Any, Any],
    session: Session,
    *,
    status: int = 200,
    error: str | None = None,
    secret: str | None = None,
) -> Template:
    user = session.user
    enrol = user.needs_totp_enrolment
    context: dict[str, Any] = {
        "enrol": enrol,
        "next_path": safe_next(request.query_params.get("next")),
    }
    if enrol and secret is not None:
        context.update(secret=secret, qr=qr_svg(users.totp_uri(secret, user.email)))
    return render(
        request,
        "console/second_factor.html",
        status=status,
        title="2단계 인증 등록" if enrol else "2단계 인증",
        errors={"code": error} if error else {},
        **context,
    )


@get("/login/second-factor", opt={"role": None}, media_type=MediaType.HTML)
async def second_factor_form(request: Request[Any, Any, Any], db: DB) -> Response[Any]:
    session = maybe_session(request)
    if session is None:
        return Redirect(path="/admin/login", status_code=303)
    if session.complete:
        return Redirect(path="/admin", status_code=303)
    return _second_factor_page(request, session, secret=await _enrolment_secret(db, session))


async def _enrolment_secret(db: DB, session: Session) -> str | None:
    """The secret this session enrols with, generated and kept on our side."""
    if not session.user.needs_totp_enrolment:
        return None
    async with db.pool.acquire() as conn:
        return await sessions.pending_totp_secret(conn, session, users.new_totp_secret())


@post("/login/second-factor", opt={"role": None}, request_max_body_size=LOGIN_BODY_LIMIT)
async def second_factor(request: Request[Any, Any, Any], db: DB, settings: Config) -> Response[Any]:
    session = maybe_session(request)
    if session is None:
        return Redirect(path="/admin/login", status_code=303)
    if session.complete:
        return Redirect(path="/admin", status_code=303)
    form = await request.form()
    code = _text(form, "code", 20)
    next_path = safe_next(form.get("next"))
    user = session.user
    ip = client_ip(request)
    secret = await _enrolment_secret(db, session)
    async with db.pool.acquire() as conn:
        # Codes count apart from passwords: a guesser's wrong passwords do
        # not stop the owner's code, nor the other way round.
        attempt = await sessions.take_attempt(
            conn,
            settings,
            kind="code",
            email=user.email,
            ip=ip,
            device_cookie=request.cookies.get(sessions.DEVICE_COOKIE),
        )
    if not isinstance(attempt, sessions.Attempt):
        page = _second_factor_page(
            request,
            session,
            status=429,
            error=f"시도가 너무 많습니다. {max(1, (attempt + 59) // 60)}분 뒤에 다시 해 주세요.",
            secret=secret,
        )
        page.headers["Retry-After"] = str(attempt)
        return page
    try:
        async with db.transaction() as conn:
            if user.needs_totp_enrolment:
                await users.enrol_totp(conn, user, secret or "", code)
                await sessions.clear_totp_secret(conn, session)
            elif not await users.check_totp(conn, user.id, code):
                raise DomainError(users.WRONG_CODE)
            await sessions.forgive(conn, attempt)
    except DomainError as exc:
        message = (
            explain(exc) if user.needs_totp_enrolment else explain(DomainError(users.WRONG_CODE))
        )
        return _second_factor_page(request, session, status=422, error=message, secret=secret)
    async with db.pool.acquire() as conn:
        fresh = await users.get_user(conn, user.id)
    return await _begin(request, db, settings, fresh, next_path, second_factor_done=True)


@post("/logout", opt={"role": None}, request_max_body_size=LOGIN_BODY_LIMIT)
async def logout(request: Request[Any, Any, Any], db: DB, settings: Config) -> Response[Any]:
    session = maybe_session(request)
    if session is not None:
        async with db.transaction() as conn:
            await sessions.end(conn, session)
            await record(conn, session.user.actor, "user.logout", f"user:{session.user.id}")
    response = Redirect(path="/admin/login?bye=1", status_code=303)
    response.cookies.append(console_cookie(settings, SESSION_COOKIE, "", max_age=0))
    return response


# --- single sign-on (OpenID Connect) ----------------------------------------------


@get("/login/sso", opt={"role": None})
async def sso_start(request: Request[Any, Any, Any], settings: Config) -> Response[Any]:
    if not settings.oidc_enabled:
        return Redirect(path="/admin/login", status_code=303)
    next_path = safe_next(request.query_params.get("next"))
    try:
        start = await oidc.begin(
            settings, redirect_uri=_callback_uri(settings), next_path=next_path
        )
    except oidc.SsoUnavailable as exc:
        return _login_page(request, status=502, error=str(exc), next_path=next_path)
    response = Redirect(path=start.url, status_code=303)
    response.cookies.append(Cookie(**oidc.state_cookie(settings, start.cookie_value)))
    return response


def _callback_uri(settings: Config) -> str:
    return f"{settings.base_url}/admin/login/sso/callback"


@get("/login/sso/callback", opt={"role": None}, media_type=MediaType.HTML)
async def sso_callback(request: Request[Any, Any, Any], db: DB, settings: Config) -> Response[Any]:
    if not settings.oidc_enabled:
        return Redirect(path="/admin/login", status_code=303)
    params = request.query_params
    try:
        identity = await oidc.finish(
            settings,
            redirect_uri=_callback_uri(settings),
            cookie_value=request.cookies.get(oidc.STATE_COOKIE, ""),
            state=params.get("state", ""),
            code=params.get("code", ""),
            error=params.get("error"),
        )
    except oidc.SsoRefused as exc:
        return _login_page(request, status=401, error=str(exc))
    except oidc.SsoUnavailable as exc:
        return _login_page(request, status=502, error=str(exc))
    async with db.transaction() as conn:
        user = await oidc.account_for(conn, identity)
    if user is None:
        return _login_page(
            request,
            status=403,
            error=f"{identity.email or '이 계정'}으로 쓸 수 있는 콘솔 계정이 없습니다. "
            "관리자에게 계정을 만들어 달라고 요청해 주세요.",
        )
    response = await _begin(request, db, settings, user, identity.next_path)
    response.cookies.append(Cookie(**oidc.state_cookie(settings, "", max_age=0)))
    return response


ROUTES = [login_form, login, second_factor_form, second_factor, logout, sso_start, sso_callback]
