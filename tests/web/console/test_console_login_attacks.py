"""Attacks on the console's accounts, replayed against the running app (issue
24): guessable new passwords, and (below) lockouts, throttle races and a
second factor whose secret the browser chose."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

import httpx
import pyotp
from litestar import Litestar

from newsletter.core.db import Database
from newsletter.ops import sessions
from newsletter.ops.users import verify_login
from tests.support.console import PASSWORD, csrf_of, login, make_user, page_csrf
from tests.web.console.conftest import Console

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


# --- 24.10: the second factor's secret is ours, not the browser's ---------------------


def shown_secret(html: str) -> str:
    found = re.search(r'id="totp-secret">([A-Z2-7]{32})<', html)
    assert found is not None, "no secret shown"
    return found.group(1)


async def test_enrolment_ignores_a_secret_the_browser_chose(app: Litestar, db: Database) -> None:
    editor = await make_user(db, "editor", totp_required=True)
    async with fresh_client(app) as http:
        await login(http, editor.email)
        enrol = await http.get("/admin/login/second-factor")
        assert 'name="secret"' not in enrol.text
        shown = shown_secret(enrol.text)
        # An all-zero key ('A' in base32) with its code computed offline, then
        # secrets that are not base32 at all: each one a refusal, never a 500.
        for chosen in ("A" * 32, "0" * 32, "가" * 32):
            forced = await http.post(
                "/admin/login/second-factor",
                data={
                    "csrf_token": csrf_of(enrol.text),
                    "secret": chosen,
                    "code": pyotp.TOTP("A" * 32).now(),
                },
            )
            assert forced.status_code == 422, chosen
            assert shown_secret(forced.text) == shown  # the same secret, still ours
        assert (
            await db.pool.fetchval("SELECT totp_secret FROM users WHERE id = $1", editor.id) is None
        )
        assert (await http.get("/admin")).headers["location"] == "/admin/login/second-factor"
        done = await http.post(
            "/admin/login/second-factor",
            data={"csrf_token": csrf_of(enrol.text), "code": pyotp.TOTP(shown).now()},
        )
        assert done.status_code == 303
        assert (await http.get("/admin")).status_code == 200
    stored = await db.pool.fetchval("SELECT totp_secret FROM users WHERE id = $1", editor.id)
    assert stored == shown


async def test_the_account_page_enrols_only_the_secret_it_showed(
    app: Litestar, db: Database
) -> None:
    editor = await make_user(db, "editor")
    async with fresh_client(app) as http:
        await login(http, editor.email)
        page = await http.get("/admin/account")
        shown = shown_secret(page.text)
        assert 'name="secret"' not in page.text
        assert shown_secret((await http.get("/admin/account")).text) == shown  # kept, not redrawn
        forced = await http.post(
            "/admin/account/totp",
            data={
                "csrf_token": csrf_of(page.text),
                "secret": "A" * 32,
                "code": pyotp.TOTP("A" * 32).now(),
            },
        )
        assert forced.status_code == 422 and shown_secret(forced.text) == shown
        assert (
            await db.pool.fetchval("SELECT totp_secret FROM users WHERE id = $1", editor.id) is None
        )
        done = await http.post(
            "/admin/account/totp",
            data={"csrf_token": csrf_of(page.text), "code": pyotp.TOTP(shown).now()},
        )
        assert done.status_code == 303
    stored = await db.pool.fetchval("SELECT totp_secret FROM users WHERE id = $1", editor.id)
    assert stored == shown


# --- 24.7: guessers from many addresses do not lock the owner out ---------------------


async def guess_from_many_addresses(app: Litestar, email: str, count: int) -> None:
    for n in range(count):
        async with fresh_client(app, f"198.51.100.{n + 10}") as guesser:
            wrong = await login(guesser, email, f"guess-number-{n}-of-many")
            assert wrong.status_code == 401


async def test_guessers_from_many_addresses_do_not_lock_the_owner_out(
    app: Litestar, db: Database
) -> None:
    editor = await make_user(db, "editor")
    async with fresh_client(app, "203.0.113.50") as owner:
        assert (await login(owner, editor.email)).status_code == 303  # yesterday, at the office
        await owner.post("/admin/logout", data={"csrf_token": await page_csrf(owner)})
        await guess_from_many_addresses(app, editor.email, sessions.ACCOUNT_FAILURES)
        # The next guesser, from yet another address, is stopped before any check...
        async with fresh_client(app, "192.0.2.77") as guesser:
            stopped = await login(guesser, editor.email, PASSWORD)
            assert stopped.status_code == 429 and "너무 많습니다" in stopped.text
            assert "nl_session" not in guesser.cookies
        # ... while the owner's browser, which has logged in before, gets in.
        back = await login(owner, editor.email)
        assert back.status_code == 303 and back.headers["location"] == "/admin"
        assert (await owner.get("/admin")).status_code == 200


async def test_codes_and_passwords_count_apart(app: Litestar, db: Database) -> None:
    editor = await make_user(db, "editor", totp_required=True)
    async with fresh_client(app, "203.0.113.60") as owner:
        await login(owner, editor.email)
        enrol = await owner.get("/admin/login/second-factor")
        secret = shown_secret(enrol.text)
        await owner.post(
            "/admin/login/second-factor",
            data={"csrf_token": csrf_of(enrol.text), "code": pyotp.TOTP(secret).now()},
        )
        await owner.post("/admin/logout", data={"csrf_token": await page_csrf(owner)})
        await guess_from_many_addresses(app, editor.email, sessions.ACCOUNT_FAILURES)
        # The owner's password, then wrong codes up to the limit, then the right one.
        assert (await login(owner, editor.email)).status_code == 303
        form = await owner.get("/admin/login/second-factor")
        for _ in range(sessions.ACCOUNT_FAILURES - 1):
            wrong = await owner.post(
                "/admin/login/second-factor",
                data={"csrf_token": csrf_of(form.text), "code": "000000"},
            )
            assert wrong.status_code == 422
        step = int(pyotp.TOTP(secret).timecode(datetime.now())) + 1
        right = await owner.post(
            "/admin/login/second-factor",
            data={"csrf_token": csrf_of(form.text), "code": pyotp.TOTP(secret).at(step * 30)},
        )
        assert right.status_code == 303
        assert (await owner.get("/admin")).status_code == 200


async def test_with_a_second_factor_the_owner_gets_in_from_a_new_browser(
    app: Litestar, db: Database
) -> None:
    """The owner's password plus their code still works while guessers hold
    the account's limit, even from a browser that never logged in before."""
    editor = await make_user(db, "editor", totp_required=True)
    async with fresh_client(app, "203.0.113.70") as first:
        await login(first, editor.email)
        enrol = await first.get("/admin/login/second-factor")
        secret = shown_secret(enrol.text)
        await first.post(
            "/admin/login/second-factor",
            data={"csrf_token": csrf_of(enrol.text), "code": pyotp.TOTP(secret).now()},
        )
    await guess_from_many_addresses(app, editor.email, sessions.ACCOUNT_FAILURES)
    async with fresh_client(app, "192.0.2.200") as new_laptop:
        password = await login(new_laptop, editor.email)
        assert password.status_code == 303
        assert password.headers["location"].startswith("/admin/login/second-factor")
        assert (await new_laptop.get("/admin")).headers["location"].endswith("second-factor")
        form = await new_laptop.get("/admin/login/second-factor")
        step = int(pyotp.TOTP(secret).timecode(datetime.now())) + 1
        code = await new_laptop.post(
            "/admin/login/second-factor",
            data={"csrf_token": csrf_of(form.text), "code": pyotp.TOTP(secret).at(step * 30)},
        )
        assert code.status_code == 303
        assert (await new_laptop.get("/admin")).status_code == 200


