"""Every kind of mail as it leaves the worker: SpamAssassin (Debian's, local tests
only) does not flag it, it carries the city's identity, reads in the resident's
language, and its links fit what just happened."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.mail import outbox
from tests.conftest import SmtpServer, bearer, drain

SCORE = re.compile(rb"X-Spam-Status: \w+, score=(-?[0-9.]+)")
MAX_SCORE = 0.5


@pytest.fixture(scope="session")
def spamassassin() -> str:
    """Debian's SpamAssassin, installed with apt-get when missing."""
    if shutil.which("spamassassin") is None:
        if shutil.which("apt-get") is None:
            pytest.skip("spamassassin is missing and this system has no apt-get to install it")
        for command in (
            ["apt-get", "install", "-y", "spamassassin"],
            ["apt-get", "update"],  # a fresh machine's package lists may be stale
            ["apt-get", "install", "-y", "spamassassin"],
        ):
            if shutil.which("spamassassin") is not None:
                break
            done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        if shutil.which("spamassassin") is None:
            pytest.skip(f"spamassassin cannot be installed here: {done.stderr.strip()[-300:]}")
    return str(shutil.which("spamassassin"))


def spam_score(spamassassin: str, raw: bytes) -> tuple[float, str]:
    """SpamAssassin's score with local tests only (-L: no network lookups)."""
    done = subprocess.run(
        [spamassassin, "-t", "-L"], input=raw, capture_output=True, timeout=120, check=True
    )
    found = SCORE.search(done.stdout)
    assert found is not None, done.stdout[-2000:]
    report = done.stdout.decode("utf-8", "replace").rpartition("Content analysis details:")[2]
    return float(found.group(1)), report


def html_of(raw: bytes) -> str:
    from email import policy
    from email.parser import BytesParser

    message = BytesParser(policy=policy.default).parsebytes(raw)
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    content: str = part.get_content()
    return content


def text_of(raw: bytes) -> str:
    from email import policy
    from email.parser import BytesParser

    message = BytesParser(policy=policy.default).parsebytes(raw)
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


