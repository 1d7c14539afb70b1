"""Optional login through the city's single sign-on (OpenID Connect).

Off unless ``NEWSLETTER_OIDC_ISSUER``, ``_CLIENT_ID`` and ``_CLIENT_SECRET``
are set. The authorization-code flow with PKCE (RFC 7636): authlib builds
the authorization request and the S256 challenge, httpx talks to the
provider, joserfc verifies the ID token's signature against the provider's
published keys and checks issuer, audience (and the authorized party when
the token names several audiences), expiry and our nonce. State,
nonce and verifier travel in a signed, ten-minute cookie of their own, so
nothing is stored before the person comes back.

SSO never creates accounts or grants roles: an admin creates the account
(``newsletter create-user``); the first SSO login with that verified address
links the provider's subject to it, later logins go by the subject.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from newsletter.core.db import QUERIES, Connection
from newsletter.core.settings import Settings
from newsletter.ops.users import User, link_sso, user_of

STATE_COOKIE = "nl_sso"
STATE_MAX_AGE_SECONDS = 600
HTTP_TIMEOUT_SECONDS = 10.0
METADATA_CACHE_SECONDS = 3600
SCOPES = "openid email profile"
ALGORITHMS = ("RS256", "ES256", "PS256")

_metadata_cache: dict[str, tuple[float, dict[str, Any]]] = {}


class SsoUnavailable(Exception):
    """The provider could not be reached or answered nonsense (our side or theirs)."""


class SsoRefused(Exception):
    """The login did not prove who the person is (expired, tampered, refused)."""


@dataclass(frozen=True, slots=True)
class Start:
    url: str
    cookie_value: str


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    email: str | None
    email_verified: bool
    next_path: str


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        settings.secret_key, salt="console-sso", signer_kwargs={"digest_method": hashlib.sha256}
    )


def state_cookie(
    settings: Settings, value: str, *, max_age: int = STATE_MAX_AGE_SECONDS
) -> dict[str, Any]:
    """The state cookie's fields (the web layer builds the cookie from them;
    this module stays free of the HTTP framework). ``max_age=0`` clears it."""
    return {
        "key": STATE_COOKIE,
        "value": value,
        "path": "/admin/login/sso",
        "httponly": True,
        "samesite": "lax",
        "secure": settings.secure_cookies,
        "max_age": max_age,
    }


async def _get_json(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    try:
        response = await client.get(url)
        response.raise_for_status()
        data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SsoUnavailable(
            "통합 로그인 서버에 연결할 수 없습니다. "
            "잠시 뒤 다시 시도하거나 비밀번호로 로그인해 주세요."
        ) from exc
    if not isinstance(data, dict):
        raise SsoUnavailable("통합 로그인 서버의 응답을 이해할 수 없습니다.")
    return data


async def metadata(settings: Settings, client: httpx.AsyncClient) -> dict[str, Any]:
    issuer = settings.oidc_issuer or ""
    cached = _metadata_cache.get(issuer)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    data = await _get_json(client, f"{issuer}/.well-known/openid-configuration")
    needed = ("authorization_endpoint", "token_endpoint", "jwks_uri", "issuer")
    if any(not isinstance(data.get(k), str) for k in needed) or data["issuer"] != issuer:
        raise SsoUnavailable("통합 로그인 서버의 설정(OpenID 메타데이터)이 올바르지 않습니다.")
    _metadata_cache[issuer] = (time.monotonic() + METADATA_CACHE_SECONDS, data)
    return data


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False)


async def begin(settings: Settings, *, redirect_uri: str, next_path: str) -> Start:
    """Where to send the browser, and the signed cookie that must come back with it."""
    async with _client() as client:
        meta = await metadata(settings, client)
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    url = add_params_to_uri(
        meta["authorization_endpoint"],
        {
            "response_type": "code",
            "client_id": settings.oidc_client_id or "",
            "redirect_uri": redirect_uri,
            "scope": SCOPES,
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),  # type: ignore[no-untyped-call]
            "code_challenge_method": "S256",
        },
    )
    cookie = _serializer(settings).dumps({"s": state, "n": nonce, "v": verifier, "next": next_path})
    return Start(url=url, cookie_value=cookie)


async def finish(
    settings: Settings,
    *,
    redirect_uri: str,
    cookie_value: str,
    state: str,
    code: str,
    error: str | None,
) -> Identity:
    """Check the provider's answer, redeem the code, verify the ID token."""
    try:
        saved = _serializer(settings).loads(cookie_value, max_age=STATE_MAX_AGE_SECONDS)
    except BadSignature:
        raise SsoRefused(
            "로그인 요청이 만료되었거나 올바르지 않습니다. 다시 시도해 주세요."
        ) from None
    if not isinstance(saved, dict) or not hmac.compare_digest(str(saved.get("s", "")), state):
        raise SsoRefused("로그인 요청이 만료되었거나 올바르지 않습니다. 다시 시도해 주세요.")
    if error:
        raise SsoRefused(f"통합 로그인에서 거절했습니다 ({error[:60]}).")
    if not code:
        raise SsoRefused("통합 로그인 서버가 인증 코드를 보내지 않았습니다.")
    async with _client() as client:
        meta = await metadata(settings, client)
        try:
            response = await client.post(
                meta["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": str(saved["v"]),
                },
                auth=(settings.oidc_client_id or "", settings.oidc_client_secret or ""),
            )
        except httpx.HTTPError as exc:
            raise SsoUnavailable("통합 로그인 서버에 연결할 수 없습니다.") from exc
        if response.status_code >= 400:
            raise SsoRefused(
                "통합 로그인 서버가 인증 코드를 받아들이지 않았습니다. 다시 시도해 주세요."
            )
        try:
            id_token = response.json()["id_token"]
        except (ValueError, KeyError, TypeError):
            raise SsoUnavailable("통합 로그인 서버가 ID 토큰을 보내지 않았습니다.") from None
        keys = await _get_json(client, meta["jwks_uri"])
    claims = _verified_claims(settings, meta["issuer"], str(id_token), keys, str(saved["n"]))
    email = claims.get("email")
    return Identity(
        subject=str(claims["sub"]),
        email=email if isinstance(email, str) else None,
        email_verified=claims.get("email_verified") is True,
        next_path=str(saved.get("next") or "/admin"),
    )


