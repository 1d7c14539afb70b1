"""One fact, two languages: a domain error or an import's line reason comes out
of the JSON API in English and out of the console in Korean, both from the
same message id in the catalog (core/i18n, core/errors)."""

from __future__ import annotations

import asyncio
import html

import httpx

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from tests.support.console import login, make_user, page_csrf
from tests.support.roster import auth, import_text

# Line 2 is fine; 3 has no valid address; 4 a date that is not one; 5 an
# address already unsubscribed (skipped, not re-activated).
ROSTER = (
    "email,name,subscribed_at\n"
    "kim@example.com,김,2024-03-05\n"
    "not-an-address,박,2024-03-05\n"
    "lee@example.com,이,어제쯤\n"
    "gone@example.com,최,2024-03-05\n"
)


async def _unsubscribed(db: Database, settings: Settings) -> None:
    await import_text(db, settings, "gone@example.com,최\n")
    await db.pool.execute(
        "UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'gone@example.com'"
    )


async def _console_import(client: httpx.AsyncClient, data: bytes) -> str:
    csrf = await page_csrf(client, "/admin/subscribers/import")
    started = await client.post(
        "/admin/subscribers/import",
        data={"csrf_token": csrf, "mode": "confirmed", "source": "2025 시민 설문 동의서"},
        files={"file": ("명단.csv", data, "text/csv")},
    )
    assert started.status_code == 303, started.text
    for _ in range(100):
        progress = await client.get(started.headers["location"] + "/progress")
        if progress.status_code == 286:
            return html.unescape(progress.text)
        await asyncio.sleep(0.05)
    raise AssertionError("the import did not finish")


async def test_a_missing_subscriber_is_english_in_the_api_and_korean_in_the_console(
    client: httpx.AsyncClient, db: Database
) -> None:
    answer = await client.get("/api/v1/subscribers/987654", headers=await auth(db, "admin"))
    assert answer.status_code == 404
    assert answer.json() == {"error": "not_found", "detail": "no subscriber 987654"}

    admin = await make_user(db, "admin")
    await login(client, admin.email)
    page = await client.get("/admin/subscribers/987654")
    assert page.status_code == 404
    said = html.unescape(page.text)
    assert "구독자 #987654이(가) 없습니다" in said and "no subscriber" not in said


async def test_import_reasons_are_english_in_the_api_and_korean_in_the_console(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    await _unsubscribed(db, settings)
    answer = await client.post(
        "/api/v1/subscribers/import",
        params={"mode": "confirmed", "source": "2025 시민 설문 동의서"},
        headers={**await auth(db, "admin"), "Content-Type": "text/csv"},
        content=ROSTER.encode(),
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    errors = {e["line"]: e["reason"] for e in report["errors"]}
    assert errors[3].startswith("invalid e-mail address: ")
    assert errors[4] == (
        "subscribed_at '어제쯤' is not a date (use e.g. 2024-03-05 or 2024-03-05 14:00)"
    )
    assert report["skipped_rows"] == [
        {"line": 5, "reason": "this resident unsubscribed; only they can subscribe again"}
    ]

    admin = await make_user(db, "admin")
    await login(client, admin.email)
    said = await _console_import(client, ROSTER.replace("kim@", "park@").encode())
    assert "잘못된 이메일 주소입니다: " in said
    assert "구독일 '어제쯤'은(는) 날짜가 아닙니다" in said
    assert "수신을 거부한 주민입니다. 본인만 다시 구독할 수 있습니다." in said
    for english in ("invalid e-mail", "is not a date", "unsubscribed;"):
        assert english not in said


async def test_a_date_the_console_cannot_read_is_explained_in_korean(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    page = await client.get("/admin/news", params={"from": "지난주"})
    assert page.status_code == 422
    said = html.unescape(page.text)
    assert "날짜를 달력에서 골라 주세요 (예: 2026-03-02)." in said
    assert "pick a date" not in said