async def every_kind_of_mail(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> dict[str, bytes]:
    """One real mail of each kind, as the worker handed it to SMTP."""
    sent: dict[str, bytes] = {}

    def last_to(address: str) -> bytes:
        return smtp_server.handler.to(address)[-1].data

    await client.post("/subscribe", data={"email": "kim@example.com", "consent": "on"})
    await drain(settings, db)
    sent["confirm"] = last_to("kim@example.com")
    link = re.search(r"/confirm\?token=[\w.\-]+", text_of(sent["confirm"]))
    assert link is not None
    token = link.group(0).split("=", 1)[1]
    await client.post("/confirm", data={"token": token})
    await drain(settings, db)
    sent["opt_in_notice"] = last_to("kim@example.com")

    headers = await bearer(db)
    item = await client.post(
        "/api/v1/news-items",
        json={
            "title": "김포골드라인 증차 운행 시작",
            "summary": "출퇴근 시간 배차 간격이 3분대로 줄어듭니다.",
            "body": "<p>김포시는 다음 달부터 김포골드라인 열차를 늘려 운행합니다.</p>",
            "link": "https://www.gimpo.go.kr/news/1",
            "category": "교통",
        },
        headers=headers,
    )
    issue = await client.post(
        "/api/v1/issues",
        json={
            "title": "12월 김포 소식",
            "intro": "올해 마지막 소식을 전해 드립니다.",
            "news_item_ids": [item.json()["id"]],
        },
        headers=headers,
    )
    # Offline, the pre-send check cannot reach the links: problems, sent despite them.
    started = await client.post(
        f"/api/v1/issues/{issue.json()['id']}/send-now",
        json={"despite_problems": True},
        headers=headers,
    )
    assert started.status_code == 200, started.text
    await drain(settings, db)
    sent["issue"] = last_to("kim@example.com")

    row = await db.fetchrow("get_subscriber_by_email", "kim@example.com")
    assert row is not None
    now = datetime.now(UTC)
    async with db.transaction() as conn:
        for kind, payload in (
            (
                "reconfirm",
                {
                    "consented_at": (now - timedelta(days=730)).isoformat(),
                    "deadline": (now + timedelta(days=30)).isoformat(),
                },
            ),
            ("reconfirm_notice", {"at": now.isoformat(), "result": "confirmed"}),
        ):
            await outbox.enqueue(
                conn,
                kind,
                "kim@example.com",
                {"subscriber_id": row["id"], "name": None, **payload},
                subscriber_id=row["id"],
            )
    await drain(settings, db)
    for mail in smtp_server.handler.to("kim@example.com")[-2:]:
        kind = "reconfirm" if "/reconfirm?token" in text_of(mail.data) else "reconfirm_notice"
        sent[kind] = mail.data

    unsubscribe = re.search(r"/unsubscribe\?token=[\w.\-]+", text_of(sent["opt_in_notice"]))
    assert unsubscribe is not None
    await client.post(unsubscribe.group(0), data={"List-Unsubscribe": "One-Click"})
    await drain(settings, db)
    sent["opt_out_notice"] = last_to("kim@example.com")
    return sent


async def test_spamassassin_does_not_flag_any_kind_of_mail(
    spamassassin: str,
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    smtp_server: SmtpServer,
) -> None:
    sent = await every_kind_of_mail(client, db, settings, smtp_server)
    assert set(sent) == {
        "confirm",
        "opt_in_notice",
        "issue",
        "reconfirm",
        "reconfirm_notice",
        "opt_out_notice",
    }
    scores = {}
    for kind, raw in sent.items():
        score, report = spam_score(spamassassin, raw)
        scores[kind] = score
        assert score <= MAX_SCORE, f"{kind} scored {score}:\n{report}"
    print("SpamAssassin scores:", scores)


async def test_every_mail_names_the_city_and_links_what_fits(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    sent = await every_kind_of_mail(client, db, settings, smtp_server)
    city = settings.city
    for kind, raw in sent.items():
        html, text = html_of(raw), text_of(raw)
        for part in (html, text):
            assert city.ko.department in part, kind
            assert city.ko.address in part, kind
            assert city.phone in part, kind
            assert city.privacy_url in part, kind
            assert city.ko.collection_refusal in part, kind
        assert "개인정보처리방침" in html, kind
        assert 'lang="ko"' in html, kind
        assert 'name="color-scheme"' in html, kind
        assert "word-break:keep-all" in html, kind
    # Right after subscribing: the way out, not "subscribe again".
    assert "/unsubscribe?token=" in text_of(sent["opt_in_notice"])
    assert "/subscribe" not in text_of(sent["opt_in_notice"]).replace("/unsubscribe", "")
    # Right after leaving: the way back, not "if you do not want to receive it".
    out = text_of(sent["opt_out_notice"])
    assert "수신을 원하지 않으시면" not in out and "/unsubscribe" not in out
    assert f"{settings.base_url}/subscribe" in out


async def test_english_reader_gets_english_transactional_mail(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    await client.post(
        "/subscribe",
        data={"email": "lee@example.com", "consent": "on"},
        headers={"Accept-Language": "en-US,en;q=0.9"},
    )
    await drain(settings, db)
    [mail] = smtp_server.handler.to("lee@example.com")
    message = mail.message
    assert str(message["Subject"]) == "[Gimpo City Newsletter] Please confirm your subscription"
    text = text_of(mail.data)
    assert "Thank you for subscribing to the Gimpo City Newsletter." in text
    assert settings.city.en.department in text and settings.city.en.address in text
    assert 'lang="en"' in html_of(mail.data)
    assert message["Content-Language"] == "en"
    link = re.search(r"/confirm\?token=[\w.\-]+&lang=en", text)
    assert link is not None  # the page it opens is in English too
    page = await client.get(link.group(0))
    assert '<html lang="en">' in page.text and "Confirm subscription" in page.text
    # The issue stays in the editors' language; the notices follow the resident.
    token = link.group(0).split("token=")[1].split("&")[0]
    await client.post("/confirm", data={"token": token, "lang": "en"})
    await drain(settings, db)
    notice = smtp_server.handler.to("lee@example.com")[-1]
    assert "You agreed to receive the newsletter" in text_of(notice.data)
    assert "KST" in text_of(notice.data)
