"""What a person gets for the bare address and for an address that does not exist."""

from __future__ import annotations

import httpx


async def test_bare_address_leads_to_the_signup_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/", follow_redirects=False)
    assert response.status_code in (302, 303, 307)
    assert response.headers["location"] == "/subscribe"
    page = await client.get("/", follow_redirects=True)
    assert page.status_code == 200
    assert "<form" in page.text and 'name="email"' in page.text


async def test_unknown_page_is_a_korean_page(client: httpx.AsyncClient) -> None:
    for path in ("/no-such-page", "/subscribe/extra", "/archive/abc", "/dev/outbox"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers.get_list("content-type") == ["text/html; charset=utf-8"]
        assert '<html lang="ko">' in response.text
        assert "<h1>페이지를 찾을 수 없습니다</h1>" in response.text
        assert 'href="/subscribe"' in response.text
        assert '"error"' not in response.text


async def test_unknown_api_path_keeps_the_json_error(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/no-such-thing", "/api/v2/issues", "/api"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert body["error"] == "not_found" and "detail" in body