# --- 24.9: concurrent guesses cannot race past the limit ------------------------------


async def test_eighty_concurrent_guesses_get_at_most_ten_checks(console: Console) -> None:
    """Against uvicorn on a real socket: eighty guesses at once from one
    address; each 401 is a password that was checked (argon2), each 429 one
    refused before any check."""
    editor = await make_user(console.db, "editor")
    limits = httpx.Limits(max_connections=80, max_keepalive_connections=80)
    async with httpx.AsyncClient(base_url=console.base, limits=limits, timeout=120) as http:
        page = await http.get("/admin/login")
        token = csrf_of(page.text)

        async def guess(n: int) -> int:
            answer = await http.post(
                "/admin/login",
                data={
                    "email": editor.email,
                    "password": f"concurrent-guess-{n:03d}",
                    "csrf_token": token,
                },
            )
            return answer.status_code

        answers = await asyncio.gather(*(guess(n) for n in range(80)))
        checked = answers.count(401)
        # Exactly the limit was checked (not the 14-19 of the race), the rest
        # refused before argon2 ran.
        assert checked == sessions.ACCOUNT_FAILURES, answers
        assert answers.count(429) == 80 - checked, answers
        # And the limit holds for the right password too, from this address.
        assert (await login(http, editor.email)).status_code == 429