def _verified_claims(
    settings: Settings, issuer: str, id_token: str, keys: dict[str, Any], nonce: str
) -> dict[str, Any]:
    refused = SsoRefused("통합 로그인의 신원 확인(ID 토큰)이 올바르지 않습니다.")
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(keys), algorithms=list(ALGORITHMS))  # type: ignore[arg-type]
        JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": settings.oidc_client_id or ""},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(token.claims)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise refused from exc
    if not _meant_for_us(token.claims, settings.oidc_client_id or ""):
        raise refused
    return dict(token.claims)


def _meant_for_us(claims: dict[str, Any], client_id: str) -> bool:
    """OpenID Connect Core 3.1.3.7 (3-5): a token that names other audiences
    beside us must say it was issued to us (``azp``); otherwise another
    client of the provider could log in here with a token it was given.
    An ``azp`` naming anyone else is refused whatever the audience."""
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    party = claims.get("azp")
    if party is not None and party != client_id:
        return False
    return len(audiences) <= 1 or party == client_id


async def account_for(conn: Connection, identity: Identity) -> User | None:
    """The enabled account this SSO identity logs in to, linking it on first use."""
    row = await conn.fetchrow(QUERIES.user_by_oidc_subject, identity.subject)
    if row is None and identity.email and identity.email_verified:
        candidate = await conn.fetchrow(QUERIES.user_by_email, identity.email)
        if candidate is not None and candidate["oidc_subject"] is None:
            row = candidate
            if candidate["disabled_at"] is None:
                await link_sso(conn, user_of(candidate), identity.subject)
    if row is None or row["disabled_at"] is not None:
        return None
    return user_of(row)
