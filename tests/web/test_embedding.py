"""The signup on the city homepage: who may frame it, who may post it cross-origin,
and the proof-of-work that protects it beyond the honeypot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import altcha
import httpx
import pytest
from litestar import Litestar

from newsletter.app import create_app
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from tests.conftest import TEST_SECRET_KEY

CITY = "https://www.gimpo.go.kr"
STRANGER = "https://evil.example"
SIGNUP = {"email": "resident@example.com", "consent": "on"}


@pytest.fixture
def embed_settings(settings: Settings) -> Settings:
    return settings.replace(
        embed_origins=(CITY, "https://news.gimpo.go.kr"),
        signup_limit_without_challenge_per_ip_per_hour=3,
    )


@pytest.fixture
async def city_client(embed_settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app: Litestar = create_app(embed_settings, db)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport, base_url="https://newsletter.gimpo.go.kr"
    ) as http:
        yield http


def test_embed_origins_setting_is_read_and_checked() -> None:
    env = {
        "NEWSLETTER_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
        "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
    }
    assert Settings.from_env(env).embed_origins == ()
    read = Settings.from_env({**env, "NEWSLETTER_EMBED_ORIGINS": " https://www.Gimpo.go.kr/ ,"})
    assert read.embed_origins == ("https://www.gimpo.go.kr",)
    from newsletter.core.settings import SettingsError

    with pytest.raises(SettingsError, match="NEWSLETTER_EMBED_ORIGINS"):
        Settings.from_env({**env, "NEWSLETTER_EMBED_ORIGINS": "https://www.gimpo.go.kr/news"})


async def test_only_the_embed_origins_may_frame_the_form(
    city_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    page = await city_client.get("/embed/subscribe")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors https://www.gimpo.go.kr https://news.gimpo.go.kr" in policy
    assert "script-src 'self'" in policy
    assert 'action="/embed/subscribe"' in page.text
    # Its answer is shown inside the frame too, so it may be framed as well.
    answer = await city_client.post("/embed/subscribe", data=SIGNUP)
    assert answer.status_code == 200 and "확인 메일을 보냈습니다" in answer.text
    assert "frame-ancestors https://www.gimpo.go.kr" in answer.headers["content-security-policy"]
    # Without any embed origin configured nobody may frame it.
    alone = await client.get("/embed/subscribe")
    assert "frame-ancestors 'none'" in alone.headers["content-security-policy"]
    # The ordinary form page is not relaxed.
    plain = await city_client.get("/subscribe")
    assert "frame-ancestors https://www.gimpo.go.kr" not in plain.headers.get(
        "content-security-policy", ""
    )


async def test_cors_preflight_and_post_for_allowed_origins_only(
    city_client: httpx.AsyncClient, db: Database
) -> None:
    preflight = await city_client.options(
        "/subscribe",
        headers={
            "Origin": CITY,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == CITY
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "content-type" in preflight.headers["access-control-allow-headers"].lower()

    allowed = await city_client.post(
        "/subscribe", json={**SIGNUP, "consent": True}, headers={"Origin": CITY}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == CITY
    assert allowed.headers["vary"] == "Origin"
    # Errors reach the city page's script too.
    invalid = await city_client.post(
        "/subscribe", json={"email": "nope", "consent": True}, headers={"Origin": CITY}
    )
    assert invalid.status_code == 422
    assert invalid.headers["access-control-allow-origin"] == CITY

    refused = await city_client.options(
        "/subscribe",
        headers={"Origin": STRANGER, "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    foreign = await city_client.post(
        "/subscribe",
        json={"email": "other@example.com", "consent": True},
        headers={"Origin": STRANGER},
    )
    assert "access-control-allow-origin" not in foreign.headers


def solved(challenge: dict[str, object]) -> str:
    parsed = altcha.Challenge.from_dict(challenge)
    solution = altcha.solve_challenge(parsed)
    assert solution is not None
    return altcha.Payload(parsed, solution).to_base64()


async def test_proof_of_work_counts_once_and_lifts_the_no_javascript_limit(
    city_client: httpx.AsyncClient, db: Database
) -> None:
    challenge = await city_client.get("/altcha/challenge")
    assert challenge.status_code == 200
    assert challenge.headers["cache-control"] == "no-store"
    answer = solved(challenge.json())

    ok = await city_client.post("/subscribe", data={**SIGNUP, "altcha": answer})
    assert ok.status_code == 200 and "확인 메일을 보냈습니다" in ok.text
    # The same answer again: refused, with the message tied to the widget.
    again = await city_client.post(
        "/subscribe", data={**SIGNUP, "email": "second@example.com", "altcha": answer}
    )
    assert again.status_code == 422 and "자동 입력 방지 확인에 실패했습니다" in again.text
    forged = await city_client.post(
        "/subscribe",
        data={**SIGNUP, "email": "third@example.com", "altcha": "bm90IGFuIGFuc3dlcg=="},
    )
    assert forged.status_code == 422
    assert await db.fetchrow("get_subscriber_by_email", "second@example.com") is None

    # Without JavaScript the form still works, under the smaller limit
    # (this IP already made one signup above, with the answer).
    for n in range(2):
        plain = await city_client.post("/subscribe", data={**SIGNUP, "email": f"p{n}@example.com"})
        assert plain.status_code == 200, n
    over = await city_client.post("/subscribe", data={**SIGNUP, "email": "p9@example.com"})
    assert over.status_code == 429 and "잠시 후" in over.text
    # ...while a solved challenge still gets the ordinary per-IP limit.
    fresh = solved((await city_client.get("/altcha/challenge")).json())
    still = await city_client.post(
        "/subscribe", data={**SIGNUP, "email": "solver@example.com", "altcha": fresh}
    )
    assert still.status_code == 200
