"""Text no database or mail can hold (NUL, non-characters) on the console's
login form: a wrong login like any other, answered 4xx and counted."""

from __future__ import annotations

import httpx
from litestar import Litestar

from newsletter.core.db import Database
from newsletter.ops import sessions
from tests.support.console import PASSWORD, login, make_user

BASE = "https://newsletter.gimpo.go.kr"


def fresh_client(app: Litestar, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url=BASE)


async def test_a_nul_in_the_address_is_a_counted_wrong_login(app: Litestar, db: Database) -> None:
    editor = await make_user(db, "editor")
    async with fresh_client(app, "198.51.100.9") as http:
        for odd in (f"{editor.email}\x00", f"{editor.email}\uffff"):
            for n in range(sessions.ACCOUNT_FAILURES):
                password = PASSWORD + ("\x00" if n % 2 else "")
                answer = await login(http, odd, password)
                assert answer.status_code == 401, answer.text
                assert "맞지 않습니다" in answer.text
            # Each attempt counted: the next one waits like any guesser.
            assert (await login(http, odd)).status_code == 429
    async with fresh_client(app, "198.51.100.10") as http:
        assert (await login(http, editor.email)).status_code == 303  # the owner is not locked out
