"""Attacks on the console's accounts, replayed against the running app (issue
24): guessable new passwords, and (below) lockouts, throttle races and a
second factor whose secret the browser chose."""

from __future__ import annotations

import httpx
from litestar import Litestar

from newsletter.core.db import Database
from newsletter.ops.users import verify_login
from tests.support.console import PASSWORD, csrf_of, login, make_user

BASE = "https://newsletter.gimpo.go.kr"


def fresh_client(app: Litestar, ip: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url=BASE)


async def test_a_common_password_is_refused_with_a_korean_reason(
    app: Litestar, db: Database
) -> None:
    editor = await make_user(db, "editor")
    async with fresh_client(app) as http:
        await login(http, editor.email)
        form = await http.get("/admin/account/password")
        for common in ("password1234", "Password1234!", "qwerty123456", "1q2w3e4r5t6y"):
            refused = await http.post(
                "/admin/account/password",
                data={
                    "csrf_token": csrf_of(form.text),
                    "current_password": PASSWORD,
                    "password": common,
                    "password_again": common,
                },
            )
            assert refused.status_code == 422, common
            assert "흔히 쓰이거나 쉽게 추측되는 비밀번호입니다" in refused.text
            assert 'aria-invalid="true"' in refused.text
        async with db.pool.acquire() as conn:
            assert await verify_login(conn, editor.email, "password1234") is None
            assert await verify_login(conn, editor.email, PASSWORD) is not None
        chosen = "gull lantern 보리밭 ferry"
        accepted = await http.post(
            "/admin/account/password",
            data={
                "csrf_token": csrf_of(form.text),
                "current_password": PASSWORD,
                "password": chosen,
                "password_again": chosen,
            },
        )
        assert accepted.status_code == 303
    async with db.pool.acquire() as conn:
        assert await verify_login(conn, editor.email, chosen) is not None
