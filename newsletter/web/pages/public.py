"""Public pages for residents: subscribe (also embedded in the city homepage),
confirm, unsubscribe. Korean or English, and every page works without JavaScript."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import HttpMethod, MediaType, Request, Response, get, post, route
from litestar.exceptions import PermissionDeniedException
from litestar.response import Redirect, Template

from newsletter.audience import challenge, signup_batch, subscribers
from newsletter.audience.subscribers import LinkNoLongerValid
from newsletter.core.db import Database
from newsletter.core.errors import InvalidInput, RateLimited
from newsletter.core.i18n import N_
from newsletter.core.settings import Settings
from newsletter.core.tokens import ExpiredToken, InvalidToken, SubscriberRef, Tokens
from newsletter.editorial.issues import PREVIEW_TOKEN
from newsletter.web.http.deps import DB, Config, Signer
from newsletter.web.http.forms import (
    PUBLIC_BODY_LIMIT,
    LinkToken,
    evidence,
    form_fields,
    page_post,
    posted_token,
    text_field,
    truthy,
    wants_json,
)
from newsletter.web.http.headers import framable_by
from newsletter.web.pages.embedding import PREFLIGHT_HEADERS, SignupCors, allowed_origin
from newsletter.web.pages.shell import Reader, context, message, onward_links, page, reader

SIGNUP_ACCEPTED = N_(
    "구독 신청을 받았습니다. 받은편지함에서 확인 메일을 열어 구독을 완료해 주세요."
)
CHECK_SPAM = N_("메일이 보이지 않으면 스팸함도 확인해 주세요.")


@get("/", include_in_schema=False)
async def home() -> Redirect:
    """The bare address, typed or linked, leads to the signup page."""
    return Redirect("/subscribe")


def _form(request: Request[Any, Any, Any], status: int = 200, **values: Any) -> Template:
    settings: Settings = request.app.state.settings
    return page(
        request,
        "subscribe.html",
        status,
        consent_version=settings.consent_version,
        retention_days=settings.retention_days,
        altcha=True,
        name_max=subscribers.MAX_NAME_LENGTH,
        **values,
    )


@get("/subscribe", media_type=MediaType.HTML, tags=["public"])
async def subscribe_form(request: Request[Any, Any, Any]) -> Template:
    """The signup form (works without JavaScript)."""
    return _form(request)


@get(
    "/embed/subscribe",
    media_type=MediaType.HTML,
    include_in_schema=False,
    # The city homepage (NEWSLETTER_EMBED_ORIGINS) may frame it; nobody else.
    opt=framable_by(lambda s: s.embed_origins),
)
async def embedded_form(request: Request[Any, Any, Any]) -> Template:
    """The form alone, for an ``<iframe>`` on the city homepage (NEWSLETTER_EMBED_ORIGINS)."""
    return _form(request, embedded=True)


@post(
    "/subscribe",
    request_max_body_size=PUBLIC_BODY_LIMIT,
    tags=["public"],
    status_code=200,
    middleware=[SignupCors],
)
async def subscribe(request: Request[Any, Any, Any]) -> Response[Any] | Template:
    """Sign up (form or JSON). The answer is identical for every known or unknown address."""
    return await _sign_up(request, embedded=False)


@post(
    "/embed/subscribe",
    request_max_body_size=PUBLIC_BODY_LIMIT,
    include_in_schema=False,
    status_code=200,
    # The city homepage (NEWSLETTER_EMBED_ORIGINS) may frame it; nobody else.
    opt=framable_by(lambda s: s.embed_origins),
)
async def embedded_subscribe(request: Request[Any, Any, Any]) -> Response[Any] | Template:
    """The embedded form's POST: the same signup, answered inside the frame."""
    return await _sign_up(request, embedded=True)


@route("/subscribe", http_method=[HttpMethod.OPTIONS], include_in_schema=False)
async def subscribe_preflight(request: Request[Any, Any, Any]) -> Response[None]:
    """CORS preflight: only NEWSLETTER_EMBED_ORIGINS may post the signup from their pages."""
    settings: Settings = request.app.state.settings
    origin = allowed_origin(request.headers.get("origin"), settings)
    wanted = (request.headers.get("access-control-request-method") or "").upper()
    if origin is None or wanted not in ("POST", ""):
        raise PermissionDeniedException("this origin may not post the signup form")
    return Response(
        None,
        status_code=204,
        headers={"Access-Control-Allow-Origin": origin, "Vary": "Origin", **PREFLIGHT_HEADERS},
    )


@get("/altcha/challenge", include_in_schema=False, cache_control=None)
async def altcha_challenge(request: Request[Any, Any, Any]) -> Response[bytes]:
    """A fresh proof-of-work challenge for the signup form's widget."""
    keys: challenge.ChallengeKeys = request.app.state.challenge_keys
    return Response(
        msgspec.json.encode(challenge.new_challenge(keys)),
        media_type=MediaType.JSON,
        headers={"Cache-Control": "no-store"},
    )


