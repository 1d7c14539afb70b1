"""/api/v1/subscribers over HTTP: roles, paging, import, export, erasure."""

from __future__ import annotations

import codecs
import csv
import io

import httpx

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from tests.support.roster import auth, import_text, status_of

Client = httpx.AsyncClient


async def test_roles_guard_personal_data(client: Client, db: Database, settings: Settings) -> None:
    """Editors see how many, never who: the roster, one person and the consent
    history need the admin role."""
    await import_text(db, settings, "kim@example.com,김\nlee@example.com,이\n")
    editor = await auth(db, "editor")
    ops = await auth(db, "ops")
    admin = await auth(db, "admin")
    assert (await client.get("/api/v1/subscribers")).status_code == 401
    assert (await client.get("/api/v1/subscribers", headers=editor)).status_code == 403
    assert (await client.get("/api/v1/subscribers", headers=ops)).status_code == 403
    assert (await client.get("/api/v1/subscribers", headers=admin)).status_code == 200
    counts = await client.get("/api/v1/subscribers/counts", headers=editor)
    assert counts.status_code == 200, counts.text
    assert counts.json()["by_status"]["active"] == 2 and counts.json()["total"] == 2
    assert "kim@example.com" not in counts.text
    for method, path in (
        ("GET", "/api/v1/subscribers/1"),
        ("GET", "/api/v1/subscribers/export"),
        ("POST", "/api/v1/subscribers/import?mode=invite"),
        ("DELETE", "/api/v1/subscribers/1"),
    ):
        response = await client.request(method, path, headers=editor, content=b"a@example.com\n")
        assert response.status_code == 403, (method, path)
        assert response.json()["error"] == "forbidden"


async def test_keyset_paging_and_filters(client: Client, db: Database, settings: Settings) -> None:
    rows = "".join(f"user{i:02d}@example.com,이름{i}\n" for i in range(25))
    await import_text(db, settings, rows + "other@example.org\n")
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'user03@example.com'"
        )
    admin = await auth(db, "admin")
    seen: list[str] = []
    after = 0
    while True:
        page = await client.get(
            "/api/v1/subscribers", params={"limit": 10, "after": after}, headers=admin
        )
        assert page.status_code == 200
        body = page.json()
        seen.extend(item["email"] for item in body["items"])
        if body["next_after"] is None:
            break
        after = body["next_after"]
    assert len(seen) == 26 and len(set(seen)) == 26

    found = await client.get("/api/v1/subscribers", params={"email_prefix": "USER1"}, headers=admin)
    assert [i["email"] for i in found.json()["items"]] == [
        f"user1{i}@example.com" for i in range(10)
    ]
    left = await client.get("/api/v1/subscribers", params={"status": "unsubscribed"}, headers=admin)
    assert [i["email"] for i in left.json()["items"]] == ["user03@example.com"]
    bad = await client.get("/api/v1/subscribers", params={"status": "nope"}, headers=admin)
    assert bad.status_code == 422
    one = left.json()["items"][0]["id"]
    detail = await client.get(f"/api/v1/subscribers/{one}", headers=admin)
    assert detail.status_code == 200
    assert detail.json()["consent_events"][0]["kind"] == "import"
    assert (await client.get("/api/v1/subscribers/999999", headers=admin)).status_code == 404


async def test_import_as_csv_body_and_multipart(client: Client, db: Database) -> None:
    admin = await auth(db, "admin")
    body = "이메일,이름\nbody@example.com,본문\nbroken,깨짐\n".encode("cp949")
    response = await client.post(
        "/api/v1/subscribers/import",
        params={"mode": "confirmed", "source": "2023 설문"},
        content=body,
        headers={**admin, "content-type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["inserted"], report["invalid"], report["encoding"]) == (1, 1, "cp949")
    assert report["errors"][0]["line"] == 3

    upload = await client.post(
        "/api/v1/subscribers/import",
        params={"mode": "invite"},
        files={"file": ("list.csv", b"email\nfile@example.com\n", "text/csv")},
        headers=admin,
    )
    assert upload.status_code == 200, upload.text
    assert upload.json()["invited"] == 1
    assert await status_of(db, "file@example.com") == "pending"

    no_source = await client.post(
        "/api/v1/subscribers/import",
        content=b"x@example.com\n",
        headers={**admin, "content-type": "text/csv"},
    )
    assert no_source.status_code == 422 and no_source.json()["error"] == "invalid_input"
    empty = await client.post(
        "/api/v1/subscribers/import?mode=invite",
        content=b"",
        headers={**admin, "content-type": "text/csv"},
    )
    assert empty.status_code == 422
    wrong = await client.post(
        "/api/v1/subscribers/import?mode=invite", json={"a": 1}, headers=admin
    )
    assert wrong.status_code == 422


async def test_export_streams_csv_with_bom_and_neutralised_formulas(
    client: Client, db: Database, settings: Settings
) -> None:
    await import_text(
        db,
        settings,
        "email,name,subscribed_at,source\n"
        'calc@example.com,"=cmd()|\' /C calc\'!A0",2024-01-01,"+plus"\n'
        "plain@example.com,홍길동,,web\n",
    )
    admin = await auth(db, "admin")
    async with client.stream(
        "GET", "/api/v1/subscribers/export", params={"bom": 1}, headers=admin
    ) as response:
        assert response.status_code == 200
        assert response.headers.get_list("content-type") == ["text/csv; charset=utf-8"]
        assert "attachment" in response.headers["content-disposition"]
        data = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert data.startswith(codecs.BOM_UTF8)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["email", "name", "status", "subscribed_at", "last_consent_at", "source"]
    calc = next(r for r in rows if r[0] == "calc@example.com")
    assert calc[1] == "'=cmd()|' /C calc'!A0"
    assert calc[5] == "'+plus"
    assert calc[3].startswith("2024-01-01T00:00:00+09:00")
    plain_row = next(r for r in rows if r[0] == "plain@example.com")
    assert plain_row[:2] == ["plain@example.com", "홍길동"]

    # The export re-imports losslessly: the guard quote is taken off again.
    plain = await client.get("/api/v1/subscribers/export", headers=admin)
    assert not plain.content.startswith(codecs.BOM_UTF8)
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM subscribers")
    again = await import_text(db, settings, plain.content)
    assert again.inserted == 2
    row = await db.fetchrow("get_subscriber_by_email", "calc@example.com")
    assert row is not None and row["name"] == "=cmd()|' /C calc'!A0"


async def test_delete_erases_and_is_audited(
    client: Client, db: Database, settings: Settings
) -> None:
    await import_text(db, settings, "del@example.com,삭제\n")
    row = await db.fetchrow("get_subscriber_by_email", "del@example.com")
    assert row is not None
    admin = await auth(db, "admin")
    response = await client.delete(f"/api/v1/subscribers/{row['id']}", headers=admin)
    assert response.status_code == 200
    assert response.json() == {"id": row["id"], "status": "erased"}
    assert await status_of(db, "del@example.com") is None
    assert (
        await client.delete(f"/api/v1/subscribers/{row['id']}", headers=admin)
    ).status_code == 404
    async with db.pool.acquire() as conn:
        audit = await conn.fetchrow(
            "SELECT actor, api_key_id, target FROM audit_log WHERE action = 'subscriber.erase'"
        )
    assert audit is not None and audit["api_key_id"] is not None
    assert audit["target"] == f"subscriber:{row['id']}"
