"""Login through the city's SSO (OpenID Connect), against an identity
provider of the test's own on a loopback port: discovery, the authorization
code with PKCE, an RS256-signed ID token checked against the provider's keys."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from litestar import Litestar

from newsletter.app import create_app
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from tests.support.console import make_user

CLIENT_ID = "newsletter-console"
CLIENT_SECRET = "sso-client-secret-for-tests"


@dataclass
class Provider:
    issuer: str
    key: RSAKey
    email: str = "editor@gimpo.go.kr"
    subject: str = "gimpo-sso-1001"
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    nonce_override: str | None = None
    audience: str | list[str] = CLIENT_ID
    authorized_party: str | None = None


@pytest.fixture
def provider() -> Iterator[Provider]:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
    state: dict[str, Provider] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def _json(self, data: Any, status: int = 200) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            idp = state["idp"]
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/.well-known/openid-configuration":
                self._json(
                    {
                        "issuer": idp.issuer,
                        "authorization_endpoint": f"{idp.issuer}/authorize",
                        "token_endpoint": f"{idp.issuer}/token",
                        "jwks_uri": f"{idp.issuer}/jwks",
                    }
                )
            elif url.path == "/jwks":
                self._json({"keys": [idp.key.as_dict(private=False)]})
            elif url.path == "/authorize":
                code = secrets.token_urlsafe(16)
                idp.codes[code] = query
                target = (
                    query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
                )
                self.send_response(302)
                self.send_header("Location", target)
                self.end_headers()
            else:
                self._json({"error": "not_found"}, 404)

        def do_POST(self) -> None:
            idp = state["idp"]
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            asked = idp.codes.pop(form.get("code", ""), None)
            challenge = (
                base64.urlsafe_b64encode(
                    hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                )
                .rstrip(b"=")
                .decode()
            )
            if (
                self.headers.get("Authorization") != expected
                or asked is None
                or asked["code_challenge"] != challenge
            ):
                self._json({"error": "invalid_grant"}, 400)
                return
            now = int(time.time())
            claims = {
                "iss": idp.issuer,
                "sub": idp.subject,
                "aud": idp.audience,
                "iat": now,
                "exp": now + 300,
                "nonce": idp.nonce_override or asked["nonce"],
                "email": idp.email,
                "email_verified": True,
            }
            if idp.authorized_party is not None:
                claims["azp"] = idp.authorized_party
            token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, idp.key)
            self._json({"access_token": "a", "token_type": "Bearer", "id_token": token})

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    idp = Provider(issuer=f"http://127.0.0.1:{server.server_address[1]}", key=key)
    state["idp"] = idp
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield idp
    server.shutdown()
    server.server_close()


def sso_app(settings: Settings, db: Database, provider: Provider) -> Litestar:
    return create_app(
        settings.replace(
            oidc_issuer=provider.issuer, oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET
        ),
        db,
    )


@asynccontextmanager
async def sign_in(app: Litestar) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.Response]]:
    """The whole round trip as a browser makes it: console, provider, callback."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport, base_url="https://newsletter.gimpo.go.kr"
    ) as http:
        yield http, await _round_trip(http)


async def _round_trip(http: httpx.AsyncClient) -> httpx.Response:
    page = await http.get("/admin/login")
    assert "김포시 통합 로그인으로 로그인" in page.text
    start = await http.get("/admin/login/sso?next=/admin/news")
    assert start.status_code == 303
    authorize = start.headers["location"]
    params = parse_qs(urlsplit(authorize).query)
    assert params["code_challenge_method"] == ["S256"] and params["client_id"] == [CLIENT_ID]
    async with httpx.AsyncClient() as browser:  # the person at the provider's login page
        back = await browser.get(authorize)
    callback = urlsplit(back.headers["location"])
    return await http.get(f"{callback.path}?{callback.query}")


async def test_sso_logs_in_an_existing_account_and_links_it(
    settings: Settings, db: Database, provider: Provider
) -> None:
    editor = await make_user(db, "editor", email=provider.email)
    async with sign_in(sso_app(settings, db, provider)) as (http, answer):
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/news"
        assert (await http.get("/admin/news")).status_code == 200
    linked = await db.pool.fetchval("SELECT oidc_subject FROM users WHERE id = $1", editor.id)
    assert linked == provider.subject


async def test_sso_without_an_account_gets_no_session(
    settings: Settings, db: Database, provider: Provider
) -> None:
    async with sign_in(sso_app(settings, db, provider)) as (http, answer):
        assert answer.status_code == 403 and "콘솔 계정이 없습니다" in answer.text
        assert (await http.get("/admin")).status_code == 303
    assert await db.pool.fetchval("SELECT count(*) FROM users") == 0


async def test_an_id_token_with_the_wrong_nonce_is_refused(
    settings: Settings, db: Database, provider: Provider
) -> None:
    await make_user(db, "editor", email=provider.email)
    provider.nonce_override = "someone-elses-nonce"
    async with sign_in(sso_app(settings, db, provider)) as (http, answer):
        assert answer.status_code == 401 and "ID 토큰" in answer.text
        assert (await http.get("/admin")).status_code == 303


async def test_a_callback_with_a_forged_state_is_refused(
    settings: Settings, db: Database, provider: Provider
) -> None:
    app = sso_app(settings, db, provider)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport, base_url="https://newsletter.gimpo.go.kr"
    ) as http:
        await http.get("/admin/login/sso")
        forged = await http.get("/admin/login/sso/callback?code=x&state=attacker")
        assert forged.status_code == 401 and "만료되었거나 올바르지 않습니다" in forged.text


async def test_a_token_for_several_audiences_without_azp_is_refused(
    settings: Settings, db: Database, provider: Provider
) -> None:
    """A token the provider issued to another client that also lists us in
    ``aud`` (OpenID Connect Core 3.1.3.7): without ``azp`` naming us, no login."""
    await make_user(db, "editor", email=provider.email)
    provider.audience = [CLIENT_ID, "evil-client"]
    async with sign_in(sso_app(settings, db, provider)) as (http, answer):
        assert answer.status_code == 401 and "ID 토큰" in answer.text
        assert (await http.get("/admin")).status_code == 303
    provider.authorized_party = "evil-client"
    async with sign_in(sso_app(settings, db, provider)) as (http, answer):
        assert answer.status_code == 401
        assert (await http.get("/admin")).status_code == 303
    assert await db.pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'user.login'") == 0


async def test_several_audiences_with_azp_naming_us_log_in(
    settings: Settings, db: Database, provider: Provider
) -> None:
    await make_user(db, "editor", email=provider.email)
    provider.audience = [CLIENT_ID, "city-portal"]
    provider.authorized_party = CLIENT_ID
    async with sign_in(sso_app(settings, db, provider)) as (http, answer):
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/news"
        assert (await http.get("/admin/news")).status_code == 200