async def _sign_up(request: Request[Any, Any, Any], *, embedded: bool) -> Response[Any] | Template:
    # The busiest public route reads the pool and settings from app state:
    # Litestar resolves two or more dependencies in a fresh task group per
    # request, which costs more than this handler's own Python work.
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    fields = await form_fields(request)
    who = reader(request, fields)
    as_json = wants_json(request)
    if text_field(fields, "website"):  # the honeypot: only bots fill it in
        return _signup_accepted(request, who, as_json, embedded)
    email = text_field(fields, "email") or ""
    name = text_field(fields, "name")
    answer = text_field(fields, "altcha")
    try:
        if answer:
            await challenge.spend(db, request.app.state.challenge_keys, answer)
        await subscribers.sign_up(
            db,
            settings,
            email=email,
            name=name,
            consent=truthy(fields.get("consent")),
            evidence=evidence(request, settings, request.headers.get("referer") or "/subscribe"),
            language=who.language,
            solved_challenge=bool(answer),
            batcher=signup_batch.batcher_for(request.app.state, db),
        )
    except InvalidInput as exc:
        if as_json:
            raise
        return _form(
            request,
            422,
            error=exc.text(who.language),
            error_field=exc.field,
            email=email[:254],
            name=(name or "")[: subscribers.MAX_NAME_LENGTH],
            consent=truthy(fields.get("consent")),
            embedded=embedded,
        )
    except RateLimited as exc:
        if as_json:
            raise
        return message(
            request,
            who.gettext("잠시 후 다시 시도해 주세요"),
            exc.text(who.language),
            status=429,
            embedded=embedded,
        )
    return _signup_accepted(request, who, as_json, embedded)


def _signup_accepted(
    request: Request[Any, Any, Any], who: Reader, as_json: bool, embedded: bool
) -> Response[Any]:
    """The one answer for every accepted signup, rendered once per app and
    language: the bytes cannot differ between address states."""
    _ = who.gettext
    if as_json:
        body = msgspec.json.encode({"status": "accepted", "message": _(SIGNUP_ACCEPTED)})
        return Response(body, media_type=MediaType.JSON)
    state = request.app.state
    key = f"signup_accepted_page:{who.language}:{who.explicit}:{embedded}"
    cached: bytes | None = state.get(key)
    if cached is None:
        template = request.app.template_engine.get_template("message.html")  # type: ignore[union-attr]
        cached = template.render(
            **context(
                request,
                heading=_("확인 메일을 보냈습니다"),
                paragraphs=(_(SIGNUP_ACCEPTED), _(CHECK_SPAM)),
                action=None,
                onward=onward_links(request),
                embedded=embedded,
            )
        ).encode()
        state[key] = cached
    return Response(cached, media_type=MediaType.HTML)


def _bad_link(request: Request[Any, Any, Any], expired: bool) -> Template:
    _ = reader(request).gettext
    subscribe = {"href": reader(request).link("/subscribe"), "label": _("다시 구독 신청하기")}
    if expired:
        return message(
            request,
            _("링크의 유효 기간이 지났습니다"),
            _("확인 링크의 유효 기간이 지났습니다. 구독을 다시 신청해 주세요."),
            status=400,
            action=subscribe,
        )
    return message(
        request,
        _("올바르지 않은 링크입니다"),
        _("링크가 잘렸거나 변경된 것 같습니다. 메일의 링크를 그대로 열어 주세요."),
        status=400,
        action={"href": reader(request).link("/subscribe"), "label": _("구독 신청 페이지로")},
    )


@get("/confirm", media_type=MediaType.HTML, tags=["public"])
async def confirm_page(
    request: Request[Any, Any, Any], db: DB, tokens: Signer, settings: Config, token: LinkToken = ""
) -> Template:
    """GET never confirms: mail scanners prefetch links. The page offers the
    name typed at signup, to keep, change or drop: whoever typed the address
    need not own it, so only its owner's post decides the name the mails use.
    Without such a name and opened well after the mail was made, the page
    submits itself (a small script of ours; the button stays as the fallback).
    Opened within seconds of sending, which is when scanners look, or with a
    name to look at, it waits for the click."""
    read = _read_confirm(request, tokens, token)
    if isinstance(read, Template):
        return read
    ref, issued_at = read
    name = await subscribers.suggested_name(db, ref)
    age = (datetime.now(UTC) - subscribers.token_time(issued_at)).total_seconds()
    return _confirm_form(
        request,
        token=token,
        name=name,
        auto_submit=name is None and age >= settings.confirm_click_window_seconds,
    )


