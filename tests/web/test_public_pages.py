"""Public pages: what a resident, a bot or an attacker sees at /subscribe, /confirm and
/unsubscribe."""

from __future__ import annotations

import re
import time

import httpx
import pytest
import time_machine

from newsletter.audience.subscribers import suppression_hash
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.core.tokens import Tokens
from tests.conftest import SmtpServer, drain

SIGNUP = {"email": "resident@example.com", "name": "김포시민", "consent": "on"}


async def status_of(db: Database, email: str) -> str | None:
    row = await db.fetchrow("get_subscriber_by_email", email)
    return None if row is None else str(row["status"])


async def queued_mail(db: Database, email: str) -> int:
    count: int = await db.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE lower(recipient) = lower($1)", email
    )
    return count


async def test_form_shows_korean_consent_notice(client: httpx.AsyncClient) -> None:
    page = await client.get("/subscribe")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for phrase in ("수집·이용 목적", "수집 항목", "보유 및 이용 기간", "동의를 거부할 권리"):
        assert phrase in page.text
    assert 'name="consent"' in page.text
    assert 'name="website"' in page.text  # the honeypot
    # Scripts only as our own files (the CSP allows 'self'), never inline.
    assert re.findall(r"<script[^>]*>", page.text) == [
        '<script type="module" src="/static/vendor/altcha-3.2.2/altcha.min.js">',
        '<script type="module" src="/static/js/altcha-setup.js">',
    ]
    assert "<style" not in page.text
    assert " on" not in re.sub(r'"[^"]*"', '""', page.text).lower().replace(" only", "")


async def test_answer_is_byte_identical_for_every_address_state(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO subscribers (email, status) VALUES "
            "('pending@example.com', 'pending'), ('active@example.com', 'active'), "
            "('bounced@example.com', 'suppressed')"
        )
        await conn.execute(
            "INSERT INTO suppressions (email_hash, reason) VALUES ($1, 'erased')",
            suppression_hash(db.address_key, "erased@example.com"),
        )
    bodies = set()
    for email in (
        "new@example.com",
        "pending@example.com",
        "active@example.com",
        "bounced@example.com",
        "erased@example.com",
    ):
        for kind in ("form", "json"):
            payload = {"email": email, "consent": "on"}
            if kind == "form":
                response = await client.post("/subscribe", data=payload)
            else:
                response = await client.post("/subscribe", json={**payload, "consent": True})
            assert response.status_code == 200
            bodies.add((kind, response.content, response.headers["content-type"]))
    # One answer per body format, whatever the address's state.
    assert len(bodies) == 2
    # Only new and pending addresses get a confirmation mail.
    assert await queued_mail(db, "new@example.com") >= 1
    assert await queued_mail(db, "pending@example.com") >= 1
    for quiet in ("active@example.com", "bounced@example.com", "erased@example.com"):
        assert await queued_mail(db, quiet) == 0
    assert await status_of(db, "erased@example.com") is None  # suppressed by hash: never stored


async def test_honeypot_submission_is_silently_dropped(
    client: httpx.AsyncClient, db: Database
) -> None:
    normal = await client.post("/subscribe", data={**SIGNUP, "email": "someone@example.com"})
    bot = await client.post("/subscribe", data={**SIGNUP, "website": "http://spam.example"})
    assert bot.status_code == 200
    assert bot.content == normal.content
    assert await status_of(db, "resident@example.com") is None
    assert await queued_mail(db, "resident@example.com") == 0


