"""A resident's whole journey over HTTP, with a real database and a real SMTP server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import httpx
import time_machine

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.core.tokens import Tokens
from tests.conftest import SmtpServer, drain
from tests.support.delivery import start_issue

Client = httpx.AsyncClient


def link_in(message: EmailMessage, path: str) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(
        rf"https://newsletter\.gimpo\.go\.kr({re.escape(path)}\?token=[\w.\-]+)", body.get_content()
    )
    assert match, f"no {path} link in the mail"
    return match.group(1)


async def subscribe(client: Client, email: str, name: str | None = "홍길동") -> None:
    data = {"email": email, "consent": "on"}
    if name:
        data["name"] = name
    response = await client.post("/subscribe", data=data, headers={"user-agent": "pytest-browser"})
    assert response.status_code == 200, response.text


async def test_signup_confirm_unsubscribe(
    client: Client, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    await subscribe(client, "resident@example.com")
    # Nothing is sent inside the request; the worker sends it.
    assert smtp_server.handler.messages == []
    await drain(settings, db)
    [mail] = smtp_server.handler.to("resident@example.com")
    message = mail.message
    assert str(message["Subject"]) == "[김포시 뉴스레터] 구독 확인을 부탁드립니다"
    assert message.get_content_type() == "multipart/alternative"

    confirm_path = link_in(message, "/confirm")
    page = await client.get(confirm_path)
    assert page.status_code == 200
    assert "구독 확인" in page.text
    row = await db.fetchrow("get_subscriber_by_email", "resident@example.com")
    assert row is not None and row["status"] == "pending"  # GET changed nothing

    token = confirm_path.split("token=")[1]
    done = await client.post(
        "/confirm", data={"token": token}, headers={"user-agent": "pytest-browser"}
    )
    assert done.status_code == 200
    assert "구독이 완료되었습니다" in done.text
    row = await db.fetchrow("get_subscriber_by_email", "resident@example.com")
    assert row is not None and row["status"] == "active"
    events = await db.fetch("consent_events_for", row["id"])
    confirm_event = next(e for e in events if e["kind"] == "confirm")
    assert confirm_event["user_agent"] == "pytest-browser"
    assert confirm_event["consent_version"] == settings.consent_version

    await drain(settings, db)
    notice = smtp_server.handler.to("resident@example.com")[-1].message
    assert "수신 동의 처리 결과" in str(notice["Subject"])
    notice_text = notice.get_body(preferencelist=("plain",))
    assert notice_text is not None
    assert re.search(
        r"처리 일시: \d{4}년 \d\d월 \d\d일 \d\d:\d\d \(KST\)", notice_text.get_content()
    )

    unsubscribe_path = link_in(notice, "/unsubscribe")
    one_click = await client.post(
        unsubscribe_path,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200
    row = await db.fetchrow("get_subscriber_by_email", "resident@example.com")
    assert row is not None and row["status"] == "unsubscribed"


async def test_a_signup_never_changes_a_known_subscriber(client: Client, db: Database) -> None:
    await db.pool.execute(
        "INSERT INTO subscribers (email, name, status, source, confirmed_at) "
        "VALUES ('kim@example.com', '김민지', 'active', '2024 설문', now()), "
        "('park@example.com', '박서준', 'pending', '/subscribe', NULL), "
        "('lee@example.com', '이하은', 'unsubscribed', '/subscribe', NULL)"
    )
    before = {r["email"]: dict(r) for r in await db.pool.fetch("SELECT * FROM subscribers")}
    for email in before:
        response = await client.post(
            "/subscribe",
            data={"email": email, "name": "다른 사람", "consent": "on"},
            headers={"referer": "https://evil.example/form", "accept-language": "en"},
        )
        assert response.status_code == 200
    after = {r["email"]: dict(r) for r in await db.pool.fetch("SELECT * FROM subscribers")}
    assert after == before  # name, source, status, language, updated_at: all as they were


async def test_names_are_plain_text_with_a_length_cap(client: Client, db: Database) -> None:
    for name in (
        "[긴급] 계정이 정지되었습니다 https://evil.example",
        "<b>홍길동</b>",
        "홍길동 010-1234-5678",
        "가" * 51,
    ):
        response = await client.post(
            "/subscribe", data={"email": "new@example.com", "name": name, "consent": "on"}
        )
        assert response.status_code == 422, name
        assert "이름" in response.text
    for name in ("홍길동", "Jean-Luc O'Neil", "제임스·딘", "J. R. 김"):
        response = await client.post(
            "/subscribe", data={"email": f"{len(name)}@example.com", "name": name, "consent": "on"}
        )
        assert response.status_code == 200, name
    assert await db.pool.fetchval("SELECT count(*) FROM subscribers") == 4


async def test_a_stranger_cannot_put_words_in_someone_elses_mail(
    client: Client, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    """Someone signs up the victim's address with their own text as the name,
    and re-submits it; the victim confirms without keeping that name. No mail
    the victim gets -- confirmation, opt-in notice, issue -- shows the text."""
    stranger = "계정이 정지되었습니다 고객센터로 연락하세요"
    await subscribe(client, "victim@example.com", name=stranger)
    await subscribe(client, "victim@example.com", name="다시 보낸 문구")
    row = await db.fetchrow("get_subscriber_by_email", "victim@example.com")
    assert row is not None and row["name"] == stranger  # the second signup changed nothing
    await drain(settings, db)
    confirm_path = link_in(smtp_server.handler.to("victim@example.com")[0].message, "/confirm")

    # The confirmation page shows the typed name for the owner to keep, change or drop.
    page = await client.get(confirm_path)
    assert f'value="{stranger}"' in page.text and "지워 주세요" in page.text
    token = confirm_path.split("token=")[1]
    done = await client.post("/confirm", data={"token": token, "name": ""})
    assert done.status_code == 200 and "구독이 완료되었습니다" in done.text
    row = await db.fetchrow("get_subscriber_by_email", "victim@example.com")
    assert row is not None and row["status"] == "active" and row["name"] is None

    await start_issue(db, settings)
    await drain(settings, db)
    mails = smtp_server.handler.to("victim@example.com")
    assert len(mails) >= 4  # two confirmations, the opt-in notice, the issue
    for mail in mails:
        raw = mail.message.as_string()
        decoded = " ".join(
            part.get_content()
            for part in mail.message.walk()
            if part.get_content_maintype() == "text"
        )
        assert stranger not in decoded and "다시 보낸" not in decoded
        assert stranger not in str(mail.message["To"]) and "=?utf-8?" not in str(mail.message["To"])
        assert "고객센터" not in raw


async def test_the_owner_names_themselves_on_the_confirm_page(
    client: Client, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    await subscribe(client, "resident@example.com", name="홍길동")
    await drain(settings, db)
    confirm_path = link_in(smtp_server.handler.to("resident@example.com")[0].message, "/confirm")
    token = confirm_path.split("token=")[1]
    refused = await client.post("/confirm", data={"token": token, "name": "<script>"})
    assert refused.status_code == 422 and "이름" in refused.text
    done = await client.post("/confirm", data={"token": token, "name": "홍길동"})
    assert done.status_code == 200
    await drain(settings, db)
    notice = smtp_server.handler.to("resident@example.com")[-1].message
    text = notice.get_body(preferencelist=("plain",))
    assert text is not None and text.get_content().startswith("홍길동님, 안녕하세요.")


async def test_a_name_to_review_keeps_the_confirm_page_from_submitting_itself(
    client: Client, db: Database, settings: Settings
) -> None:
    """Opened well after the mail was made, the confirmation page confirms by
    itself; not when it shows a name typed at signup: that name is the
    owner's to keep or drop, so the page waits for their click."""
    rows = await db.pool.fetch(
        "INSERT INTO subscribers (email, name) VALUES ('named@example.com', '홍길동'), "
        "('plain@example.com', NULL) RETURNING email, public_id"
    )
    ids = {r["email"]: r["public_id"] for r in rows}
    with time_machine.travel(datetime.now(UTC) - timedelta(minutes=10), tick=False):
        tokens = Tokens(settings.secret_key)
        named, plain = (
            tokens.confirm(ids["named@example.com"]),
            tokens.confirm(ids["plain@example.com"]),
        )

    waiting = await client.get(f"/confirm?token={named}")
    assert 'value="홍길동"' in waiting.text and "data-auto-submit" not in waiting.text
    assert "confirm.js" not in waiting.text
    by_itself = await client.get(f"/confirm?token={plain}")
    assert 'data-auto-submit="true"' in by_itself.text and "confirm.js" in by_itself.text

    # The name field and its mistakes read in the reader's language too.
    english = await client.get(f"/confirm?token={named}&lang=en")
    assert "Name to use in our mail" in english.text and "correct or delete it" in english.text
    refused = await client.post("/confirm", data={"token": named, "name": "J4ne", "lang": "en"})
    assert refused.status_code == 422
    assert "A name may contain only letters and spaces" in refused.text
    assert 'aria-invalid="true"' in refused.text and 'value="J4ne"' in refused.text
    row = await db.fetchrow("get_subscriber_by_email", "named@example.com")
    assert row is not None and row["status"] == "pending"
