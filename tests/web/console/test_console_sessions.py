"""Console sessions and their safeguards, through the real app over HTTP:
server-side revocable sessions, CSRF token and Origin check on every POST,
login throttling (429), cookie flags, the second factor, forced password
change, disabled accounts, and the audit trail naming the person."""

from __future__ import annotations

import dataclasses
import html
import re
import time

import httpx
import pyotp
from litestar import Litestar

from newsletter.app import create_app
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.ops import sessions
from newsletter.ops.audit import CLI_ACTOR
from newsletter.ops.users import reset_password, set_disabled
from tests.support.console import PASSWORD, csrf_of, login, make_user, page_csrf

BASE = "https://newsletter.gimpo.go.kr"


def fresh_client(app: Litestar, ip: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url=BASE)


async def test_logging_in_sets_a_safe_cookie_and_logging_out_ends_the_session(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    answer = await login(client, editor.email)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("nl_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Secure" in cookie  # BASE_URL is https
    assert "Path=/admin" in cookie
    token = client.cookies["nl_session"]
    assert (await client.get("/admin")).status_code == 200
    # Only a hash of the token is stored.
    stored = await db.pool.fetchval(
        "SELECT count(*) FROM sessions WHERE token_hash = $1", sessions.token_hash(token)
    )
    assert stored == 1
    assert (
        await db.pool.fetchval(
            "SELECT count(*) FROM sessions WHERE token_hash = $1::bytea", token.encode()
        )
        == 0
    )

    csrf = await page_csrf(client)
    out = await client.post("/admin/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    # The old cookie, replayed after logout, opens nothing.
    async with httpx.AsyncClient(transport=client._transport, base_url=BASE) as replay:
        replay.cookies.set("nl_session", token, domain="newsletter.gimpo.go.kr", path="/admin")
        again = await replay.get("/admin")
        assert again.status_code == 303 and again.headers["location"] == "/admin/login"
    assert await db.pool.fetchval("SELECT count(*) FROM sessions") == 0


async def test_cookie_is_not_secure_on_a_plain_http_base_url(
    settings: Settings, db: Database
) -> None:
    from newsletter.app import create_app

    app = create_app(settings.replace(base_url="http://127.0.0.1:8000"), db)
    editor = await make_user(db, "editor")
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        answer = await login(http, editor.email)
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("nl_session="))
    assert "Secure" not in cookie


async def test_post_without_token_or_from_another_site_is_refused(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    csrf = await page_csrf(client)
    without = await client.post("/admin/issues", data={"title": "몰래"})
    assert without.status_code == 403 and "CSRF" in without.text
    wrong = await client.post("/admin/issues", data={"title": "몰래", "csrf_token": "x" * 43})
    assert wrong.status_code == 403
    foreign = await client.post(
        "/admin/issues",
        data={"title": "몰래", "csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403 and "다른 사이트" in foreign.text
    null_origin = await client.post(
        "/admin/issues", data={"title": "몰래", "csrf_token": csrf}, headers={"Origin": "null"}
    )
    assert null_origin.status_code == 403
    ours = await client.post(
        "/admin/issues", data={"title": "제대로", "csrf_token": csrf}, headers={"Origin": BASE}
    )
    assert ours.status_code == 303
    assert [r["title"] for r in await db.pool.fetch("SELECT title FROM issues")] == ["제대로"]


async def test_the_login_form_itself_needs_its_token(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    forged = await client.post("/admin/login", data={"email": editor.email, "password": PASSWORD})
    assert forged.status_code == 403
    assert "nl_session" not in client.cookies


async def test_wrong_passwords_are_throttled_per_account_and_per_address(
    app: Litestar, db: Database
) -> None:
    editor = await make_user(db, "editor")
    async with fresh_client(app, "198.51.100.1") as http:
        for _ in range(sessions.ACCOUNT_FAILURES):
            wrong = await login(http, editor.email, "not-the-password-at-all")
            assert wrong.status_code == 401 and "맞지 않습니다" in wrong.text
            assert "<title>오류: 로그인" in wrong.text  # screen readers hear it first
        blocked = await login(http, editor.email)  # even the right password waits now
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0
        assert "너무 많습니다" in blocked.text
    # Another address trying other accounts is stopped per address too.
    async with fresh_client(app, "198.51.100.2") as http:
        for n in range(sessions.ADDRESS_FAILURES):
            assert (
                await login(http, f"nobody{n}@gimpo.go.kr", "guess-guess-guess")
            ).status_code == 401
        assert (await login(http, "another@gimpo.go.kr", "guess-guess-guess")).status_code == 429
    # An unknown address answers exactly like a wrong password.
    async with fresh_client(app, "198.51.100.3") as http:
        unknown = await login(http, "ghost@gimpo.go.kr", "whatever-whatever")
        known = await login(http, "other-editor@gimpo.go.kr", "whatever-whatever")
        assert unknown.status_code == known.status_code == 401
        assert re.sub(r'value="[^"]*"', "", unknown.text).replace("ghost", "X") == re.sub(
            r'value="[^"]*"', "", known.text
        ).replace("other-editor", "X")


async def test_a_second_factor_when_the_admin_requires_it(app: Litestar, db: Database) -> None:
    editor = await make_user(db, "editor", totp_required=True)
    async with fresh_client(app) as http:
        first = await login(http, editor.email)
        assert first.headers["location"].startswith("/admin/login/second-factor")
        # The password alone opens nothing.
        assert (await http.get("/admin")).headers["location"] == "/admin/login/second-factor"
        enrol = await http.get("/admin/login/second-factor")
        secret = re.search(r'id="totp-secret">([A-Z2-7]{32})<', enrol.text)
        assert secret is not None and "<svg" in enrol.text  # the QR code
        assert 'name="secret"' not in enrol.text  # kept on the server, not in the form
        bad = await http.post(
            "/admin/login/second-factor",
            data={"csrf_token": csrf_of(enrol.text), "code": "000000"},
        )
        assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
        code = pyotp.TOTP(secret.group(1)).now()
        done = await http.post(
            "/admin/login/second-factor",
            data={"csrf_token": csrf_of(bad.text), "code": code},
        )
        assert done.status_code == 303
        assert (await http.get("/admin")).status_code == 200
    # Next time: the code is asked for, and a code already used is refused.
    async with fresh_client(app) as http:
        await login(http, editor.email)
        page = await http.get("/admin/login/second-factor")
        assert 'name="secret"' not in page.text
        replay = await http.post(
            "/admin/login/second-factor", data={"csrf_token": csrf_of(page.text), "code": code}
        )
        assert replay.status_code == 422
        step = int(time.time() // 30) + 1  # the next step is accepted (clock drift)
        fresh = pyotp.TOTP(secret.group(1)).at(step * 30)
        ok = await http.post(
            "/admin/login/second-factor", data={"csrf_token": csrf_of(replay.text), "code": fresh}
        )
        assert ok.status_code == 303
        assert (await http.get("/admin")).status_code == 200


async def test_after_an_admin_reset_the_person_chooses_a_password(
    app: Litestar, db: Database
) -> None:
    editor = await make_user(db, "editor")
    async with fresh_client(app) as old:
        await login(old, editor.email)
        async with db.transaction() as conn:
            temporary = await reset_password(conn, CLI_ACTOR, editor.id)
        # The reset ended the session that was open.
        assert (await old.get("/admin")).status_code == 303
    async with fresh_client(app) as http:
        assert (await login(http, editor.email)).status_code == 401  # the old password is gone
        await login(http, editor.email, temporary)
        forced = await http.get("/admin/news")
        assert forced.headers["location"] == "/admin/account/password"
        form = await http.get("/admin/account/password")
        short = await http.post(
            "/admin/account/password",
            data={
                "csrf_token": csrf_of(form.text),
                "current_password": temporary,
                "password": "short",
                "password_again": "short",
            },
        )
        assert short.status_code == 422 and "12자 이상" in short.text
        changed = await http.post(
            "/admin/account/password",
            data={
                "csrf_token": csrf_of(form.text),
                "current_password": temporary,
                "password": "a brand new long passphrase",
                "password_again": "a brand new long passphrase",
            },
        )
        assert changed.status_code == 303
        assert (await http.get("/admin/news")).status_code == 200


async def test_disabling_an_account_ends_its_sessions(app: Litestar, db: Database) -> None:
    editor = await make_user(db, "editor")
    async with fresh_client(app) as http:
        await login(http, editor.email)
        assert (await http.get("/admin")).status_code == 200
        async with db.transaction() as conn:
            await set_disabled(conn, CLI_ACTOR, editor.id, True)
        assert (await http.get("/admin")).status_code == 303
        assert (await login(http, editor.email)).status_code == 401


async def test_an_idle_session_ends(app: Litestar, db: Database) -> None:
    editor = await make_user(db, "editor")
    async with fresh_client(app) as http:
        await login(http, editor.email)
        await db.pool.execute("UPDATE sessions SET last_seen_at = now() - interval '31 minutes'")
        assert (await http.get("/admin")).status_code == 303


async def test_the_console_names_the_city_and_the_idle_time_from_settings(
    settings: Settings, db: Database
) -> None:
    """Another city, another idle time: the console's frame says theirs, never Gimpo's."""
    office = dataclasses.replace(
        settings.city.ko, newsletter="예시시 뉴스레터", department="예시시청 홍보과"
    )
    app = create_app(
        settings.replace(
            city=dataclasses.replace(settings.city, ko=office), session_idle_seconds=45 * 60
        ),
        db,
    )
    editor = await make_user(db, "editor")
    async with fresh_client(app) as http:
        form = await http.get("/admin/login")
        assert "45분 동안 쓰지 않으면" in form.text and "30분" not in form.text
        await login(http, editor.email)
        page = await http.get("/admin")
    assert page.status_code == 200
    assert "<title>" in page.text and "· 예시시 뉴스레터 콘솔</title>" in page.text
    assert "예시시청 홍보과 · 예시시 뉴스레터 콘솔" in page.text
    assert "김포" not in form.text and "김포" not in page.text


async def test_roles_decide_what_each_person_sees(app: Litestar, db: Database) -> None:
    people = {role: await make_user(db, role) for role in ("editor", "ops", "admin")}
    expected = {
        "/admin/news": {"editor": 200, "ops": 403, "admin": 200},
        "/admin/ops": {"editor": 403, "ops": 200, "admin": 200},
        "/admin/subscribers": {"editor": 403, "ops": 403, "admin": 200},
        "/admin/users": {"editor": 403, "ops": 403, "admin": 200},
        "/admin/issues": {"editor": 200, "ops": 200, "admin": 200},
    }
    for role, person in people.items():
        async with fresh_client(app) as http:
            await login(http, person.email)
            for path, codes in expected.items():
                answer = await http.get(path)
                assert answer.status_code == codes[role], (role, path)
                if answer.status_code == 403:
                    assert "권한이 없습니다" in answer.text


async def test_changes_are_audited_under_the_persons_name(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor", name="홍보담당 김")
    await login(client, editor.email)
    csrf = await page_csrf(client)
    await client.post("/admin/issues", data={"title": "5월 소식", "csrf_token": csrf})
    row = await db.pool.fetchrow(
        "SELECT actor, user_id, api_key_id FROM audit_log WHERE action = 'issue.create'"
    )
    assert row is not None
    assert row["actor"] == f"홍보담당 김 <{editor.email}>"
    assert row["user_id"] == editor.id and row["api_key_id"] is None
    login_row = await db.pool.fetchrow("SELECT details FROM audit_log WHERE action = 'user.login'")
    assert login_row is not None and login_row["details"]["ip"] == "203.0.113.7"


async def test_reading_the_roster_is_recorded(client: httpx.AsyncClient, db: Database) -> None:
    admin = await make_user(db, "admin")
    subscriber = await db.pool.fetchval(
        "INSERT INTO subscribers (email, status) VALUES ('kim@example.com', 'active') RETURNING id"
    )
    await login(client, admin.email)
    assert "kim@example.com" in (await client.get("/admin/subscribers?q=kim")).text
    assert (await client.get(f"/admin/subscribers/{subscriber}")).status_code == 200
    reads = await db.pool.fetch(
        "SELECT action, target, details FROM audit_log WHERE action LIKE 'personal_data.read.%' "
        "ORDER BY id"
    )
    assert [r["action"] for r in reads] == [
        "personal_data.read.subscribers.search",
        "personal_data.read.subscriber.get",
    ]
    assert reads[0]["details"]["email_prefix"] == "kim"
    assert reads[0]["details"]["ip"] == "203.0.113.7"
    assert reads[1]["target"] == f"subscriber:{subscriber}"


async def test_the_audit_page_says_in_korean_what_each_person_did(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin = await make_user(db, "admin")
    await login(client, admin.email)
    csrf = await page_csrf(client)
    await client.post("/admin/issues", data={"title": "5월 소식", "csrf_token": csrf})
    await client.get("/admin/subscribers/export.csv")  # no status filter: none recorded
    await client.get("/admin/subscribers")
    page = html.unescape((await client.get("/admin/audit")).text)
    assert "호 만들기" in page and "로그인" in page
    assert "구독자 명단 내려받기" in page
    assert "개인정보 열람: 구독자 목록 조회" in page
    assert "=None" not in page


async def test_console_pages_carry_a_strict_policy_and_the_preview_its_own(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    issue_id = await db.pool.fetchval("INSERT INTO issues (title) VALUES ('정책') RETURNING id")
    await login(client, editor.email)
    page = await client.get(f"/admin/issues/{issue_id}")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["cache-control"] == "no-store"  # personal pages stay out of caches
    preview = await client.get(f"/admin/issues/{issue_id}/preview")
    framed = preview.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in framed and "sandbox" in framed
    assert "script-src" not in framed  # default-src 'none': the mail runs no script
