"""Requests a security review sent, each of which once answered 500: each is
now a 4xx with the JSON error shape (or the Korean page, on pages)."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from tests.conftest import bearer
from tests.support.console import login, make_user
from tests.support.processes import serving

Client = httpx.AsyncClient
DEEP_ARRAY = "[" * 1100 + "]" * 1100
DEEP_OBJECT = '{"a":' * 1100 + "1" + "}" * 1100


def assert_json_error(response: httpx.Response, *statuses: int) -> None:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error", "detail"}, body


@pytest.mark.parametrize("document", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
@pytest.mark.parametrize(
    "path", ["/subscribe", "/api/v1/news-items", "/api/v1/issues", "/api/v1/news-items/import-feed"]
)
async def test_deeply_nested_json_is_a_400(
    client: Client, db: Database, path: str, document: str
) -> None:
    headers = {**await bearer(db, "admin"), "content-type": "application/json"}
    response = await client.post(path, content=document, headers=headers)
    assert_json_error(response, 400, 422)


async def test_huge_issue_numbers_on_the_ops_pages_are_not_a_500(
    client: Client, db: Database
) -> None:
    """/ops now sends people to the console's ops page; neither breaks on an
    issue number beyond the database's range."""
    user = await make_user(db, "ops")
    await login(client, user.email)
    for value in (str(2**70), "-1", "0", "1e9", "x"):
        moved = await client.get("/ops", params={"issue": value})
        assert moved.status_code == 301
        page = await client.get("/admin/ops", params={"issue": value})
        # A number no issue can have is a clear console page (typed parameters:
        # 400 in Korean), never a 500.
        assert page.status_code in (200, 400, 404), (value, page.text[:200])
        assert "<main" in page.text


async def test_signed_tokens_with_huge_ids_are_a_clear_400(
    client: Client, settings: Settings
) -> None:
    """Even a correctly signed link (someone who had the key) naming an id no
    row can have gets the Korean "not a valid link" page, not a 500."""
    digest = {"digest_method": hashlib.sha256}
    unsubscribe = URLSafeSerializer(
        settings.secret_key, salt="unsubscribe", signer_kwargs=digest
    ).dumps(2**70)
    confirm = URLSafeTimedSerializer(
        settings.secret_key, salt="confirm", signer_kwargs=digest
    ).dumps(2**70)
    for response in (
        await client.get(f"/unsubscribe?token={unsubscribe}"),
        await client.post(
            f"/unsubscribe?token={unsubscribe}", data={"List-Unsubscribe": "One-Click"}
        ),
        await client.get(f"/confirm?token={confirm}"),
        await client.post("/confirm", data={"token": confirm}),
    ):
        assert response.status_code == 400, response.text[:200]
        assert "올바르지 않은 링크" in response.text


async def test_garbage_forwarded_for_from_a_trusted_proxy_is_not_a_500(
    database_url: str, db: Database
) -> None:
    async with (
        serving(database_url, TRUSTED_PROXIES="127.0.0.1") as served,
        httpx.AsyncClient(base_url=served.base_url) as http,
    ):
        for forwarded in ("not-an-ip", "<script>, 999.1.1.1", "::ffff:zz", "1.2.3.4:80"):
            response = await http.post(
                "/subscribe",
                data={"email": f"xff{len(forwarded)}@example.com", "consent": "on"},
                headers={"x-forwarded-for": forwarded},
            )
            assert response.status_code == 200, (forwarded, response.text[:200])
    ips = [r["ip"] for r in await db.pool.fetch("SELECT host(ip) AS ip FROM consent_events")]
    assert len(ips) == 4 and set(ips) <= {None, "1.2.3.4"}
