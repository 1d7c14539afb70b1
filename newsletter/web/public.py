"""Public pages for residents: subscribe, confirm, unsubscribe (Korean, no JavaScript)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.exceptions import ClientException
from litestar.params import FromQuery
from litestar.response import Template

from newsletter import subscribers
from newsletter.db import Database
from newsletter.errors import InvalidInput, RateLimited
from newsletter.settings import Settings
from newsletter.subscribers import Evidence, LinkNoLongerValid
from newsletter.tokens import ExpiredToken, InvalidToken
from newsletter.web.deps import DB, Config, Signer

PUBLIC_BODY_LIMIT = 16 * 1024  # a signup form is a few hundred bytes
SIGNUP_ACCEPTED = "구독 신청을 받았습니다. 받은편지함에서 확인 메일을 열어 구독을 완료해 주세요."
ACCEPTED_JSON = msgspec.json.encode({"status": "accepted", "message": SIGNUP_ACCEPTED})
TRUE_VALUES = {"1", "true", "on", "yes", "y"}


def _page(template: str, status: int = 200, **context: Any) -> Template:
    return Template(template_name=template, context=context, status_code=status)


def _message(
    heading: str, *paragraphs: str, status: int = 200, link: dict[str, str] | None = None
) -> Template:
    return _page("message.html", status, heading=heading, paragraphs=paragraphs, link=link)


def _evidence(request: Request[Any, Any, Any], settings: Settings, source: str) -> Evidence:
    user_agent = request.headers.get("user-agent")
    return Evidence(
        ip=request.client.host if request.client else None,
        user_agent=user_agent[:500] if user_agent else None,
        source=source[:500],
        consent_version=settings.consent_version,
    )


def _wants_json(request: Request[Any, Any, Any]) -> bool:
    return (
        request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"
    )


async def _fields(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Form (urlencoded or multipart) or JSON body as a flat dict."""
    if _wants_json(request):
        body = await request.body()
        try:
            data = msgspec.json.decode(body) if body else {}
        except msgspec.DecodeError:
            raise ClientException("request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ClientException("JSON body must be an object")
        return data
    form: FormMultiDict = await request.form()
    return {key: form.get(key) for key in form}


def _text(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    raise InvalidInput(f"'{key}' must be text", field=key)


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str | int) and str(value).strip().lower() in TRUE_VALUES


@get("/subscribe", media_type=MediaType.HTML, include_in_schema=False)
async def subscribe_form(settings: Config) -> Template:
    return _page(
        "subscribe.html",
        consent_version=settings.consent_version,
        retention_days=settings.retention_days,
    )


@post("/subscribe", request_max_body_size=PUBLIC_BODY_LIMIT, tags=["public"], status_code=200)
async def subscribe(request: Request[Any, Any, Any]) -> Response[Any] | Template:
    """Sign up (form or JSON). The answer is identical for every known or unknown address."""
    # The busiest public route reads the pool and settings from app state:
    # Litestar resolves two or more dependencies in a fresh task group per
    # request, which costs more than this handler's own Python work.
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    fields = await _fields(request)
    as_json = _wants_json(request)
    if _text(fields, "website"):  # the honeypot: only bots fill it in
        return _signup_accepted(request, as_json)
    email = _text(fields, "email") or ""
    name = _text(fields, "name")
    try:
        await subscribers.sign_up(
            db,
            settings,
            email=email,
            name=name,
            consent=_truthy(fields.get("consent")),
            evidence=_evidence(request, settings, request.headers.get("referer") or "/subscribe"),
        )
    except InvalidInput as exc:
        if as_json:
            raise
        return _page(
            "subscribe.html",
            422,
            error=exc.detail,
            email=email[:254],
            name=(name or "")[:100],
            consent_version=settings.consent_version,
            retention_days=settings.retention_days,
        )
    except RateLimited as exc:
        if as_json:
            raise
        return _message("잠시 후 다시 시도해 주세요", exc.detail, status=429)
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
        return _message(
            "링크의 유효 기간이 지났습니다",
            "확인 링크의 유효 기간이 지났습니다. 구독을 다시 신청해 주세요.",
            status=400,
            link={"href": "/subscribe", "label": "다시 구독 신청하기"},
        )
    return _message(
        "올바르지 않은 링크입니다",
        "링크가 잘렸거나 변경된 것 같습니다. 메일의 링크를 그대로 열어 주세요.",
        status=400,
        link={"href": "/subscribe", "label": "구독 신청 페이지로"},
    )


@get("/confirm", media_type=MediaType.HTML, include_in_schema=False)
async def confirm_page(tokens: Signer, token: FromQuery[str] = "") -> Template:
    """Only shows a button: mail scanners prefetch links, so GET changes nothing."""
    try:
        tokens.read_confirm(token)
    except ExpiredToken:
        return _bad_link(expired=True)
    except InvalidToken:
        return _bad_link(expired=False)
    return _page("confirm.html", token=token)


@post(
    "/confirm",
    request_max_body_size=PUBLIC_BODY_LIMIT,
    media_type=MediaType.HTML,
    include_in_schema=False,
    status_code=200,
)
async def confirm(
    request: Request[Any, Any, Any], db: DB, settings: Config, tokens: Signer
) -> Template:
    fields = await _fields(request)
    token = _text(fields, "token") or request.query_params.get("token") or ""
    try:
        subscriber_id, issued_at = tokens.read_confirm(token)
    except ExpiredToken:
        return _bad_link(expired=True)
    except InvalidToken:
        return _bad_link(expired=False)
    try:
        active = await subscribers.confirm(
            db,
            subscriber_id=subscriber_id,
            issued_at=subscribers.token_time(issued_at),
            evidence=_evidence(request, settings, "/confirm"),
        )
    except LinkNoLongerValid:
        return _bad_link(expired=True)
    if not active:
        return _bad_link(expired=False)
    return _message(
        "구독이 완료되었습니다",
        "김포시 뉴스레터를 구독해 주셔서 감사합니다. 한 달에 두 번 시정 소식을 보내 드립니다.",
        "수신 동의 처리 결과는 이메일로도 알려 드립니다.",
    )


@get("/unsubscribe", media_type=MediaType.HTML, include_in_schema=False)
async def unsubscribe_page(tokens: Signer, token: FromQuery[str] = "") -> Template:
    try:
        tokens.read_unsubscribe(token)
    except InvalidToken:
        return _bad_link(expired=False)
    return _page("unsubscribe.html", token=token)


@post(
    "/unsubscribe",
    request_max_body_size=PUBLIC_BODY_LIMIT,
    media_type=MediaType.HTML,
    include_in_schema=False,
    status_code=200,
)
async def unsubscribe(
    request: Request[Any, Any, Any], db: DB, settings: Config, tokens: Signer
) -> Template:
    """RFC 8058 one-click (``List-Unsubscribe=One-Click``) and the page's own form."""
    fields = await _fields(request)
    token = request.query_params.get("token") or _text(fields, "token") or ""
    try:
        subscriber_id = tokens.read_unsubscribe(token)
    except InvalidToken:
        return _bad_link(expired=False)
    await subscribers.unsubscribe(
        db, subscriber_id=subscriber_id, evidence=_evidence(request, settings, "/unsubscribe")
    )
    return _message(
        "수신 거부가 완료되었습니다",
        "더 이상 김포시 뉴스레터를 보내 드리지 않습니다. 처리 결과는 이메일로 알려 드립니다.",
        link={"href": "/subscribe", "label": "다시 구독하기"},
    )


ROUTES = [subscribe_form, subscribe, confirm_page, confirm, unsubscribe_page, unsubscribe]
