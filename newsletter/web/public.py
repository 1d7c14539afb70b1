"""Public pages for residents: subscribe, confirm, unsubscribe (Korean, no JavaScript)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.response import Redirect, Template

from newsletter.audience import signup_batch, subscribers
from newsletter.audience.subscribers import LinkNoLongerValid
from newsletter.core.db import Database
from newsletter.core.errors import InvalidInput, RateLimited
from newsletter.core.settings import Settings
from newsletter.core.tokens import ExpiredToken, InvalidToken
from newsletter.web.deps import DB, Config, Signer
from newsletter.web.forms import (
    PUBLIC_BODY_LIMIT,
    LinkToken,
    evidence,
    form_fields,
    message,
    page,
    page_post,
    posted_token,
    text_field,
    truthy,
    wants_json,
)

SIGNUP_ACCEPTED = "구독 신청을 받았습니다. 받은편지함에서 확인 메일을 열어 구독을 완료해 주세요."
ACCEPTED_JSON = msgspec.json.encode({"status": "accepted", "message": SIGNUP_ACCEPTED})


@get("/", include_in_schema=False)
async def home() -> Redirect:
    """The bare address, typed or linked, leads to the signup page."""
    return Redirect("/subscribe")


@get("/subscribe", media_type=MediaType.HTML, tags=["public"])
async def subscribe_form(settings: Config) -> Template:
    """The signup form (Korean, no JavaScript)."""
    return page(
        "subscribe.html",
        consent_version=settings.consent_version,
        retention_days=settings.retention_days,
        name_max=subscribers.MAX_NAME_LENGTH,
    )


@post("/subscribe", request_max_body_size=PUBLIC_BODY_LIMIT, tags=["public"], status_code=200)
async def subscribe(request: Request[Any, Any, Any]) -> Response[Any] | Template:
    """Sign up (form or JSON). The answer is identical for every known or unknown address."""
    # The busiest public route reads the pool and settings from app state:
    # Litestar resolves two or more dependencies in a fresh task group per
    # request, which costs more than this handler's own Python work.
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    fields = await form_fields(request)
    as_json = wants_json(request)
    if text_field(fields, "website"):  # the honeypot: only bots fill it in
        return _signup_accepted(request, as_json)
    email = text_field(fields, "email") or ""
    name = text_field(fields, "name")
    try:
        await subscribers.sign_up(
            db,
            settings,
            email=email,
            name=name,
            consent=truthy(fields.get("consent")),
            evidence=evidence(request, settings, request.headers.get("referer") or "/subscribe"),
            batcher=signup_batch.batcher_for(request.app.state, db),
        )
    except InvalidInput as exc:
        if as_json:
            raise
        return page(
            "subscribe.html",
            422,
            error=exc.detail,
            email=email[:254],
            name=(name or "")[: subscribers.MAX_NAME_LENGTH],
            consent_version=settings.consent_version,
            retention_days=settings.retention_days,
            name_max=subscribers.MAX_NAME_LENGTH,
        )
    except RateLimited as exc:
        if as_json:
            raise
        return message("잠시 후 다시 시도해 주세요", exc.detail, status=429)
    return _signup_accepted(request, as_json)


def _signup_accepted(request: Request[Any, Any, Any], as_json: bool) -> Response[Any]:
    """The one answer for every accepted signup, rendered once per app: the
    bytes cannot differ between address states, and rendering costs nothing."""
    if as_json:
        return Response(ACCEPTED_JSON, media_type=MediaType.JSON)
    state = request.app.state
    page: bytes | None = state.get("signup_accepted_page")
    if page is None:
        template = request.app.template_engine.get_template("message.html")  # type: ignore[union-attr]
        page = template.render(
            heading="확인 메일을 보냈습니다",
            paragraphs=(SIGNUP_ACCEPTED, "메일이 보이지 않으면 스팸함도 확인해 주세요."),
            link=None,
        ).encode()
        state["signup_accepted_page"] = page
    return Response(page, media_type=MediaType.HTML)


def _bad_link(expired: bool) -> Template:
    if expired:
        return message(
            "링크의 유효 기간이 지났습니다",
            "확인 링크의 유효 기간이 지났습니다. 구독을 다시 신청해 주세요.",
            status=400,
            link={"href": "/subscribe", "label": "다시 구독 신청하기"},
        )
    return message(
        "올바르지 않은 링크입니다",
        "링크가 잘렸거나 변경된 것 같습니다. 메일의 링크를 그대로 열어 주세요.",
        status=400,
        link={"href": "/subscribe", "label": "구독 신청 페이지로"},
    )


@get("/confirm", media_type=MediaType.HTML, tags=["public"])
async def confirm_page(db: DB, tokens: Signer, token: LinkToken = "") -> Template:
    """Shows the button (and the name typed at signup, to keep, change or
    drop): mail scanners prefetch links, so GET changes nothing."""
    try:
        ref, _ = tokens.read_confirm(token)
    except ExpiredToken:
        return _bad_link(expired=True)
    except InvalidToken:
        return _bad_link(expired=False)
    name = await subscribers.suggested_name(db, ref)
    return page("confirm.html", token=token, name=name, name_max=subscribers.MAX_NAME_LENGTH)


@page_post("/confirm")
async def confirm(
    request: Request[Any, Any, Any], db: DB, settings: Config, tokens: Signer
) -> Template:
    fields = await form_fields(request)
    token = posted_token(request, fields)
    try:
        ref, issued_at = tokens.read_confirm(token)
    except ExpiredToken:
        return _bad_link(expired=True)
    except InvalidToken:
        return _bad_link(expired=False)
    name = text_field(fields, "name")
    try:
        active = await subscribers.confirm(
            db,
            ref=ref,
            issued_at=subscribers.token_time(issued_at),
            evidence=evidence(request, settings, "/confirm"),
            name=name,
        )
    except LinkNoLongerValid:
        return _bad_link(expired=True)
    except InvalidInput as exc:
        return page(
            "confirm.html",
            422,
            token=token,
            name=(name or "")[: subscribers.MAX_NAME_LENGTH],
            name_max=subscribers.MAX_NAME_LENGTH,
            error=exc.detail,
        )
    if not active:
        return _bad_link(expired=False)
    return message(
        "구독이 완료되었습니다",
        "김포시 뉴스레터를 구독해 주셔서 감사합니다. 한 달에 두 번 시정 소식을 보내 드립니다.",
        "수신 동의 처리 결과는 이메일로도 알려 드립니다.",
    )


@get("/unsubscribe", media_type=MediaType.HTML, tags=["public"])
async def unsubscribe_page(tokens: Signer, token: LinkToken = "") -> Template:
    """Shows the one-button opt-out form; GET changes nothing."""
    try:
        tokens.read_unsubscribe(token)
    except InvalidToken:
        return _bad_link(expired=False)
    return page("unsubscribe.html", token=token)


@page_post("/unsubscribe")
async def unsubscribe(
    request: Request[Any, Any, Any], db: DB, settings: Config, tokens: Signer
) -> Template:
    """RFC 8058 one-click (``List-Unsubscribe=One-Click``) and the page's own form."""
    token = posted_token(request, await form_fields(request))
    try:
        ref = tokens.read_unsubscribe(token)
    except InvalidToken:
        return _bad_link(expired=False)
    await subscribers.unsubscribe(db, ref=ref, evidence=evidence(request, settings, "/unsubscribe"))
    return message(
        "수신 거부가 완료되었습니다",
        "더 이상 김포시 뉴스레터를 보내 드리지 않습니다. 처리 결과는 이메일로 알려 드립니다.",
        link={"href": "/subscribe", "label": "다시 구독하기"},
    )


ROUTES = [home, subscribe_form, subscribe, confirm_page, confirm, unsubscribe_page, unsubscribe]
