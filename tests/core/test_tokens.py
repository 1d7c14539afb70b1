"""Links in mail name a subscriber by an opaque public id, never by the
sequential row id; they stay short; links mailed before keep working."""

from __future__ import annotations

import hashlib
import re

import httpx
from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.core.tokens import Tokens
from tests.conftest import SmtpServer, drain
from tests.support.delivery import add_subscribers, address, start_issue

Client = httpx.AsyncClient


def token_in(text: str, path: str) -> str:
    match = re.search(rf"{re.escape(path)}\?token=([\w.\-]+)", text)
    assert match, f"no {path} link"
    return match.group(1)


async def test_links_and_mailto_carry_the_public_id_not_the_row_id(
    client: Client, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    for n in (1, 2):
        await client.post("/subscribe", data={"email": f"p{n}@example.com", "consent": "on"})
    await drain(settings, db)
    found = [await db.fetchrow("get_subscriber_by_email", f"p{n}@example.com") for n in (1, 2)]
    rows = [row for row in found if row is not None]
    assert len(rows) == 2
    assert rows[1]["id"] == rows[0]["id"] + 1  # sequential inside, which links must not show
    for row in rows:
        [mail] = smtp_server.handler.to(row["email"])
        body = mail.message.get_body(preferencelist=("plain",))
        assert body is not None
        token = token_in(body.get_content(), "/confirm")
        assert token.split(".")[0] == row["public_id"]
        assert re.fullmatch(r"[0-9a-f]{16}", row["public_id"])
        assert len(token) < 75
    assert rows[0]["public_id"] != rows[1]["public_id"]

    await add_subscribers(db, 2)
    await start_issue(db, settings.replace(bounce_address="bounce@gimpo.go.kr"))
    await drain(settings.replace(bounce_address="bounce@gimpo.go.kr"), db)
    subscriber = await db.fetchrow("get_subscriber_by_email", address(2))
    assert subscriber is not None
    [issue_mail] = smtp_server.handler.to(address(2))
    header = str(issue_mail.message["List-Unsubscribe"])
    token = token_in(header, "/unsubscribe")
    assert token.split(".")[0] == subscriber["public_id"] and len(token) < 75
    assert f"+unsubscribe-{subscriber['public_id']}-" in header
    assert f"-{subscriber['id']}-" not in header


async def test_links_mailed_before_public_ids_still_work(
    client: Client, db: Database, settings: Settings
) -> None:
    """Cheap to keep: the older form of each link still reads (its signature
    is ours), so last year's issues still unsubscribe and a confirmation mail
    sent just before the upgrade still confirms. Nothing mints them any more."""
    await client.post("/subscribe", data={"email": "old@example.com", "consent": "on"})
    row = await db.fetchrow("get_subscriber_by_email", "old@example.com")
    assert row is not None
    digest = {"digest_method": hashlib.sha256}
    old_confirm = URLSafeTimedSerializer(
        settings.secret_key, salt="confirm", signer_kwargs=digest
    ).dumps(row["id"])
    confirmed = await client.post("/confirm", data={"token": old_confirm})
    assert confirmed.status_code == 200 and "구독이 완료되었습니다" in confirmed.text
    old_unsubscribe = URLSafeSerializer(
        settings.secret_key, salt="unsubscribe", signer_kwargs=digest
    ).dumps(row["id"])
    left = await client.post(
        f"/unsubscribe?token={old_unsubscribe}", data={"List-Unsubscribe": "One-Click"}
    )
    assert left.status_code == 200 and "수신 거부가 완료되었습니다" in left.text
    row = await db.fetchrow("get_subscriber_by_email", "old@example.com")
    assert row is not None and row["status"] == "unsubscribed"
    # A new link for the same person is the new form.
    assert Tokens(settings.secret_key).unsubscribe(row["public_id"]).startswith(row["public_id"])