async def test_json_signup_and_idn_domain(client: httpx.AsyncClient, db: Database) -> None:
    response = await client.post("/subscribe", json={"email": "시민@example.com", "consent": True})
    assert response.status_code == 422
    assert "영문" in response.json()["detail"]

    response = await client.post(
        "/subscribe", json={"email": "Resident@김포.한국", "name": "홍길동", "consent": True}
    )
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    # Stored in the A-label form every SMTP server accepts.
    row = await db.fetchrow("get_subscriber_by_email", "Resident@xn--4k0bk82e.xn--3e0b707e")
    assert row is not None
    assert row["name"] == "홍길동"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"email": "not-an-address", "consent": "on"}, "올바른 이메일 주소가 아닙니다"),
        ({"email": "", "consent": "on"}, "이메일 주소를 입력해 주세요"),
        ({"email": "a@example.com"}, "동의하셔야"),
        ({"email": "a@example.com\r\nBcc: victim@example.com", "consent": "on"}, "사용할 수 없는"),
        ({"email": "a@example.com", "name": "홍\r\nBcc: x@example.com", "consent": "on"}, "이름에"),
        ({"email": "a" * 10_000 + "@example.com", "consent": "on"}, "너무 깁니다"),
    ],
)
async def test_bad_input_is_a_clear_korean_422(
    client: httpx.AsyncClient, db: Database, payload: dict[str, str], message: str
) -> None:
    form = await client.post("/subscribe", data=payload)
    assert form.status_code == 422
    assert message in form.text
    assert "<form" in form.text  # the form comes back to fix the mistake
    as_json = await client.post("/subscribe", json=payload)
    assert as_json.status_code == 422
    assert as_json.json()["error"] == "invalid_input"
    assert message in as_json.json()["detail"]
    total: int = await db.pool.fetchval("SELECT count(*) FROM subscribers")
    assert total == 0


