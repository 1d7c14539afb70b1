"""A person's own account: change the password (also the forced change after
an admin's reset), set up or remove the second factor, see and end their
other logins."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get, post
from litestar.response import Template

from newsletter.core.errors import DomainError, InvalidInput
from newsletter.ops import sessions, users
from newsletter.web.console.fields import text
from newsletter.web.console.gate import session_of
from newsletter.web.console.korean import explain
from newsletter.web.console.login import qr_svg
from newsletter.web.console.render import done, message_page, render
from newsletter.web.console.roles import ANYONE
from newsletter.web.http.deps import DB

MINE = ANYONE
PASSWORD_DUE = {**ANYONE, "while_password_due": True}


async def _account_page(
    request: Request[Any, Any, Any],
    db: DB,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> Template:
    session = session_of(request)
    user = session.user
    async with db.pool.acquire() as conn:
        logins = await conn.fetch(db.queries.list_user_sessions, user.id)
        # Kept with the session, shown here, never read back from the form.
        new_secret = (
            None
            if user.totp_enabled
            else await sessions.pending_totp_secret(conn, session, users.new_totp_secret())
        )
    return render(
        request,
        "console/account.html",
        status=status,
        title="내 계정",
        errors=errors,
        logins=logins,
        current=session.token_hash,
        secret=new_secret,
        qr=qr_svg(users.totp_uri(new_secret, user.email)) if new_secret else None,
    )


@get("/account", opt=MINE, media_type=MediaType.HTML)
async def account(request: Request[Any, Any, Any], db: DB) -> Template:
    return await _account_page(request, db)


@get("/account/password", opt=PASSWORD_DUE, media_type=MediaType.HTML)
async def password_form(request: Request[Any, Any, Any]) -> Template:
    return render(request, "console/password.html", title="비밀번호 바꾸기")


@post("/account/password", opt=PASSWORD_DUE)
async def password_change(request: Request[Any, Any, Any], db: DB) -> Response[Any]:
    session = session_of(request)
    form = await request.form()
    new = text(form, "password", users.MAX_PASSWORD_LENGTH + 1)
    if new != text(form, "password_again", users.MAX_PASSWORD_LENGTH + 1):
        return render(
            request,
            "console/password.html",
            status=422,
            title="비밀번호 바꾸기",
            errors={"password_again": "새 비밀번호 두 칸이 서로 다릅니다."},
        )
    try:
        async with db.transaction() as conn:
            await users.change_own_password(
                conn,
                session.user,
                current=text(form, "current_password", users.MAX_PASSWORD_LENGTH + 1),
                new=new,
                keep_session=session.token_hash,
            )
    except InvalidInput as exc:
        return render(
            request,
            "console/password.html",
            status=422,
            title="비밀번호 바꾸기",
            errors={exc.field or "password": explain(exc)},
        )
    return await done(request, "/admin", "비밀번호를 바꿨습니다. 다른 기기의 로그인은 끝났습니다.")


@post("/account/totp", opt=MINE)
async def totp_enrol(request: Request[Any, Any, Any], db: DB) -> Response[Any]:
    session = session_of(request)
    form = await request.form()
    try:
        async with db.transaction() as conn:
            await users.enrol_totp(
                conn, session.user, session.totp_pending or "", text(form, "code", 20)
            )
            await sessions.clear_totp_secret(conn, session)
    except DomainError as exc:
        return await _account_page(request, db, status=422, errors={"code": explain(exc)})
    return await done(
        request, "/admin/account", "2단계 인증을 등록했습니다. 다음 로그인부터 코드를 묻습니다."
    )


@post("/account/totp/remove", opt=MINE)
async def totp_remove(request: Request[Any, Any, Any], db: DB) -> Response[Any]:
    session = session_of(request)
    if session.user.totp_required:
        return message_page(
            request,
            "지울 수 없습니다",
            "관리자가 이 계정에 2단계 인증을 요구했습니다. "
            "휴대전화를 바꿨다면 관리자에게 등록을 지워 달라고 요청하세요.",
            status=409,
            back="/admin/account",
            back_label="내 계정으로",
        )
    async with db.transaction() as conn:
        await users.remove_totp(conn, session.user.actor, session.user.id)
    return await done(request, "/admin/account", "2단계 인증 등록을 지웠습니다.")


@post("/account/logout-others", opt=MINE)
async def logout_others(request: Request[Any, Any, Any], db: DB) -> Response[Any]:
    session = session_of(request)
    async with db.transaction() as conn:
        await sessions.end_others(conn, session)
    return await done(request, "/admin/account", "다른 기기의 로그인을 모두 끝냈습니다.")


ROUTES = [account, password_form, password_change, totp_enrol, totp_remove, logout_others]
