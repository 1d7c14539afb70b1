"""Every read of personal data is recorded -- who, when, from where, what,
whose -- kept at least a year, and the privacy officer can read it back."""

from __future__ import annotations

import json
import subprocess
import sys

import asyncpg
import httpx
import pytest

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from tests.conftest import ROOT, TEST_SECRET_KEY, bearer
from tests.support.roster import import_text

Client = httpx.AsyncClient


async def test_api_reads_are_recorded_with_who_when_where_and_whose(
    client: Client, db: Database, settings: Settings
) -> None:
    await import_text(db, settings, "kim@example.com,김민지\nlee@example.com,이하은\n")
    admin = await bearer(db, "admin", name="개인정보 담당 홍길동")
    kim = await db.fetchrow("get_subscriber_by_email", "kim@example.com")
    assert kim is not None

    listed = await client.get("/api/v1/subscribers", headers=admin)
    searched = await client.get("/api/v1/subscribers", params={"email_prefix": "ki"}, headers=admin)
    one = await client.get(f"/api/v1/subscribers/{kim['id']}", headers=admin)
    exported = await client.get(
        "/api/v1/subscribers/export", params={"reason": "감사 자료"}, headers=admin
    )
    assert [r.status_code for r in (listed, searched, one, exported)] == [200] * 4
    assert one.json()["consent_events"]  # the consent history was shown

    log = await client.get("/api/v1/access-log", headers=admin)
    assert log.status_code == 200, log.text
    entries = log.json()["items"]
    actions = [e["action"] for e in reversed(entries)]
    assert actions == [
        "subscribers.list",
        "subscribers.search",
        "subscriber.get",
        "subscribers.export",
    ]
    for entry in entries:
        assert entry["actor_name"] == "개인정보 담당 홍길동" and entry["actor"].startswith(
            "api_key:"
        )
        assert entry["ip"] == "203.0.113.7" and entry["role"] == "admin"
        assert entry["occurred_at"]
    by_action = {e["action"]: e for e in entries}
    assert sorted(by_action["subscribers.list"]["subscriber_ids"]) == sorted(
        [kim["id"], kim["id"] + 1]
    )
    assert by_action["subscribers.search"]["query"] == {"email_prefix": "ki"}
    assert by_action["subscriber.get"]["subscriber_ids"] == [kim["id"]]
    assert by_action["subscriber.get"]["description"].startswith("구독자 상세 조회")
    assert by_action["subscribers.export"]["query"] == {"reason": "감사 자료"}

    # Whose data: the officer can ask who looked at one person.
    about_kim = await client.get(
        "/api/v1/access-log", params={"subscriber_id": kim["id"]}, headers=admin
    )
    assert {e["action"] for e in about_kim.json()["items"]} == {
        "subscribers.list",
        "subscribers.search",
        "subscriber.get",
    }
    # Reading the log is access too.
    again = (await client.get("/api/v1/access-log", headers=admin)).json()["items"]
    assert again[0]["action"] == "access_log.read"


async def test_editors_and_ops_cannot_read_personal_data_or_the_log(
    client: Client, db: Database, settings: Settings
) -> None:
    await import_text(db, settings, "kim@example.com,김민지\n")
    for role in ("editor", "ops"):
        headers = await bearer(db, role)
        for path in ("/api/v1/subscribers", "/api/v1/subscribers/1", "/api/v1/access-log"):
            assert (await client.get(path, headers=headers)).status_code == 403, (role, path)
    assert await db.pool.fetchval("SELECT count(*) FROM access_log") == 0


async def test_entries_are_kept_a_year_and_cannot_be_changed(
    client: Client, db: Database, settings: Settings
) -> None:
    await import_text(db, settings, "kim@example.com,김민지\n")
    await client.get("/api/v1/subscribers", headers=await bearer(db, "admin"))
    async with db.pool.acquire() as conn:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE access_log SET actor_name = 'someone else'")
        with pytest.raises(asyncpg.RaiseError, match="at least a year"):
            await conn.execute("DELETE FROM access_log")
        with pytest.raises(asyncpg.RaiseError, match="at least a year"):
            await conn.execute("TRUNCATE access_log")
        assert await conn.fetchval("SELECT count(*) FROM access_log") == 1
    # The retention setting cannot go below a year either.
    with pytest.raises(ValueError, match="ACCESS_LOG_RETENTION_DAYS"):
        Settings.from_env(
            {
                "NEWSLETTER_DATABASE_URL": "postgresql://x/y",
                "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
                "NEWSLETTER_ACCESS_LOG_RETENTION_DAYS": "90",
            }
        )


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_command_line_reads_are_recorded_and_the_officer_reads_them(
    client: Client, database_url: str, db: Database, settings: Settings
) -> None:
    await import_text(db, settings, "kim@example.com,김민지\n")
    kim = await db.fetchrow("get_subscriber_by_email", "kim@example.com")
    assert kim is not None
    await client.get(f"/api/v1/subscribers/{kim['id']}", headers=await bearer(db, "admin", "감사"))
    exported = _cli(database_url, "export", "--reason", "분기 점검")
    assert exported.returncode == 0, exported.stderr
    assert "kim@example.com" in exported.stdout

    listing = _cli(database_url, "access-log")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.strip().splitlines()
    assert len(lines) == 2
    newest, oldest = lines
    assert "구독자 명단 내려받기" in newest and "명령줄" in newest and "reason=분기 점검" in newest
    assert " KST " in oldest and "감사 (api_key:" in oldest and "203.0.113.7" in oldest
    assert f"대상 #{kim['id']}" in oldest

    as_json = _cli(database_url, "access-log", "--json", "--subscriber", str(kim["id"]))
    assert as_json.returncode == 0, as_json.stderr
    [entry] = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert entry["action"] == "subscriber.get" and entry["subscriber_ids"] == [kim["id"]]
    # Both reads of the log were recorded, as command-line reads from this host.
    reads = await db.pool.fetch(
        "SELECT actor_kind, actor_name, ip FROM access_log WHERE action = 'access_log.read'"
    )
    assert len(reads) == 2
    assert all(
        r["actor_kind"] == "cli" and "@" in r["actor_name"] and r["ip"] is None for r in reads
    )
