"""The re-confirmation page linked from the biennial "keep receiving?" mail.

Like /confirm: GET only shows a button (mail scanners prefetch links), the
POST records the fresh consent and queues the result notice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import MediaType, Request, get
from litestar.response import Template

from newsletter.audience import lifecycle
from newsletter.core.settings import Settings
from newsletter.core.tokens import ExpiredToken, InvalidToken, SubscriberRef, Tokens
from newsletter.web.http.deps import DB, Config, Signer
from newsletter.web.http.forms import LinkToken, evidence, page_post, posted_token
from newsletter.web.pages.shell import message, page, reader


def _max_age(settings: Settings) -> int:
    # The link stays valid for the whole grace period (plus a day of slack);
    # after that the subscription has lapsed anyway.
    return (settings.reconfirm_grace_days + 1) * 86400


def _read(
    request: Request[Any, Any, Any], tokens: Tokens, settings: Settings, token: str
) -> SubscriberRef | Template:
    _ = reader(request).gettext
    try:
        ref, _issued = tokens.read_reconfirm(token, _max_age(settings))
    except ExpiredToken:
        return _ended(request)
    except InvalidToken:
        return message(
            request,
            _("올바르지 않은 링크입니다"),
            _("링크가 잘렸거나 변경된 것 같습니다. 메일의 링크를 그대로 열어 주세요."),
            status=400,
        )
    return ref


def _ended(request: Request[Any, Any, Any]) -> Template:
    who = reader(request)
    _ = who.gettext
    return message(
        request,
        _("확인 기한이 지났습니다"),
        _("수신 동의 확인 기한이 지나 뉴스레터 발송이 중단되었습니다. 다시 구독해 주세요."),
        status=400,
        action={"href": who.link("/subscribe"), "label": _("다시 구독 신청하기")},
    )


@get("/reconfirm", media_type=MediaType.HTML, tags=["public"])
async def reconfirm_page(
    request: Request[Any, Any, Any], tokens: Signer, settings: Config, token: LinkToken = ""
) -> Template:
    """Shows the "keep receiving" button; GET changes nothing."""
    read = _read(request, tokens, settings, token)
    if isinstance(read, Template):
        return read
    return page(request, "reconfirm.html", token=token)


@page_post("/reconfirm")
async def reconfirm(
    request: Request[Any, Any, Any], db: DB, settings: Config, tokens: Signer
) -> Template:
    token, fields = await posted_token(request)
    who = reader(request, fields)
    _ = who.gettext
    read = _read(request, tokens, settings, token)
    if isinstance(read, Template):
        return read
    kept = await lifecycle.reconfirm(
        db,
        ref=read,
        evidence=evidence(request, settings, "/reconfirm"),
        now=datetime.now(UTC),
    )
    if not kept:
        return _ended(request)
    newsletter = settings.city.text(who.language).newsletter
    return message(
        request,
        _("수신 동의가 유지되었습니다"),
        _("앞으로도 %(newsletter)s를 보내 드리겠습니다. 처리 결과는 이메일로도 알려 드립니다.")
        % {"newsletter": newsletter},
    )


ROUTES = [reconfirm_page, reconfirm]
