"""Every page and endpoint that shows a resident's address records that read
-- who, what, from where and whose -- in the access log, console and API
alike; the privacy officer reads it back through ``/api/v1/access-log``."""

from __future__ import annotations

import html
from typing import Any

import httpx

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from tests.conftest import bearer
from tests.support.console import login, make_user, page_csrf
from tests.support.roster import import_text

Client = httpx.AsyncClient
ROSTER = "kim@example.com,김민지\nlee@example.com,이하은\npark@example.org,박서준\n"


async def _ids(db: Database) -> dict[str, int]:
    rows = await db.pool.fetch("SELECT id, email FROM subscribers")
    return {row["email"]: row["id"] for row in rows}


async def _log(client: Client, officer: dict[str, str]) -> list[dict[str, Any]]:
    """The access log, oldest first, as the privacy officer reads it (that
    read is recorded too and left out here)."""
    answer = await client.get("/api/v1/access-log", headers=officer)
    assert answer.status_code == 200, answer.text
    entries = [e for e in answer.json()["items"] if e["action"] != "access_log.read"]
    return list(reversed(entries))


async def test_every_console_page_showing_an_address_records_whose(
    client: Client, db: Database, settings: Settings
) -> None:
    await import_text(db, settings, ROSTER)
    ids = await _ids(db)
    kim, lee, park = ids["kim@example.com"], ids["lee@example.com"], ids["park@example.org"]
    admin = await make_user(db, "admin", name="개인정보 담당 홍길동")
    await login(client, admin.email)

    listed = await client.get("/admin/subscribers")
    searched = await client.get("/admin/subscribers", params={"q": "kim"})
    one = await client.get(f"/admin/subscribers/{kim}")
    csrf = await page_csrf(client)
    asked = await client.post(f"/admin/subscribers/{lee}/erase", data={"csrf_token": csrf})
    mistyped = await client.post(
        f"/admin/subscribers/{lee}/erase",
        data={"csrf_token": csrf, "confirmed": "yes", "typed": "kim@example.com"},
    )
    exported = await client.get("/admin/subscribers/export.csv")
    assert [r.status_code for r in (listed, searched, one, asked, exported)] == [200] * 5
    assert mistyped.status_code == 422
    for page, shown in (
        (listed, ("kim@example.com", "lee@example.com", "park@example.org")),
        (searched, ("kim@example.com",)),
        (one, ("kim@example.com",)),
        (asked, ("lee@example.com",)),
        (mistyped, ("lee@example.com",)),
        (exported, ("kim@example.com", "park@example.org")),
    ):
        assert all(address in html.unescape(page.text) for address in shown)
    # A wrong address typed erases nobody.
    assert await db.pool.fetchval("SELECT email FROM subscribers WHERE id = $1", lee)

    entries = await _log(client, await bearer(db, "admin", name="감사"))
    assert [(e["action"], sorted(e["subscriber_ids"])) for e in entries] == [
        ("subscribers.list", sorted([kim, lee, park])),
        ("subscribers.search", [kim]),
        ("subscriber.get", [kim]),
        ("subscriber.erase_confirm", [lee]),
        ("subscriber.erase_confirm", [lee]),
        ("subscribers.export", []),  # everybody: the whole roster left
    ]
    for entry in entries:
        assert entry["actor_name"] == f"개인정보 담당 홍길동 <{admin.email}>"
        assert entry["actor"] == f"user:{admin.id}" and entry["role"] == "admin"
        assert entry["ip"] == "203.0.113.7"
    assert entries[1]["query"] == {"email_prefix": "kim"}
    assert entries[3]["description"].startswith("구독자 삭제 확인")

    # "Who looked at Lee?" finds the roster page and both erasure pages.
    about_lee = await client.get(
        "/api/v1/access-log", params={"subscriber_id": lee}, headers=await bearer(db, "admin")
    )
    assert [e["action"] for e in reversed(about_lee.json()["items"])] == [
        "subscribers.list",
        "subscriber.erase_confirm",
        "subscriber.erase_confirm",
    ]

    # The right address erases, and that page shows nobody: no read recorded.
    before = await db.pool.fetchval("SELECT count(*) FROM access_log")
    erased = await client.post(
        f"/admin/subscribers/{lee}/erase",
        data={"csrf_token": csrf, "confirmed": "yes", "typed": " LEE@example.com "},
    )
    assert erased.status_code == 303
    assert await db.pool.fetchval("SELECT email FROM subscribers WHERE id = $1", lee) is None
    assert await db.pool.fetchval("SELECT count(*) FROM access_log") == before


