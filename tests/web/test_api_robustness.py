"""Bad input on every /api/v1 route answers a 4xx in the one error shape, never
a 500: integers beyond PostgreSQL's bigint, and NUL characters (which
PostgreSQL refuses in text) in query strings, JSON bodies, CSV and bounces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from newsletter.core.db import Database
from tests.conftest import bearer

Client = httpx.AsyncClient

SOON = (datetime.now(UTC) + timedelta(days=7)).isoformat()
HUGE = 2**70
JUST_OVER = 2**63

ID_ROUTES = [
    ("GET", "/api/v1/subscribers/{}"),
    ("DELETE", "/api/v1/subscribers/{}"),
    ("GET", "/api/v1/issues/{}/stats"),
    ("GET", "/api/v1/news-items/{}"),
    ("PUT", "/api/v1/news-items/{}"),
    ("DELETE", "/api/v1/news-items/{}"),
    ("GET", "/api/v1/issues/{}"),
    ("PUT", "/api/v1/issues/{}"),
    ("DELETE", "/api/v1/issues/{}"),
    ("GET", "/api/v1/issues/{}/preview"),
    ("POST", "/api/v1/issues/{}/test-send"),
    ("POST", "/api/v1/issues/{}/schedule"),
    ("POST", "/api/v1/issues/{}/send-now"),
    ("POST", "/api/v1/issues/{}/pause"),
    ("POST", "/api/v1/issues/{}/resume"),
    ("POST", "/api/v1/issues/{}/cancel"),
]

BODIES = {
    "/api/v1/news-items/{}": {"title": "제목"},
    "/api/v1/issues/{}": {"title": "제목"},
    "/api/v1/issues/{}/test-send": {"addresses": ["editor@example.com"]},
    "/api/v1/issues/{}/schedule": {"send_at": SOON},
}


def assert_client_error(response: httpx.Response, *statuses: int) -> None:
    assert response.status_code in statuses, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert "Traceback" not in response.text


@pytest.fixture
async def admin(db: Database) -> dict[str, str]:
    return await bearer(db, "admin")


@pytest.mark.parametrize("value", [HUGE, JUST_OVER, 2**63 - 1, 0, -1])
async def test_ids_beyond_bigint_are_client_errors(
    client: Client, admin: dict[str, str], value: int
) -> None:
    for method, template in ID_ROUTES:
        json = BODIES.get(template) if method in ("PUT", "POST") else None
        response = await client.request(method, template.format(value), headers=admin, json=json)
        # The largest bigint is a valid id that does not exist: 404; the rest
        # cannot be ids at all.
        expected = (404,) if value == 2**63 - 1 else (422,)
        assert_client_error(response, *expected)
        if value != 2**63 - 1:
            assert response.json()["error"] == "invalid_input"


async def test_query_integers_are_bounded(client: Client, admin: dict[str, str]) -> None:
    for path, params in (
        ("/api/v1/subscribers", {"after": HUGE}),
        ("/api/v1/subscribers", {"after": -1}),
        ("/api/v1/subscribers", {"limit": HUGE}),
        ("/api/v1/subscribers", {"limit": 0}),
        ("/api/v1/news-items", {"page": HUGE}),
        ("/api/v1/news-items", {"per_page": HUGE}),
        ("/api/v1/issues", {"page": HUGE}),
        ("/api/v1/stats", {"issues": HUGE}),
    ):
        response = await client.get(path, params=params, headers=admin)
        assert_client_error(response, 422)
    fine = await client.get("/api/v1/subscribers", params={"after": 2**63 - 1}, headers=admin)
    assert fine.status_code == 200 and fine.json()["items"] == []


async def test_archive_number_beyond_integer(client: Client) -> None:
    # A public page: numbers that cannot exist get the friendly 404 page.
    for number in (HUGE, JUST_OVER, 2**31, 2**31 - 1, 0):
        response = await client.get(f"/archive/{number}")
        assert response.status_code == 404, response.text
        assert "찾을 수 없습니다" in response.text
    listing = await client.get("/archive", params={"page": HUGE})
    assert listing.status_code in (200, 400), listing.text  # clamped by issues.archive_page


async def test_nul_in_query_strings(client: Client, admin: dict[str, str]) -> None:
    for path, params in (
        ("/api/v1/subscribers", {"email_prefix": "a\x00b"}),
        ("/api/v1/subscribers", {"status": "active\x00"}),
        ("/api/v1/subscribers/export", {"status": "active\x00"}),
    ):
        response = await client.get(path, params=params, headers=admin)
        assert_client_error(response, 422)
        messages = [item["message"] for item in response.json()["detail"]]
        assert messages == ["must not contain NUL (\\u0000) characters"], messages
    imported = await client.post(
        "/api/v1/subscribers/import",
        params={"mode": "confirmed", "source": "설문\x00지"},
        content=b"email\nnul@example.com\n",
        headers={**admin, "content-type": "text/csv"},
    )
    assert_client_error(imported, 422)


async def test_nul_in_json_bodies(client: Client, admin: dict[str, str]) -> None:
    item = await client.post("/api/v1/news-items", json={"title": "소식"}, headers=admin)
    assert item.status_code == 201, item.text
    item_id = item.json()["id"]
    for field in ("title", "summary", "body", "link", "image_url", "category"):
        value = "https://x.example/\x00" if field in ("link", "image_url") else "a\x00b"
        payload = {"title": "소식", field: value}
        created = await client.post("/api/v1/news-items", json=payload, headers=admin)
        assert_client_error(created, 422)
        updated = await client.put(f"/api/v1/news-items/{item_id}", json=payload, headers=admin)
        assert_client_error(updated, 422)
    feed = await client.post(
        "/api/v1/news-items/import-feed", json={"url": "https://x.example/\x00"}, headers=admin
    )
    assert_client_error(feed, 422)

    issue = await client.post("/api/v1/issues", json={"title": "호"}, headers=admin)
    assert issue.status_code == 201, issue.text
    issue_id = issue.json()["id"]
    for payload in ({"title": "a\x00"}, {"title": "호", "intro": "\x00"}):
        assert_client_error(await client.post("/api/v1/issues", json=payload, headers=admin), 422)
        assert_client_error(
            await client.put(f"/api/v1/issues/{issue_id}", json=payload, headers=admin), 422
        )
    control: list[tuple[str, dict[str, object]]] = [
        ("test-send", {"addresses": ["a\x00@example.com"]}),
        ("schedule", {"send_at": SOON + "\x00"}),
    ]
    for path, body in control:
        response = await client.post(f"/api/v1/issues/{issue_id}/{path}", json=body, headers=admin)
        assert_client_error(response, 422)


async def test_nul_in_csv_import_is_reported_not_stored(
    client: Client, admin: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/subscribers/import",
        params={"mode": "confirmed", "source": "2024 설문"},
        content="email,name\nnul\x00@example.com,김\nok@example.com,이\x00름\nfine@example.com,박\n".encode(),
        headers={**admin, "content-type": "text/csv"},
    )
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        report = response.json()
        assert report["inserted"] == 1
        assert len(report["errors"]) == 2
    listed = await client.get("/api/v1/subscribers", headers=admin)
    assert all("\x00" not in (s["name"] or "") for s in listed.json()["items"])


async def test_nul_in_bounce_body(client: Client, admin: dict[str, str]) -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example\r\nTo: bounces@gimpo.go.kr\r\n"
        b"Subject: Undelivered\x00 Mail\r\nMessage-ID: <a\x00b@mx.example>\r\n"
        b"Content-Type: text/plain\r\n\r\n"
        b"<nobody\x00@example.com>: host said: 550 5.1.1 unknown user\x00\r\n"
    )
    response = await client.post(
        "/api/v1/bounces", content=raw, headers={**admin, "content-type": "message/rfc822"}
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_client_error(response, 400, 422)
