"""Console accounts, managed by admins: create (a generated password shown
once), change role, require a second factor, reset a password, disable or
enable; and the audit trail of every change."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Template

from newsletter.core.errors import DomainError, InvalidInput
from newsletter.core.kinds import MAX_ID, ROLES
from newsletter.ops import users
from newsletter.web.console.fields import checked, text
from newsletter.web.console.gate import session_of
from newsletter.web.console.korean import explain
from newsletter.web.console.render import done, message_page, render
from newsletter.web.console.roles import ADMIN
from newsletter.web.http.deps import DB
from newsletter.web.http.params import BeforeId

AUDIT_PAGE = 50
AUDIT_FILTERS = {
    "": "모든 기록",
    "issue.": "호 (발행·발송)",
    "news_item.": "뉴스 항목",
    "user.": "계정과 로그인",
    "subscriber": "구독자 변경",
    "personal_data.read": "개인정보 열람",
}


@get("/users", opt=ADMIN, media_type=MediaType.HTML)
async def user_list(request: Request[Any, Any, Any], db: DB) -> Template:
    async with db.pool.acquire() as conn:
        people = await users.list_users(conn)
    return render(
        request,
        "console/users.html",
        title="계정",
        people=people,
        roles=ROLES,
        values={"email": "", "name": "", "role": "editor"},
    )


@post("/users", opt=ADMIN)
async def user_create(request: Request[Any, Any, Any], db: DB) -> Response[Any]:
    form = await request.form()
    values = {
        "email": text(form, "email", 320).strip(),
        "name": text(form, "name", 200),
        "role": text(form, "role", 10),
    }
    try:
        async with db.transaction() as conn:
            person, password = await users.create_user(
                conn,
                session_of(request).user.actor,
                email=values["email"],
                name=values["name"],
                role=values["role"],
                totp_required=checked(form, "totp_required"),
            )
    except DomainError as exc:
        async with db.pool.acquire() as conn:
            people = await users.list_users(conn)
        field = exc.field if isinstance(exc, InvalidInput) and exc.field else "email"
        return render(
            request,
            "console/users.html",
            status=422,
            title="계정",
            errors={field: explain(exc)},
            people=people,
            roles=ROLES,
            values=values,
        )
    return render(
        request,
        "console/password_shown.html",
        title="계정을 만들었습니다",
        person=person,
        password=password,
        created=True,
    )


@get("/users/{user_id:int}", opt=ADMIN, media_type=MediaType.HTML)
async def user_page(request: Request[Any, Any, Any], db: DB, user_id: FromPath[int]) -> Template:
    async with db.pool.acquire() as conn:
        person = await users.get_user(conn, user_id)
        logins = await conn.fetch(db.queries.list_user_sessions, user_id)
    return render(
        request,
        "console/user.html",
        title=f"계정: {person.name}",
        person=person,
        roles=ROLES,
        logins=logins,
    )


@post("/users/{user_id:int}/{change:str}", opt=ADMIN)
async def user_change(
    request: Request[Any, Any, Any], db: DB, user_id: FromPath[int], change: FromPath[str]
) -> Response[Any]:
    form = await request.form()
    actor = session_of(request).user.actor
    back = f"/admin/users/{user_id}"
    try:
        async with db.transaction() as conn:
            person = await users.get_user(conn, user_id)
            if change == "role":
                await users.set_role(conn, actor, user_id, text(form, "role", 10))
                note = "역할을 바꿨습니다."
            elif change == "totp-required":
                required = checked(form, "required")
                await users.set_totp_required(conn, actor, user_id, required)
                note = (
                    "다음 로그인부터 2단계 인증을 요구합니다."
                    if required
                    else "2단계 인증 요구를 풀었습니다."
                )
            elif change == "remove-totp":
                await users.remove_totp(conn, actor, user_id)
                note = "2단계 인증 등록을 지웠습니다. 다음 로그인 때 다시 등록합니다(요구된 경우)."
            elif change in ("disable", "enable"):
                await users.set_disabled(conn, actor, user_id, change == "disable")
                note = (
                    "계정을 막았습니다. 모든 로그인이 끝났습니다."
                    if change == "disable"
                    else "계정을 다시 열었습니다."
                )
            elif change == "reset-password":
                if text(form, "confirmed", 5) != "yes":
                    return render(
                        request,
                        "console/confirm.html",
                        title="비밀번호 재설정",
                        heading=f"{person.name}의 비밀번호를 새로 만들까요?",
                        paragraphs=[
                            "새 비밀번호를 한 번만 보여 드립니다. 본인에게 안전하게 전해 주세요.",
                            "이 계정의 모든 로그인이 끝나고, "
                            "다음 로그인 때 본인이 새 비밀번호를 정해야 합니다.",
                        ],
                        action=f"/admin/users/{user_id}/reset-password",
                        button="비밀번호 새로 만들기",
                        back=back,
                    )
                password = await users.reset_password(conn, actor, user_id)
                return render(
                    request,
                    "console/password_shown.html",
                    title="비밀번호를 새로 만들었습니다",
                    person=person,
                    password=password,
                    created=False,
                )
            else:
                return message_page(request, "찾을 수 없습니다", "없는 기능입니다.", status=404)
    except DomainError as exc:
        return message_page(
            request,
            "바꿀 수 없습니다",
            explain(exc),
            status=exc.status,
            back=back,
            back_label="계정으로 돌아가기",
        )
    return await done(request, back, note)


@get("/audit", opt=ADMIN, media_type=MediaType.HTML)
async def audit_page(
    request: Request[Any, Any, Any], db: DB, before: BeforeId = MAX_ID
) -> Template:
    kind = request.query_params.get("kind", "")
    kind = kind if kind in AUDIT_FILTERS else ""
    rows = await db.fetch("recent_audit", before, AUDIT_PAGE, kind or None)
    return render(
        request,
        "console/audit.html",
        title="변경 기록",
        rows=rows,
        kind=kind,
        filters=AUDIT_FILTERS,
        next_before=rows[-1]["id"] if len(rows) == AUDIT_PAGE else None,
    )


ROUTES = [user_list, user_create, user_page, user_change, audit_page]