async def test_every_api_read_of_a_person_records_whose(
    client: Client, db: Database, settings: Settings
) -> None:
    await import_text(db, settings, ROSTER)
    ids = await _ids(db)
    kim, lee, park = ids["kim@example.com"], ids["lee@example.com"], ids["park@example.org"]
    admin = await bearer(db, "admin", name="자료 담당")

    pages = [
        await client.get("/api/v1/subscribers", params={"limit": 2}, headers=admin),
        await client.get("/api/v1/subscribers", params={"limit": 2, "after": lee}, headers=admin),
        await client.get("/api/v1/subscribers", params={"status": "active"}, headers=admin),
        await client.get("/api/v1/subscribers", params={"email_prefix": "PARK"}, headers=admin),
        await client.get(f"/api/v1/subscribers/{lee}", headers=admin),
        await client.get("/api/v1/subscribers/export", headers=admin),
    ]
    assert [p.status_code for p in pages] == [200] * 6
    assert [i["email"] for i in pages[3].json()["items"]] == ["park@example.org"]

    entries = await _log(client, admin)
    assert [(e["action"], sorted(e["subscriber_ids"]), e["rows"]) for e in entries] == [
        ("subscribers.list", [kim, lee], 2),
        ("subscribers.list", [park], 1),
        ("subscribers.list", sorted([kim, lee, park]), 3),
        ("subscribers.search", [park], 1),
        ("subscriber.get", [lee], 1),
        ("subscribers.export", [], None),
    ]
    assert all(e["actor_name"] == "자료 담당" and e["ip"] == "203.0.113.7" for e in entries)
    assert entries[2]["query"] == {"status": "active"}

    # One person's page is recorded once, in the audit trail too; an unknown
    # id shows nobody and records nothing.
    missing = await client.get(f"/api/v1/subscribers/{park + 1000}", headers=admin)
    assert missing.status_code == 404
    assert (
        await db.pool.fetchval("SELECT count(*) FROM access_log WHERE action = 'subscriber.get'")
        == 1
    )
    assert (
        await db.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'personal_data.read.subscriber.get'"
        )
        == 1
    )


async def test_console_ids_and_pages_are_typed_parameters_with_a_clear_4xx(
    client: Client, db: Database
) -> None:
    """What used to be parsed by hand (digits, lengths) is a typed parameter:
    nonsense is a Korean console page with a 4xx, never a 500 or a silent
    first page -- and a refused read of a person records nothing."""
    admin = await make_user(db, "admin")
    await login(client, admin.email)
    for path in (
        "/admin/subscribers?after=abc",
        "/admin/subscribers?after=99999999999999999999",
        f"/admin/subscribers/{2**63}",
        "/admin/subscribers/0",
        "/admin/issues?page=%C2%B2",  # "²" passes str.isdigit but not int()
        "/admin/news?page=0",
        "/admin/ops?issue=-1",
        "/admin/audit?before=x",
        "/admin/issues/1/deliveries?after=-5",
    ):
        answer = await client.get(path)
        assert 400 <= answer.status_code < 500, path
        assert answer.headers["content-type"].startswith("text/html"), path
        assert "콘솔" in answer.text, path
    # A form's ids are not typed parameters: "²" is ignored, not a 500.
    csrf = await page_csrf(client)
    issue_id = await db.pool.fetchval("INSERT INTO issues (title) VALUES ('순서') RETURNING id")
    moved = await client.post(
        f"/admin/issues/{issue_id}",
        data={"csrf_token": csrf, "title": "순서", "item": ["²", "1"], "op": "up:²"},
    )
    assert moved.status_code < 500
    assert await db.pool.fetchval("SELECT count(*) FROM access_log") == 0
