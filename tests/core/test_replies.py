"""What an SMTP reply means (core/replies.py), and migration 0019, which gives
the enhanced status code its own column and masks the replies stored before.

The meanings are what people see: a refusal is "없는 메일 주소" or "메일함이
가득 참" in the delivery record, a push-back lowers the rate instead of using
up a resident's attempts, a hard bounce stops their mail."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from newsletter.core import replies
from newsletter.core.db import MIGRATIONS_DIR, migrate
from newsletter.ops import delivery_record, words
from tests.conftest import with_database

# reply → (kind, bounce, refusal reason, enhanced code)
MEANINGS = [
    ("550 5.1.1 <kim@example.org>: User unknown", "hard", "hard", "mailbox_unknown", "5.1.1"),
    ("550 5.2.1 Mailbox disabled", "hard", "hard", "mailbox_unknown", "5.2.1"),
    ("552 5.2.2 Mailbox full", "mailbox_full", "soft", "mailbox_full", "5.2.2"),
    (
        "552 Requested action aborted: exceeded storage",
        "mailbox_full",
        "soft",
        "mailbox_full",
        None,
    ),
    ("552 5.3.4 Message too big", "soft", "soft", "message_too_big", "5.3.4"),
    ("554 5.7.1 Rejected as spam", "soft", "soft", "refused_policy", "5.7.1"),
    ("550 5.0.0 No such user", "hard", "hard", "refused", "5.0.0"),
    ("554 5.0.0 Transaction failed", "soft", "soft", "refused", "5.0.0"),
    ("550 Unknown user", "hard", "hard", "mailbox_unknown", None),
    ("554 Transaction failed", "soft", "soft", "refused", None),
    ("450 4.2.0 <kim@example.org>: Greylisted", "push_back", "soft", "refused", "4.2.0"),
    ("450 4.7.1 Error: too much mail from 127.0.0.1", "push_back", "soft", "refused", "4.7.1"),
    ("421 4.3.2 Service shutting down", "push_back", "soft", "refused", "4.3.2"),
    ("452 4.2.2 Mailbox over quota", "mailbox_full", "soft", "refused", "4.2.2"),
    ("451 4.3.0 Temporary local problem", "temporary", "soft", "refused", "4.3.0"),
    # A dotted number in an IP address is not an enhanced code.
    ("451 Try again, from 10.4.5.6", "temporary", "soft", "refused", None),
    ("250 2.0.0 Ok: queued", "accepted", "soft", "refused", "2.0.0"),
]


@pytest.mark.parametrize(("text", "kind", "bounce", "refusal", "enhanced"), MEANINGS)
def test_one_parser_says_what_a_reply_means(
    text: str, kind: str, bounce: str, refusal: str, enhanced: str | None
) -> None:
    reply = replies.parse(int(text[:3]), text[4:])
    assert (reply.kind, reply.bounce, reply.enhanced_code) == (kind, bounce, enhanced)
    assert reply.refusal == refusal
    # The delivery record reads the stored columns and says the same.
    if text.startswith("5"):
        why = delivery_record.explain("failed", "refused", int(text[:3]), enhanced)
        assert (why.code, why.words) == (refusal, words.DELIVERY_REASON[refusal])


def test_a_temporary_refusal_for_a_full_mailbox_is_told_apart_when_retries_run_out() -> None:
    full = delivery_record.explain("failed", "retries_exhausted", 452, "4.2.2")
    other = delivery_record.explain("failed", "retries_exhausted", 451, "4.3.0")
    assert (full.code, other.code) == ("mailbox_full", "temporary_refusals")


def test_no_reply_at_all_is_server_trouble_in_words() -> None:
    assert replies.parse(None, "connect: ConnectionRefusedError").kind == "no_reply"
    assert words.explain_code(None) == "메일 서버와 연결하지 못함 (연결 실패 또는 시간 초과)"
    assert words.explain_code(550) == words.DELIVERY_REASON["mailbox_unknown"]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "450 4.2.0 <resident@x>: Recipient address rejected: Greylisted",
            "450 4.2.0 <r***@x>: Recipient address rejected: Greylisted",
        ),
        ('550 5.1.1 "hong gildong"@example.org unknown', '550 5.1.1 "***"@example.org unknown'),
        ("550 5.1.1 홍길동@김포.한국 없음", "550 5.1.1 홍***@김포.한국 없음"),
        ("RCPT TO:<o'r+x@[192.0.2.1]> refused", "RCPT TO:<o***@[192.0.2.1]> refused"),
        ("421 4.7.0 too many connections from 127.0.0.1", None),
    ],
)
def test_a_stored_reply_never_carries_an_address(text: str, masked: str | None) -> None:
    reply = replies.parse(int(text[:3]) if text[:3].isdigit() else None, text)
    assert reply.text == (masked or text)
    assert replies.mask(reply.text) == reply.text  # masking twice changes nothing


@pytest.fixture
async def empty_database(pg_admin_url: str) -> AsyncIterator[str]:
    name = f"nl_replies_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield with_database(pg_admin_url, name)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_migration_stores_the_enhanced_code_and_masks_replies_kept_before(
    empty_database: str, tmp_path: Path
) -> None:
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if path.name < "0019":
            shutil.copy(path, tmp_path / path.name)
    await migrate(empty_database, directory=tmp_path)

    grey = "450 4.2.0 <kim.minsu@example.org>: Recipient address rejected: Greylisted"
    unknown = "550 5.1.1 <lee@example.org>: Recipient address rejected: User unknown"
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute(
            "INSERT INTO subscribers (email, status, suppressed_reason)"
            " VALUES ('lee@example.org', 'suppressed', 'hard bounce: ' || $1::text)",
            unknown,
        )
        await conn.execute("INSERT INTO issues (title) VALUES ('11월 소식')")
        await conn.execute(
            "INSERT INTO deliveries (issue_id, subscriber_id, status, smtp_code, last_error)"
            " VALUES (1, 1, 'failed', 550, $1), (1, NULL, 'queued', 450, $2),"
            " (1, NULL, 'sent', 250, NULL)",
            unknown,
            grey,
        )
        await conn.execute(
            "INSERT INTO outbox (kind, recipient, last_error, smtp_code)"
            " VALUES ('confirm', 'kim.minsu@example.org', $1, 450)",
            grey,
        )
        await conn.execute(
            "INSERT INTO relay_health (relay, last_error) VALUES ('relay:25', $1)", grey
        )
        await conn.execute(
            "INSERT INTO rate_buckets (name, tokens, learned_reason) VALUES ('x', 1, $1)", grey
        )
        await conn.execute(
            "INSERT INTO bounce_events (subscriber_id, kind, source, detail)"
            " VALUES (1, 'hard', 'smtp', $1)",
            unknown,
        )

        applied = await migrate(empty_database)
        assert applied[0] == "0019_reply_codes"  # and any later ones

        rows = await conn.fetch("SELECT enhanced_code FROM deliveries ORDER BY id")
        assert [r["enhanced_code"] for r in rows] == ["5.1.1", "4.2.0", None]
        assert await conn.fetchval("SELECT enhanced_code FROM outbox") == "4.2.0"
        kept = await conn.fetch(
            "SELECT text FROM (SELECT last_error AS text FROM deliveries"
            " UNION ALL SELECT last_error FROM outbox"
            " UNION ALL SELECT last_error FROM relay_health"
            " UNION ALL SELECT learned_reason FROM rate_buckets"
            " UNION ALL SELECT detail FROM bounce_events"
            " UNION ALL SELECT suppressed_reason FROM subscribers) kept WHERE text IS NOT NULL"
        )
        # Masked exactly as the service masks a reply it stores now.
        assert sorted(r["text"] for r in kept) == sorted(
            [
                replies.mask(unknown),
                replies.mask(grey),
                replies.mask(grey),
                replies.mask(grey),
                replies.mask(grey),
                replies.mask(unknown),
                "hard bounce: " + replies.mask(unknown),
            ]
        )
        assert "kim.minsu@" not in str(kept) and "lee@" not in str(kept)
        assert "<k***@example.org>" in replies.mask(grey)
    finally:
        await conn.close()
