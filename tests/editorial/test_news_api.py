"""News items over the editors' API: auth, CRUD, validation, sanitising, feed import."""

from __future__ import annotations

import httpx
import pytest

from newsletter.core.db import Database
from tests.conftest import bearer

Client = httpx.AsyncClient


async def editor(db: Database) -> dict[str, str]:
    return await bearer(db, "editor")


async def test_auth_required_and_roles(client: Client, db: Database) -> None:
    response = await client.get("/api/v1/news-items")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    response = await client.get("/api/v1/news-items", headers={"Authorization": "Bearer nl_wrong"})
    assert response.status_code == 401
    ops = await bearer(db, "ops")
    response = await client.post("/api/v1/news-items", json={"title": "x"}, headers=ops)
    assert response.status_code == 403
    admin = await bearer(db, "admin")
    response = await client.post("/api/v1/news-items", json={"title": "x"}, headers=admin)
    assert response.status_code == 201


async def test_crud_with_audit(client: Client, db: Database) -> None:
    headers = await editor(db)
    created = await client.post(
        "/api/v1/news-items",
        json={
            "title": "  김포 소식  ",
            "summary": "요약",
            "body": '<p onclick="x()">본문 <a href="https://gimpo.go.kr" onclick="x()">시청</a>'
            "</p><script>alert(1)</script>",
            "link": "https://www.gimpo.go.kr/news/1",
            "image_url": "https://www.gimpo.go.kr/i.png",
            "image_alt": "시청 전경",
            "category": "행정",
            "published_at": "2026-03-02T09:00:00",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["title"] == "김포 소식"
    assert item["status"] == "published" and item["id"] >= 1
    assert "<script" not in item["body"] and "onclick" not in item["body"]
    assert "javascript:" not in item["body"]
    assert 'href="https://gimpo.go.kr"' in item["body"]
    # Naive times are Asia/Seoul.
    assert item["published_at"].startswith("2026-03-02T00:00:00")

    got = await client.get(f"/api/v1/news-items/{item['id']}", headers=headers)
    assert got.status_code == 200 and got.json() == item

    replaced = await client.put(
        f"/api/v1/news-items/{item['id']}",
        json={"title": "바뀐 제목", "link": "https://www.gimpo.go.kr/news/1"},
        headers=headers,
    )
    assert replaced.status_code == 200
    assert replaced.json()["title"] == "바뀐 제목" and replaced.json()["summary"] == ""
    assert replaced.json()["status"] == "published"
    listed = await client.get("/api/v1/news-items", headers=headers)
    assert [(i["id"], i["status"]) for i in listed.json()["items"]] == [(item["id"], "published")]
    schema = (await client.get("/api/docs/openapi.json")).json()["components"]["schemas"]
    out = next(s for name, s in schema.items() if name.endswith("NewsItemOut"))
    assert "status" in out["required"] and out["properties"]["status"].get("const") == "published"

    duplicate = await client.post(
        "/api/v1/news-items",
        json={"title": "또", "link": "https://www.gimpo.go.kr/news/1"},
        headers=headers,
    )
    assert duplicate.status_code == 409

    deleted = await client.delete(f"/api/v1/news-items/{item['id']}", headers=headers)
    assert deleted.status_code == 204
    assert (
        await client.get(f"/api/v1/news-items/{item['id']}", headers=headers)
    ).status_code == 404
    actions = [r["action"] for r in await db.pool.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["news_item.create", "news_item.update", "news_item.delete"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "x", "link": "javascript:alert(1)"}, "link"),
        ({"title": "x", "link": "ftp://gimpo.go.kr/a"}, "link"),
        ({"title": "x", "image_url": "data:image/png;base64,AAAA"}, "image_url"),
        ({"title": "x", "link": "https://"}, "link"),
        ({"title": "x\u0000y"}, "title"),
        ({"title": "x", "published_at": "not a date"}, "published_at"),
        ({"title": "x", "published_at": "1850-01-01T00:00:00"}, "published_at"),
        ({"title": "x", "unknown": 1}, "unknown"),
    ],
)
async def test_validation(
    client: Client, db: Database, payload: dict[str, object], field: str
) -> None:
    response = await client.post("/api/v1/news-items", json=payload, headers=await editor(db))
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"
    assert field in response.text


async def test_huge_and_malformed_payloads(client: Client, db: Database) -> None:
    headers = await editor(db)
    huge = await client.post(
        "/api/v1/news-items", json={"title": "x", "body": "가" * 1_200_000}, headers=headers
    )
    assert huge.status_code == 413
    broken = await client.post(
        "/api/v1/news-items",
        content=b"{not json",
        headers={**headers, "content-type": "application/json"},
    )
    assert broken.status_code == 400
    assert (
        await client.get("/api/v1/news-items/99999999999999999999", headers=headers)
    ).status_code in (404, 422)
    assert (
        await client.get("/api/v1/news-items/9223372036854775807", headers=headers)
    ).status_code == 404


async def test_list_paging_and_date_filter(client: Client, db: Database) -> None:
    headers = await editor(db)
    for day in range(1, 6):
        response = await client.post(
            "/api/v1/news-items",
            json={"title": f"3월 {day}일 소식", "published_at": f"2026-03-0{day}T12:00:00+09:00"},
            headers=headers,
        )
        assert response.status_code == 201
    page = (await client.get("/api/v1/news-items?per_page=2&page=2", headers=headers)).json()
    assert page["total"] == 5 and page["page"] == 2
    assert [i["title"] for i in page["items"]] == ["3월 3일 소식", "3월 2일 소식"]
    filtered = await client.get(
        "/api/v1/news-items",
        params={"published_from": "2026-03-02T00:00:00", "published_to": "2026-03-03T23:59:59"},
        headers=headers,
    )
    assert [i["title"] for i in filtered.json()["items"]] == ["3월 3일 소식", "3월 2일 소식"]
    assert (await client.get("/api/v1/news-items?per_page=1000", headers=headers)).status_code in (
        400,
        422,
    )
