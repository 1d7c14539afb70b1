"""Odd but ordinary input on console pages: a clear Korean answer with a 4xx,
never a 500, never the API's JSON."""

from __future__ import annotations

import httpx

from newsletter.core.db import Database
from tests.support.console import login, make_user, page_csrf

BEYOND_BIGINT = 2**63


async def test_a_search_with_a_nul_character_finds_nobody_instead_of_failing(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin = await make_user(db, "admin")
    await login(client, admin.email)
    answer = await client.get("/admin/subscribers", params={"q": "kim\x00"})
    assert answer.status_code == 200
    assert "구독자" in answer.text


async def test_an_account_number_beyond_any_id_is_not_found(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin = await make_user(db, "admin")
    await login(client, admin.email)
    page = await client.get(f"/admin/users/{BEYOND_BIGINT}")
    assert page.status_code == 404
    assert "<title>찾을 수 없습니다" in page.text
    csrf = await page_csrf(client, "/admin/users")
    change = await client.post(f"/admin/users/{BEYOND_BIGINT}/disable", data={"csrf_token": csrf})
    assert change.status_code == 404
    assert "계정" in change.text and "없습니다" in change.text


async def test_a_console_address_opened_the_wrong_way_gets_a_console_page(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    # A bookmark of the logout button, or a state change's address typed in.
    for path in ("/admin/logout", "/admin/issues/1/send-now"):
        answer = await client.get(path)
        assert answer.status_code == 405
        assert answer.headers["content-type"].startswith("text/html")
        assert "<title>이 방법으로는 열 수 없습니다" in answer.text
        assert "콘솔" in answer.text
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    unknown = await client.get("/admin/no-such-page")
    assert unknown.status_code == 404
    assert "<title>찾을 수 없습니다" in unknown.text and "콘솔" in unknown.text
    assert "구독 페이지로" not in unknown.text  # not the residents' 404


async def test_a_residents_page_opened_the_wrong_way_says_so_in_their_language(
    client: httpx.AsyncClient,
) -> None:
    korean = await client.put("/subscribe")
    assert korean.status_code == 405
    assert korean.headers["content-type"].startswith("text/html")
    assert "이 방법으로는 열 수 없는 주소입니다" in korean.text
    english = await client.delete("/archive", headers={"Accept-Language": "en"})
    assert english.status_code == 405
    assert "This address cannot be opened this way" in english.text
    api = await client.put("/api/v1/news-items")
    assert api.status_code == 405
    assert api.json()["error"] == "method_not_allowed"


async def test_a_broken_or_empty_upload_is_refused_next_to_the_file_field(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin = await make_user(db, "admin")
    await login(client, admin.email)
    csrf = await page_csrf(client, "/admin/subscribers/import")
    cut_short = (
        b'--XYZ\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        + csrf.encode()
        + b'\r\n--XYZ\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
        b"\r\nemail\r\nkim@example.com\r\n--XY"
    )
    broken = await client.post(
        "/admin/subscribers/import",
        content=cut_short,
        headers={"Content-Type": "multipart/form-data; boundary=XYZ"},
    )
    assert broken.status_code in (403, 422)  # no token read: refused either way, never 500
    empty = await client.post(
        "/admin/subscribers/import",
        data={"csrf_token": csrf, "mode": "confirmed", "source": "설문"},
        files={"file": ("빈 파일.csv", b"", "text/csv")},
    )
    assert empty.status_code == 422
    assert 'id="file-error"' in empty.text and "CSV 파일을 골라 주세요" in empty.text
    assert await db.pool.fetchval("SELECT count(*) FROM subscribers") == 0
    assert await db.pool.fetchval("SELECT count(*) FROM roster_imports") == 0