async def test_malformed_and_oversized_bodies_are_4xx(client: httpx.AsyncClient) -> None:
    bad_json = await client.post(
        "/subscribe", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert bad_json.json()["error"] == "bad_request"
    not_object = await client.post("/subscribe", json=["a@example.com"])
    assert not_object.status_code == 400
    wrong_type = await client.post("/subscribe", json={"email": {"x": 1}, "consent": True})
    assert wrong_type.status_code == 422
    huge = await client.post("/subscribe", data={"email": "x@example.com", "name": "가" * 20_000})
    assert huge.status_code == 413


async def test_per_ip_limit_answers_429(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    for index in range(settings.signup_limit_per_ip_per_hour):
        ok = await client.post("/subscribe", data={**SIGNUP, "email": f"r{index}@example.com"})
        assert ok.status_code == 200
    blocked = await client.post("/subscribe", data={**SIGNUP, "email": "late@example.com"})
    assert blocked.status_code == 429
    assert "잠시 후" in blocked.text
    assert await status_of(db, "late@example.com") is None


async def test_per_address_limit_stops_list_bombing_without_telling(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    answers = set()
    for _ in range(settings.signup_limit_per_address_per_day + 3):
        response = await client.post("/subscribe", data=SIGNUP)
        answers.add(response.content)
    assert len(answers) == 1
    assert await queued_mail(db, SIGNUP["email"]) == settings.signup_limit_per_address_per_day


async def test_tampered_and_expired_confirm_links_show_a_clear_400(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    await client.post("/subscribe", data=SIGNUP)
    row = await db.fetchrow("get_subscriber_by_email", SIGNUP["email"])
    assert row is not None
    tokens = Tokens(settings.secret_key, settings.confirm_max_age_seconds)
    good = tokens.confirm(row["public_id"])

    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    for method in ("get", "post"):
        if method == "get":
            response = await client.get(f"/confirm?token={tampered}")
        else:
            response = await client.post("/confirm", data={"token": tampered})
        assert response.status_code == 400
        assert "올바르지 않은 링크" in response.text
    other_purpose = tokens.unsubscribe(row["public_id"])
    response = await client.post("/confirm", data={"token": other_purpose})
    assert response.status_code == 400

    with time_machine.travel(time.time() + settings.confirm_max_age_seconds + 60):
        expired = await client.post("/confirm", data={"token": good})
    assert expired.status_code == 400
    assert "유효 기간이 지났습니다" in expired.text
    assert await status_of(db, SIGNUP["email"]) == "pending"

    unsubscribe = await client.post("/unsubscribe?token=garbage", data={"token": "garbage"})
    assert unsubscribe.status_code == 400


async def test_confirm_is_idempotent_and_notices_once(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    await client.post("/subscribe", data=SIGNUP)
    row = await db.fetchrow("get_subscriber_by_email", SIGNUP["email"])
    assert row is not None
    token = Tokens(settings.secret_key).confirm(row["public_id"])
    for _ in range(3):
        response = await client.post("/confirm", data={"token": token})
        assert response.status_code == 200
        assert "구독이 완료되었습니다" in response.text
    await drain(settings, db)
    subjects = [str(m.message["Subject"]) for m in smtp_server.handler.to(SIGNUP["email"])]
    assert subjects.count("[김포시 뉴스레터] 수신 동의 처리 결과 안내") == 1


async def test_old_confirm_link_cannot_undo_a_later_opt_out(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    await client.post("/subscribe", data=SIGNUP)
    row = await db.fetchrow("get_subscriber_by_email", SIGNUP["email"])
    assert row is not None
    tokens = Tokens(settings.secret_key)
    confirm_token = tokens.confirm(row["public_id"])
    await client.post("/confirm", data={"token": confirm_token})
    with time_machine.travel(time.time() + 5):
        await client.post(f"/unsubscribe?token={tokens.unsubscribe(row['public_id'])}")
    response = await client.post("/confirm", data={"token": confirm_token})
    assert response.status_code == 400
    assert await status_of(db, SIGNUP["email"]) == "unsubscribed"


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart", "page-form"])
async def test_one_click_unsubscribe(
    client: httpx.AsyncClient, db: Database, settings: Settings, encoding: str
) -> None:
    async with db.transaction() as conn:
        public_id = await conn.fetchval(
            "INSERT INTO subscribers (email, status) VALUES ('r@example.com', 'active') "
            "RETURNING public_id"
        )
    token = Tokens(settings.secret_key).unsubscribe(public_id)
    assert len(token) < 75  # short enough that List-Unsubscribe never folds

    page = await client.get(f"/unsubscribe?token={token}")
    assert page.status_code == 200
    assert "수신 거부" in page.text
    assert await status_of(db, "r@example.com") == "active"  # GET changes nothing

    if encoding == "urlencoded":
        response = await client.post(
            f"/unsubscribe?token={token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    elif encoding == "multipart":
        response = await client.post(
            f"/unsubscribe?token={token}",
            files={"List-Unsubscribe": (None, "One-Click")},
        )
    else:
        response = await client.post("/unsubscribe", data={"token": token})
    assert response.status_code == 200  # not a redirect
    assert "수신 거부가 완료되었습니다" in response.text
    assert "set-cookie" not in response.headers
    assert await status_of(db, "r@example.com") == "unsubscribed"

    again = await client.post(f"/unsubscribe?token={token}", data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200
    notices: int = await db.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE kind = 'opt_out_notice'"
    )
    assert notices == 1


async def test_unsubscribe_skips_queued_bulk_mail(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            "INSERT INTO subscribers (email, status) VALUES ('r@example.com', 'active') "
            "RETURNING id, public_id"
        )
        assert row is not None
        subscriber_id, public_id = row["id"], row["public_id"]
        issue_id = await conn.fetchval(
            "INSERT INTO issues (title, status) VALUES ('11월 소식', 'sending') RETURNING id"
        )
        await conn.execute(
            "INSERT INTO deliveries (issue_id, subscriber_id) VALUES ($1, $2)",
            issue_id,
            subscriber_id,
        )
    token = Tokens(settings.secret_key).unsubscribe(public_id)
    await client.post(f"/unsubscribe?token={token}", data={"List-Unsubscribe": "One-Click"})
    status = await db.pool.fetchval(
        "SELECT status FROM deliveries WHERE subscriber_id = $1", subscriber_id
    )
    assert status == "skipped"


async def test_rotating_secret_key_keeps_erased_addresses_out(
    db: Database, settings: Settings
) -> None:
    from newsletter.audience import subscribers
    from newsletter.audience.subscribers import Evidence

    await db.pool.execute(
        "INSERT INTO suppressions (email_hash, reason) VALUES ($1, 'erased')",
        suppression_hash(db.address_key, "erased@example.com"),
    )
    rotated = settings.replace(secret_key="a-brand-new-signing-key-after-rotation")
    await subscribers.sign_up(
        db,
        rotated,
        email="erased@example.com",
        name=None,
        consent=True,
        evidence=Evidence("198.51.100.9", "ua", "/subscribe", rotated.consent_version),
    )
    assert await status_of(db, "erased@example.com") is None
    assert len(db.address_key) >= 32
    assert db.address_key not in (settings.secret_key, rotated.secret_key)
