"""What residents read: the city's identity on every page, Korean or English,
errors tied to their fields, result pages that fit what happened and lead on."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx
import pytest

from newsletter.app import create_app
from newsletter.core.city import CityFileError
from newsletter.core.city import load as load_city
from newsletter.core.db import Database
from newsletter.core.settings import Settings, SettingsError
from newsletter.core.tokens import Tokens
from tests.conftest import TEST_SECRET_KEY

PAGES = ("/subscribe", "/embed/subscribe", "/archive", "/archive/404", "/confirm?token=x")


def identity_shown(page: str, settings: Settings, language: str = "ko") -> None:
    city, text = settings.city, settings.city.text(language)
    page = html.unescape(page)
    assert text.newsletter in page
    assert text.department in page
    assert city.privacy_url in page
    if "/embed/" not in page and 'class="embedded"' not in page:
        assert f'<img src="/city/logo" alt="{text.logo_alt}"' in page
        assert f'href="{city.homepage}"' in page
        assert text.address in page and city.phone in page
        assert text.collection_refusal in page


async def test_every_page_says_who_sends_it(client: httpx.AsyncClient, settings: Settings) -> None:
    for path in PAGES:
        page = await client.get(path)
        identity_shown(page.text, settings)
    logo = await client.get("/city/logo")
    assert logo.status_code == 200 and logo.headers["content-type"] == "image/png"
    assert logo.content.startswith(b"\x89PNG")
    css = await client.get("/static/css/site.css")
    assert css.status_code == 200 and "word-break: keep-all" in css.text


async def test_another_city_sets_its_own_identity(
    tmp_path: Path, settings: Settings, db: Database
) -> None:
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    (tmp_path / "city.toml").write_text(
        """
name = "예시시"
homepage = "https://www.example.go.kr"
phone = "02-123-4567"
privacy_url = "https://www.example.go.kr/privacy"
logo = "logo.png"
department = "예시시청 홍보과"
address = "(01234) 예시도 예시시 중앙로 1"

[en]
name = "Example City"
department = "Public Relations, Example City Hall"
address = "1 Jungang-ro, Example 01234"
""",
        encoding="utf-8",
    )
    city = Settings.from_env(
        {
            "NEWSLETTER_DATABASE_URL": "postgresql://x@127.0.0.1/x",
            "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
            "NEWSLETTER_CITY_FILE": str(tmp_path / "city.toml"),
        }
    ).city
    assert (
        city.ko.newsletter == "예시시 뉴스레터" and city.en.newsletter == "Example City Newsletter"
    )
    app = create_app(settings.replace(city=city), db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="https://news.example.go.kr",
    ) as http:
        page = await http.get("/subscribe")
        assert "예시시 뉴스레터" in page.text and "예시시청 홍보과" in page.text
        assert "김포" not in page.text
        english = await http.get("/subscribe", headers={"Accept-Language": "en"})
        assert "Public Relations, Example City Hall" in english.text
        logo = await http.get("/city/logo")
        assert logo.content == (tmp_path / "logo.png").read_bytes()

    (tmp_path / "bad.toml").write_text('name = "x"\n', encoding="utf-8")
    with pytest.raises(CityFileError, match="'homepage' is required"):
        load_city(tmp_path / "bad.toml")
    with pytest.raises(SettingsError, match="NEWSLETTER_CITY_FILE"):
        Settings.from_env(
            {
                "NEWSLETTER_DATABASE_URL": "postgresql://x@127.0.0.1/x",
                "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
                "NEWSLETTER_CITY_FILE": str(tmp_path / "missing.toml"),
            }
        )


async def test_english_by_browser_or_by_the_language_link(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    korean = await client.get("/subscribe")
    assert '<html lang="ko">' in korean.text
    assert '<a href="/subscribe?lang=en" lang="en" hreflang="en">English</a>' in korean.text

    by_browser = await client.get("/subscribe", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert '<html lang="en">' in by_browser.text
    assert "Subscribe to the Gimpo City Newsletter" in by_browser.text
    assert "Right to refuse" in by_browser.text
    identity_shown(by_browser.text, settings, "en")
    assert 'hreflang="ko">한국어</a>' in by_browser.text

    by_link = await client.get("/subscribe?lang=en", headers={"Accept-Language": "ko"})
    assert '<html lang="en">' in by_link.text
    # The choice carries on: links and the form keep it.
    assert 'href="/archive?lang=en"' in by_link.text
    assert '<input type="hidden" name="lang" value="en">' in by_link.text
    answer = await client.post(
        "/subscribe", data={"email": "x@example.com", "consent": "on", "lang": "en"}
    )
    assert "We have sent you a confirmation mail" in answer.text
    error = await client.post("/subscribe", data={"email": "nope", "consent": "on", "lang": "en"})
    assert error.status_code == 422 and "This is not a valid e-mail address" in error.text
    assert "<title>Error:" in error.text


async def test_a_mistake_keeps_what_was_typed_and_points_at_the_field(
    client: httpx.AsyncClient,
) -> None:
    page = await client.post(
        "/subscribe", data={"email": "nope", "name": "김포시민", "consent": "on"}
    )
    assert page.status_code == 422
    assert re.search(r"<title>오류: ", page.text)
    assert 'value="nope"' in page.text and 'value="김포시민"' in page.text
    assert re.search(r'id="consent"[^>]*checked', page.text)
    email = re.search(r'<input type="email"[^>]*>', page.text)
    assert email is not None
    assert 'aria-invalid="true"' in email.group(0)
    assert 'aria-describedby="email-error"' in email.group(0)
    assert '<p class="error" id="email-error">올바른 이메일 주소가 아닙니다' in page.text

    unticked = await client.post("/subscribe", data={"email": "ok@example.com"})
    assert unticked.status_code == 422
    consent = re.search(r'<input type="checkbox" id="consent"[^>]*>', unticked.text)
    assert consent is not None and 'aria-invalid="true"' in consent.group(0)
    assert "consent-error" in consent.group(0)
    assert 'value="ok@example.com"' in unticked.text


async def test_result_pages_fit_what_happened_and_lead_on(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    tokens = Tokens(settings.secret_key)
    public_id: str = await db.pool.fetchval(
        "INSERT INTO subscribers (email) VALUES ('res@example.com') RETURNING public_id"
    )
    confirmed = await client.post("/confirm", data={"token": tokens.confirm(public_id)})
    assert "구독이 완료되었습니다" in confirmed.text
    assert "다시 구독" not in confirmed.text  # not right after subscribing
    assert (
        'href="/archive"' in confirmed.text and f'href="{settings.city.homepage}"' in confirmed.text
    )

    token = tokens.unsubscribe(public_id)
    left = await client.post(f"/unsubscribe?token={token}", data={"token": token})
    assert "수신 거부가 완료되었습니다" in left.text
    assert "수신을 원하지 않으시면" not in left.text
    assert 'href="/subscribe"' in left.text and 'href="/archive"' in left.text

    # The link again, later: it says so and offers to subscribe again.
    again = await client.get(f"/unsubscribe?token={token}")
    assert again.status_code == 200
    assert "이미 수신 거부된 주소입니다" in again.text
    assert '<form method="post"' not in again.text
    assert '<a class="button" href="/subscribe">다시 구독 신청하기</a>' in again.text

    accepted = await client.post("/subscribe", data={"email": "n@example.com", "consent": "on"})
    assert 'href="/archive"' in accepted.text and "다시 구독" not in accepted.text
