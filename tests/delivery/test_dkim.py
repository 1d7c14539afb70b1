"""DKIM on issue mail: signed with a test key, verified by dkimpy against a DNS
stub; the headers receivers and RFC 8058 care about are covered (From, Subject
and the List-* oversigned), the body is 7-bit, and tampering breaks it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from newsletter.core.db import Database
from newsletter.core.dkim import signer_for
from newsletter.core.settings import SettingsError, SmtpTarget
from newsletter.delivery.message import IssueMessage, Recipient, dot_unstuff
from newsletter.editorial.rendering import RECIPIENT_NAME, UNSUBSCRIBE_URL
from tests.conftest import SmtpServer, drain, make_settings
from tests.support.delivery import add_subscribers, address, start_issue
from tests.support.dkim import (
    RECORD_NAME,
    SELECTOR,
    DkimKey,
    body_parts,
    prepend,
    session_key,
    signed_headers,
)

EVERY_SIGNED = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
)
OVERSIGNED = ("from", "subject", "list-id", "list-unsubscribe", "list-unsubscribe-post")


def make_key(tmp_path: Path) -> tuple[str, bytes]:
    """A fresh RSA key (PEM) and its public half as DER, via the openssl CLI."""
    key_file = tmp_path / "dkim.pem"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(key_file), "2048"], check=True, capture_output=True
    )
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key_file), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return key_file.read_text(), public


async def sent_issue_mail(
    database_url: str, db: Database, smtp_server: SmtpServer, *, signed: bool
) -> bytes:
    """The bytes one subscriber received of an issue (the server offers 8BITMIME)."""
    key = session_key()
    extra = {"dkim_selector": SELECTOR, "dkim_private_key": key.private_pem} if signed else {}
    settings = make_settings(database_url, smtp_server.target, **extra)
    await add_subscribers(db, 3, name="김포 시민")
    await start_issue(db, settings)
    await drain(settings, db)
    [mail] = smtp_server.handler.to(address(2))
    return mail.data


async def verified_issue_mail(
    database_url: str, db: Database, smtp_server: SmtpServer
) -> tuple[bytes, DkimKey]:
    """A signed issue mail as received, checked to verify; the key with the
    lookups of that one verification."""
    raw = await sent_issue_mail(database_url, db, smtp_server, signed=True)
    key = session_key()
    assert key.verify(raw)
    return raw, key


async def test_issue_mail_is_signed_over_every_listed_header_and_7bit(
    database_url: str, db: Database, smtp_server: SmtpServer
) -> None:
    raw, key = await verified_issue_mail(database_url, db, smtp_server)
    assert key.looked_up == [RECORD_NAME]

    listed = signed_headers(raw)
    for header in EVERY_SIGNED:
        assert header in listed, header
    for header in OVERSIGNED:  # each occurs once, so listed twice
        assert listed.count(header) == 2, header
    assert listed.count("to") == 1

    # 7-bit throughout, though the server offers 8BITMIME (the unsigned test below).
    assert max(raw) < 0x80
    assert b"Content-Transfer-Encoding: 8bit" not in raw
    assert body_parts(raw) == [
        ("text/plain", "quoted-printable"),
        ("text/html", "quoted-printable"),
    ]


async def test_unsigned_issue_mail_may_still_use_8bit(
    database_url: str, db: Database, smtp_server: SmtpServer
) -> None:
    """The control for the test above: the same server does take 8bit parts."""
    raw = await sent_issue_mail(database_url, db, smtp_server, signed=False)
    assert "DKIM-Signature" not in raw.decode("utf-8")
    assert ("text/plain", "8bit") in body_parts(raw)


async def test_tampering_with_a_signed_issue_breaks_the_signature(
    database_url: str, db: Database, smtp_server: SmtpServer
) -> None:
    raw, key = await verified_issue_mail(database_url, db, smtp_server)
    # A header added on top: the one a mail client would show, or the one
    # RFC 8058 unsubscribers would use.
    for added in (
        b"From: =?utf-8?b?6rmA7Y+s7Iuc?= <news@gimpo-go.kr>",
        b"Subject: =?utf-8?b?6rmA7Y+s7Iuc?= urgent",
        b"List-Unsubscribe: <https://evil.example/unsubscribe>",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        b"List-Id: <other.example>",
    ):
        assert not key.verify(prepend(raw, added)), added
    # One body byte changed.
    body_at = raw.index(b"\r\n\r\n") + 200
    changed = raw[:body_at] + (b"A" if raw[body_at : body_at + 1] != b"A" else b"B")
    assert not key.verify(changed + raw[body_at + 1 :])
    # The unsubscribe target edited in place.
    assert not key.verify(raw.replace(b"unsubscribe?token=", b"unsubscribe?token=X", 1))
    # A relay refolding a header changes nothing (relaxed header canonicalisation).
    refolded = raw.replace(b"\r\nList-Id: ", b"\r\nList-Id:\r\n\t ", 1)
    assert refolded != raw and key.verify(refolded)


OFFLINE = SmtpTarget(host="127.0.0.1", port=25)  # settings only: nothing is sent


def test_signed_message_ignores_8bitmime_on_every_path() -> None:
    """The fast splice and the exact fallback (a value with a line break) both
    give 7-bit mail that verifies, whatever the server offers; a body line
    starting with a dot is stuffed for SMTP and signed as it reads."""
    key = session_key()
    settings = make_settings(
        "postgresql://unused/db", OFFLINE, dkim_selector=SELECTOR, dkim_private_key=key.private_pem
    )
    message = IssueMessage(
        settings,
        issue_id=7,
        subject="12월 김포 소식",
        html_body=(
            f'<p>{RECIPIENT_NAME}님, 안녕하세요</p>\n<a href="{UNSUBSCRIBE_URL}">수신 거부</a>\n'
        ),
        text_body=".점으로 시작하는 줄\n안녕하세요\n",
        signer=signer_for(settings),
    )
    assert not message.needs_8bit
    for name in ("김포 시민", "line\nbreak"):
        recipient = Recipient(5, 5, "p" * 22, "r@example.com", name)
        stuffed = message.render(recipient, "tok", eight_bit=True)
        assert b"\r\n\r\n..=" in stuffed  # the first text line, stuffed
        raw = dot_unstuff(stuffed)
        assert key.verify(raw), name
        assert max(raw) < 0x80
        assert b"Content-Transfer-Encoding: 8bit" not in raw


def test_a_key_that_cannot_sign_stops_start_up() -> None:
    broken = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    settings = make_settings(
        "postgresql://unused/db", OFFLINE, dkim_selector=SELECTOR, dkim_private_key=broken
    )
    with pytest.raises(SettingsError, match="DKIM_PRIVATE_KEY"):
        signer_for(settings)
