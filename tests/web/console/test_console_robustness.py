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
