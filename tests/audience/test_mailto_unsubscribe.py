"""Opting out by mail: the List-Unsubscribe mailto address names and unsubscribes a person."""

from __future__ import annotations

import httpx

from newsletter.audience import bounces
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.core.signing import LEGACY_MAILTO_PURPOSE, signature, unsubscribe_mailto
from tests.conftest import bearer


async def active(db: Database, email: str) -> tuple[int, str]:
    """A subscriber's row id and public id."""
    row = await db.pool.fetchrow(
        "INSERT INTO subscribers (email, status, confirmed_at) VALUES ($1, 'active', now())"
        " RETURNING id, public_id",
        email,
    )
    assert row is not None
    return row["id"], row["public_id"]


def reply_to(mailto: str, *, header: str = "To") -> bytes:
    address = mailto.removeprefix("mailto:").split("?", 1)[0]
    return (
        f"From: resident@example.com\r\n{header}: {address}\r\nSubject: unsubscribe\r\n"
        f"Message-ID: <{address}.reply@example.com>\r\n\r\nplease stop\r\n"
    ).encode()


async def status_of(db: Database, subscriber_id: int) -> str:
    status: str = await db.pool.fetchval(
        "SELECT status FROM subscribers WHERE id = $1", subscriber_id
    )
    return status


async def test_mail_to_the_mailto_address_unsubscribes(db: Database, settings: Settings) -> None:
    settings = settings.replace(bounce_address="bounce@gimpo.go.kr")
    subscriber_id, public_id = await active(db, "resident@example.com")
    mailto = unsubscribe_mailto(settings, public_id)
    # The address names the opaque public id, never the sequential row id.
    assert mailto.startswith(f"mailto:bounce+unsubscribe-{public_id}-")
    assert f"-{subscriber_id}-" not in mailto
    assert mailto.endswith("@gimpo.go.kr?subject=unsubscribe")
    assert mailto.isascii()

    result = await bounces.process(db, settings, reply_to(mailto))
    assert result.unsubscribed == [subscriber_id]
    assert await status_of(db, subscriber_id) == "unsubscribed"
    notices = await db.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE kind = 'opt_out_notice' AND subscriber_id = $1",
        subscriber_id,
    )
    assert notices == 1
    source = await db.pool.fetchval(
        "SELECT source FROM consent_events WHERE subscriber_id = $1 AND kind = 'unsubscribe'",
        subscriber_id,
    )
    assert source == "mailto"


async def test_an_address_mailed_before_public_ids_still_unsubscribes(
    db: Database, settings: Settings
) -> None:
    subscriber_id, _ = await active(db, "resident@example.com")
    sig = signature(settings.secret_key, LEGACY_MAILTO_PURPOSE, subscriber_id)
    old = f"mailto:news+unsubscribe-{subscriber_id}-{sig}@gimpo.go.kr"
    result = await bounces.process(db, settings, reply_to(old))
    assert result.unsubscribed == [subscriber_id]


async def test_case_folded_and_envelope_headers_still_match(
    db: Database, settings: Settings
) -> None:
    subscriber_id, public_id = await active(db, "resident@example.com")
    mailto = unsubscribe_mailto(settings, public_id).upper().replace("MAILTO:", "mailto:")
    result = await bounces.process(db, settings, reply_to(mailto, header="Delivered-To"))
    assert result.unsubscribed == [subscriber_id]


async def test_forged_or_foreign_addresses_change_nothing(db: Database, settings: Settings) -> None:
    victim, victim_public = await active(db, "victim@example.com")
    _, other_public = await active(db, "other@example.com")
    genuine = unsubscribe_mailto(settings, other_public)
    forged = genuine.replace(f"-{other_public}-", f"-{victim_public}-")
    result = await bounces.process(db, settings, reply_to(forged))
    assert result.unsubscribed == []
    assert await status_of(db, victim) == "active"
    preview = unsubscribe_mailto(settings, None)
    assert (await bounces.process(db, settings, reply_to(preview))).unsubscribed == []


async def test_api_reports_the_opt_out(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    subscriber_id, public_id = await active(db, "resident@example.com")
    response = await client.post(
        "/api/v1/bounces",
        content=reply_to(unsubscribe_mailto(settings, public_id)),
        headers={**await bearer(db, "ops"), "content-type": "message/rfc822"},
    )
    assert response.status_code == 200
    assert response.json()["status"] == "unsubscribed"
    assert response.json()["unsubscribed"] == [subscriber_id]
    assert await status_of(db, subscriber_id) == "unsubscribed"
