"""A resident's whole journey over HTTP, with a real database and a real SMTP server."""

from __future__ import annotations

import re
from email.message import EmailMessage

import httpx

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from tests.conftest import SmtpServer, drain

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