def _read_confirm(
    request: Request[Any, Any, Any], tokens: Tokens, token: str
) -> tuple[SubscriberRef, datetime] | Template:
    """What a confirm link names, or the page that says it is expired or broken."""
    try:
        return tokens.read_confirm(token)
    except ExpiredToken:
        return _bad_link(request, expired=True)
    except InvalidToken:
        return _bad_link(request, expired=False)


def _confirm_form(request: Request[Any, Any, Any], status: int = 200, **values: Any) -> Template:
    return page(request, "confirm.html", status, name_max=subscribers.MAX_NAME_LENGTH, **values)


@page_post("/confirm")
async def confirm(
    request: Request[Any, Any, Any], db: DB, settings: Config, tokens: Signer
) -> Template:
    token, fields = await posted_token(request)
    _ = reader(request, fields).gettext
    read = _read_confirm(request, tokens, token)
    if isinstance(read, Template):
        return read
    ref, issued_at = read
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
        return _bad_link(request, expired=True)
    except InvalidInput as exc:
        return _confirm_form(
            request,
            422,
            token=token,
            name=(name or "")[: subscribers.MAX_NAME_LENGTH],
            error=exc.text(reader(request).language),
            auto_submit=False,
        )
    if not active:
        return _bad_link(request, expired=False)
    newsletter = settings.city.text(reader(request).language).newsletter
    return message(
        request,
        _("구독이 완료되었습니다"),
        _("%(newsletter)s를 구독해 주셔서 감사합니다. 한 달에 두 번 시정 소식을 보내 드립니다.")
        % {"newsletter": newsletter},
        _("수신 동의 처리 결과는 이메일로도 알려 드립니다."),
    )


@get("/unsubscribe", media_type=MediaType.HTML, tags=["public"])
async def unsubscribe_page(
    request: Request[Any, Any, Any], db: DB, tokens: Signer, token: LinkToken = ""
) -> Template:
    """Shows the one-button opt-out form; GET changes nothing."""
    if token == PREVIEW_TOKEN:
        return _preview_link(request)
    try:
        ref = tokens.read_unsubscribe(token)
    except InvalidToken:
        return _bad_link(request, expired=False)
    status = await subscribers.status_of(db, ref)
    if status not in ("active", "pending"):
        return _already_out(request)
    return page(request, "unsubscribe.html", token=token)


def _preview_link(request: Request[Any, Any, Any]) -> Template:
    """The opt-out link of a preview or an editor's test copy: it names nobody."""
    _ = reader(request).gettext
    return message(
        request,
        _("미리 보기의 수신 거부 링크입니다"),
        _("이 링크는 미리 보기와 시험 발송본에만 들어가며 아무것도 바꾸지 않습니다."),
        _("주민이 받는 메일에는 받는 사람마다 자기 수신 거부 링크가 들어갑니다."),
    )


def _already_out(request: Request[Any, Any, Any]) -> Template:
    who = reader(request)
    _ = who.gettext
    return message(
        request,
        _("이미 수신 거부된 주소입니다"),
        _("이 주소로는 뉴스레터가 발송되지 않습니다. 따로 하실 일은 없습니다."),
        _("다시 받아 보고 싶으시면 새로 구독을 신청해 주세요."),
        action={"href": who.link("/subscribe"), "label": _("다시 구독 신청하기")},
    )


@page_post("/unsubscribe")
async def unsubscribe(
    request: Request[Any, Any, Any], db: DB, settings: Config, tokens: Signer
) -> Template:
    """RFC 8058 one-click (``List-Unsubscribe=One-Click``) and the page's own form."""
    token, fields = await posted_token(request)
    who = reader(request, fields)
    _ = who.gettext
    if token == PREVIEW_TOKEN:  # a test copy's one-click button: nobody to unsubscribe
        return _preview_link(request)
    try:
        ref = tokens.read_unsubscribe(token)
    except InvalidToken:
        return _bad_link(request, expired=False)
    await subscribers.unsubscribe(db, ref=ref, evidence=evidence(request, settings, "/unsubscribe"))
    newsletter = settings.city.text(who.language).newsletter
    return message(
        request,
        _("수신 거부가 완료되었습니다"),
        _("더 이상 %(newsletter)s를 보내 드리지 않습니다. 처리 결과는 이메일로 알려 드립니다.")
        % {"newsletter": newsletter},
        _("마음이 바뀌시면 언제든 다시 구독하실 수 있습니다."),
        onward=onward_links(
            request, {"href": who.link("/subscribe"), "label": _("다시 구독 신청하기")}
        ),
    )


ROUTES = [
    # First, so Litestar does not give /subscribe its automatic OPTIONS answer.
    subscribe_preflight,
    home,
    subscribe_form,
    embedded_form,
    subscribe,
    embedded_subscribe,
    altcha_challenge,
    confirm_page,
    confirm,
    unsubscribe_page,
    unsubscribe,
]
