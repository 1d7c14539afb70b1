"""Every kind of mail the worker sends is DKIM-signed as issues are: confirmation,
the result notices, re-confirmation, an editor's test copy and the issue itself
verify with dkimpy (DNS stub), are 7-bit, and transactional mail carries its
outbox row's signed Message-ID and VERP sender and ``Auto-Submitted``."""

from __future__ import annotations

import re

import dkim
import httpx
import pytest

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.core.signing import outbox_message_id, outbox_verp_sender
from tests.conftest import TEST_SECRET_KEY, SmtpServer, bearer, drain, make_settings
from tests.mail.test_mail_quality import every_kind_of_mail
from tests.support.dkim import SELECTOR, body_parts, prepend, session_key, signed_headers

EDITOR = "editor@gimpo.go.kr"
TRANSACTIONAL = {
    "confirm",
    "opt_in_notice",
    "reconfirm",
    "reconfirm_notice",
    "opt_out_notice",
    "test_issue",
}
MESSAGE_ID = re.compile(rb"^Message-ID: <nl\.tx\.(\d+)\.", re.MULTILINE | re.IGNORECASE)


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpServer) -> Settings:
    return make_settings(
        database_url,
        smtp_server.target,
        dkim_selector=SELECTOR,
        dkim_private_key=session_key().private_pem,
        bounce_address="bounce@gimpo.go.kr",
    )


async def every_mail_signed(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> dict[str, tuple[str, bytes]]:
    """kind → (envelope sender, bytes) of one real mail each, the test copy included."""
    await every_kind_of_mail(client, db, settings, smtp_server)
    sent = {
        kind: (mail.mail_from, mail.data)
        for mail in smtp_server.handler.to("kim@example.com")
        for kind in [await kind_of(db, mail.data)]
    }
    headers = await bearer(db)
    item = await client.post(
        "/api/v1/news-items",
        json={
            "title": "한강 야간 축제",
            "summary": "토요일 밤",
            "link": "https://www.gimpo.go.kr/n/2",
        },
        headers=headers,
    )
    issue = await client.post(
        "/api/v1/issues",
        json={"title": "시험 발송", "intro": "미리 보기", "news_item_ids": [item.json()["id"]]},
        headers=headers,
    )
    answer = await client.post(
        f"/api/v1/issues/{issue.json()['id']}/test-send",
        json={"addresses": [EDITOR]},
        headers=headers,
    )
    assert answer.status_code < 300, answer.text
    await drain(settings, db)
    [copy] = smtp_server.handler.to(EDITOR)
    sent["test_issue"] = (copy.mail_from, copy.data)
    return sent


async def kind_of(db: Database, raw: bytes) -> str:
    """The outbox kind a mail was rendered from, by its Message-ID; else the issue."""
    found = MESSAGE_ID.search(raw)
    if found is None:
        return "issue"
    kind: str = await db.pool.fetchval("SELECT kind FROM outbox WHERE id = $1", int(found[1]))
    return kind


async def test_every_kind_of_mail_is_signed_7bit_and_verifies(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    sent = await every_mail_signed(client, db, settings, smtp_server)
    assert set(sent) == TRANSACTIONAL | {"issue"}
    key = session_key()
    for kind, (_, raw) in sent.items():
        assert key.verify(raw), kind
        listed = signed_headers(raw)
        for header in ("from", "to", "subject", "date", "message-id", "mime-version"):
            assert header in listed, (kind, header)
        for header in ("from", "subject", "list-unsubscribe", "list-id"):
            # Oversigned: one more than the message has, so none may be added.
            assert listed.count(header) == raw.lower().count(f"\n{header}:".encode()) + 1
        assert max(raw) < 0x80, kind
        assert b"\r\nContent-Language: ko\r\n" in raw, kind  # a Korean reader's mail
        assert b"Content-Transfer-Encoding: 8bit" not in raw, kind
        assert {cte for _, cte in body_parts(raw)} <= {"quoted-printable", "base64"}, kind


async def test_transactional_mail_carries_its_signed_ids_and_auto_submitted(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    sent = await every_mail_signed(client, db, settings, smtp_server)
    for kind in TRANSACTIONAL:
        sender, raw = sent[kind]
        found = MESSAGE_ID.search(raw)
        assert found is not None, kind
        outbox_id = int(found[1])
        assert f"Message-ID: {outbox_message_id(settings, outbox_id)}".encode() in raw, kind
        assert sender == outbox_verp_sender(settings, outbox_id), kind
        assert re.match(r"bounce\+o\d+-[a-z2-7]{8}@gimpo\.go\.kr$", sender), sender
        assert b"\r\nAuto-Submitted: auto-generated\r\n" in raw, kind
    issue_sender, issue = sent["issue"]
    assert b"Auto-Submitted" not in issue  # an issue is the list's own mail, not a robot's
    assert re.match(r"bounce\+\d+-[a-z2-7]{8}@", issue_sender)


async def test_tampered_transactional_mail_fails_verification(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    sent = await every_mail_signed(client, db, settings, smtp_server)
    key = session_key()
    for kind in ("confirm", "test_issue"):
        _, raw = sent[kind]
        assert key.verify(raw)
        assert not key.verify(prepend(raw, b"From: <news@gimpo-go.kr>")), kind
        assert not key.verify(prepend(raw, b"Subject: urgent")), kind
        assert not key.verify(prepend(raw, b"List-Unsubscribe: <https://evil.example/u>")), kind
        body = raw.index(b"\r\n\r\n") + 4
        at = body + (len(raw) - body) // 2  # one byte in the middle of the body
        flipped = raw[:at] + (b"x" if raw[at : at + 1] != b"x" else b"y") + raw[at + 1 :]
        assert not key.verify(flipped), kind


async def test_an_idn_from_domain_goes_out_as_its_a_label_and_verifies(
    client: httpx.AsyncClient, db: Database, database_url: str, smtp_server: SmtpServer
) -> None:
    """FROM=김포시 <news@김포시.kr>: a relay without SMTPUTF8 takes the mail,
    headers stay 7-bit and the signature's d= is the A-label a DNS lookup uses."""
    key = session_key()
    settings = Settings.from_env(
        {
            "NEWSLETTER_DATABASE_URL": database_url,
            "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
            "NEWSLETTER_SMTP_URL": f"smtp://{smtp_server.target.host}:{smtp_server.target.port}",
            "NEWSLETTER_FROM": "김포시 <news@김포시.kr>",
            "NEWSLETTER_BOUNCE_ADDRESS": "bounce@김포시.kr",
        }
    ).replace(dkim_selector=SELECTOR, dkim_private_key=key.private_pem)
    assert settings.from_domain == "xn--4k0bw40bnom.kr"
    await client.post("/subscribe", data={"email": "kim@example.com", "consent": "on"})
    await drain(settings, db)
    [mail] = smtp_server.handler.to("kim@example.com")
    assert max(mail.data) < 0x80
    assert re.match(r"bounce\+o\d+-[a-z2-7]{8}@xn--4k0bw40bnom\.kr$", mail.mail_from)
    assert b"\r\nFrom: =?utf-8?b?6rmA7Y+s7Iuc?= <news@xn--4k0bw40bnom.kr>\r\n" in mail.data
    record = b"news2026._domainkey.xn--4k0bw40bnom.kr."
    assert dkim.verify(mail.data, dnsfunc=lambda name, timeout=5: key.record * (name == record))
