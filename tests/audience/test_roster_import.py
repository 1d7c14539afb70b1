"""CSV import: encodings, headers, bad rows, duplicates, suppression, invites."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from email_validator import EmailNotValidError, validate_email

from newsletter.audience import lifecycle
from newsletter.core.addresses import normalise_email
from newsletter.core.db import Database
from newsletter.core.errors import InvalidInput
from newsletter.core.settings import Settings
from newsletter.core.tokens import Tokens
from newsletter.mail.transactional import MailContext, render_outbox
from tests.support.roster import ADMIN, import_text, status_of


async def test_cp949_excel_file_with_korean_headers_and_names(
    db: Database, settings: Settings
) -> None:
    csv_text = (
        "이메일,이름,구독일,출처\r\n"
        "hong@example.com,홍길동,2024.03.05,시청 민원실\r\n"
        "kim@example.com,김철수,2024-01-02 10:30,\r\n"
    )
    report = await import_text(db, settings, csv_text.encode("cp949"))
    assert report.encoding == "cp949"
    assert report.header is True
    assert (report.inserted, report.invalid, report.skipped) == (2, 0, 0)

    hong = await db.fetchrow("get_subscriber_by_email", "hong@example.com")
    assert hong is not None
    assert hong["name"] == "홍길동"
    assert hong["status"] == "active"
    assert hong["source"] == "시청 민원실"
    # The consent date from the file, in Seoul time, starts the re-confirmation clock.
    assert hong["last_consent_at"] == datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
    [event] = await db.fetch("roster_consent_events", hong["id"])
    assert event["kind"] == "import"
    assert event["recorded_by"].startswith("import by test admin")
    kim = await db.fetchrow("get_subscriber_by_email", "kim@example.com")
    assert kim is not None and kim["source"] == "2023 시민 설문 동의서"  # the stated source


async def test_utf8_bom_and_headerless_files(db: Database, settings: Settings) -> None:
    report = await import_text(db, settings, "\ufeffa@example.com,에이\nb@example.com\n")
    assert report.encoding == "utf-8-sig"
    assert report.header is False
    assert report.inserted == 2
    row = await db.fetchrow("get_subscriber_by_email", "a@example.com")
    assert row is not None and row["name"] == "에이"


async def test_bad_rows_are_reported_with_line_and_reason(db: Database, settings: Settings) -> None:
    long_line = "x" * (10 * 1024 * 1024)
    csv_text = (
        "email,name,subscribed_at,source\n"  # line 1
        "good@example.com,좋은,2024-01-01,web\n"  # 2
        "not-an-address,나쁜,2024-01-01,web\n"  # 3
        "short@example.com,짧은\n"  # 4: missing columns
        f"{long_line}@example.com,긴줄,2024-01-01,web\n"  # 5: 10 MB line
        ",이름만,2024-01-01,web\n"  # 6: no address
        "date@example.com,날짜,someday,web\n"  # 7
        "GOOD@example.com,중복,2024-01-01,web\n"  # 8: duplicate of line 2
        "after@example.com,다음,2024-01-01,web\n"  # 9: still imported
    )
    report = await import_text(db, settings, csv_text)
    reasons = {e.line: e.reason for e in report.errors}
    assert set(reasons) == {3, 4, 5, 6, 7}
    assert "invalid e-mail address" in reasons[3]
    assert "missing columns" in reasons[4]
    assert "longer than" in reasons[5]
    assert "missing" in reasons[6]
    assert "not a date" in reasons[7]
    assert report.invalid == 5
    assert report.inserted == 2
    assert report.duplicates == 1
    good = await db.fetchrow("get_subscriber_by_email", "good@example.com")
    assert good is not None and good["name"] == "좋은"  # the first line of a duplicate wins
    assert await status_of(db, "after@example.com") == "active"


async def test_confirmed_import_needs_a_consent_source(db: Database, settings: Settings) -> None:
    with pytest.raises(InvalidInput, match="consent source"):
        await import_text(db, settings, "a@example.com\n", source=" ")
    with pytest.raises(InvalidInput, match="e-mail column"):
        await import_text(db, settings, "이름,출처\n홍길동,web\n")


async def test_merges_with_the_roster_and_never_reactivates_leavers(
    db: Database, settings: Settings
) -> None:
    await import_text(db, settings, "stay@example.com,전\nleft@example.com\nbounced@example.com\n")
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'left@example.com'"
        )
        await conn.execute(
            "UPDATE subscribers SET status = 'suppressed' WHERE email = 'bounced@example.com'"
        )
        await conn.execute(
            "INSERT INTO subscribers (email, status) VALUES ('pending@example.com', 'pending')"
        )
    report = await import_text(
        db,
        settings,
        "stay@example.com,후\nleft@example.com\nbounced@example.com\npending@example.com\n",
    )
    assert (report.inserted, report.updated, report.skipped) == (0, 2, 2)
    assert {s.line for s in report.skipped_rows} == {2, 3}
    assert "unsubscribed" in report.skipped_rows[0].reason
    assert await status_of(db, "left@example.com") == "unsubscribed"
    assert await status_of(db, "bounced@example.com") == "suppressed"
    assert await status_of(db, "pending@example.com") == "active"
    stay = await db.fetchrow("get_subscriber_by_email", "stay@example.com")
    assert stay is not None and stay["name"] == "후"


async def test_erased_address_stays_out_on_reimport(db: Database, settings: Settings) -> None:
    await import_text(db, settings, "gone@example.com,지울사람\n")
    await lifecycle.erase_address(db, settings, email="Gone@Example.com", actor=ADMIN)
    assert await status_of(db, "gone@example.com") is None

    report = await import_text(db, settings, "email\ngone@example.com\nnew@example.com\n")
    assert report.inserted == 1
    assert report.skipped == 1
    [skipped] = report.skipped_rows
    assert skipped.line == 2 and "suppression list" in skipped.reason
    assert await status_of(db, "gone@example.com") is None
    invite = await import_text(db, settings, "gone@example.com\n", mode="invite", source=None)
    assert (invite.inserted, invite.skipped, invite.invited) == (0, 1, 0)


async def test_import_during_a_send_does_not_add_recipients(
    db: Database, settings: Settings
) -> None:
    await import_text(db, settings, "one@example.com\ntwo@example.com\n")
    async with db.transaction() as conn:
        issue_id = await conn.fetchval(
            "INSERT INTO issues (title, status, number, started_at) "
            "VALUES ('3월 소식', 'sending', 1, now()) RETURNING id"
        )
        await conn.execute(
            "INSERT INTO deliveries (issue_id, subscriber_id) "
            "SELECT $1, id FROM subscribers WHERE status = 'active'",
            issue_id,
        )
    report = await import_text(db, settings, "three@example.com\nfour@example.com\n")
    assert report.inserted == 2
    async with db.pool.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM deliveries WHERE issue_id = $1", issue_id)
    assert count == 2  # the issue's recipients are the snapshot taken when it started


async def test_invite_mode_queues_spread_out_confirmations(
    db: Database, settings: Settings
) -> None:
    report = await import_text(
        db,
        settings,
        "email,name\ninv1@example.com,초대\ninv2@example.com,\ninv3@example.com,\n",
        mode="invite",
        source=None,
    )
    assert (report.inserted, report.invited) == (3, 3)
    assert await status_of(db, "inv1@example.com") == "pending"
    async with db.pool.acquire() as conn:
        times = await conn.fetch(
            "SELECT next_attempt_at FROM outbox WHERE kind = 'confirm' ORDER BY id"
        )
    assert times[0]["next_attempt_at"] < times[1]["next_attempt_at"] < times[2]["next_attempt_at"]
    async with db.pool.acquire() as conn:
        first = await conn.fetchrow(
            "SELECT o.kind, o.recipient, o.payload, o.next_attempt_at <= now() AS due, "
            "s.public_id FROM outbox o JOIN subscribers s ON s.id = o.subscriber_id "
            "ORDER BY o.id LIMIT 1"
        )
    assert first is not None and first["due"]  # the first one goes at once
    context = MailContext(settings, Tokens(settings.secret_key))
    payload = {**first["payload"], "public_id": first["public_id"]}  # as the worker adds it
    mail = render_outbox(context, first["kind"], first["recipient"], payload)
    assert "구독 확인" in str(mail["Subject"])
    assert "초대님" in mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    # Importing again does not mail them twice.
    again = await import_text(db, settings, "inv1@example.com\n", mode="invite", source=None)
    assert (again.inserted, again.invited, again.unchanged) == (0, 0, 1)


@pytest.mark.parametrize(
    "address",
    [
        "Hong.Gil-Dong+news@Example.COM",
        "a_b@sub.domain.co.kr",
        "user@xn--9n2bp8q.com",
        "user@한국.com",
        '"quoted local"@example.com',
        "x@localhost",
        "a..b@example.com",
        "user@-bad.com",
        "o'brien@example.org",
    ],
)
def test_fast_address_check_agrees_with_email_validator(address: str) -> None:
    """normalise_email's cached per-domain path gives email-validator's answers."""
    try:
        checked = validate_email(address.strip(), check_deliverability=False, allow_smtputf8=False)
        expected: str | None = checked.ascii_email or checked.normalized
    except EmailNotValidError:
        expected = None
    try:
        fast: str | None = normalise_email(address)
    except InvalidInput:
        fast = None
    assert fast == expected


async def test_an_unclosed_quote_is_reported_not_swallowing_the_rows_after_it(
    db: Database, settings: Settings
) -> None:
    csv_text = (
        "email,name\n"  # line 1
        "kim@example.com,김\n"  # 2
        'lee@example.com,"이영희\n'  # 3: the quote is never closed
        "park@example.com,박\n"  # 4
        "choi@example.com,최\n"  # 5
    )
    report = await import_text(db, settings, csv_text)
    reasons = {e.line: e.reason for e in report.errors}
    assert list(reasons) == [3]
    assert "unclosed quote" in reasons[3] and "lines 3 to 5" in reasons[3]
    assert report.inserted == 1
    # Nobody is imported with the rest of the file as a name.
    assert await db.pool.fetchval("SELECT count(*) FROM subscribers WHERE name LIKE '%@%'") == 0
