"""Transactional mail: confirmation requests and the result notices Korean law asks for.

Each outbox ``kind`` has one renderer turning its payload into a complete
message. Bodies come from small Korean templates under ``templates/email/``
(``<kind>.txt`` and ``<kind>.html``) filled with ``string.Template`` values
that are HTML-escaped for the HTML part.
"""

from __future__ import annotations

import html
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cache
from typing import Any

from newsletter.core import paths
from newsletter.core.clock import city_zone, korean_time
from newsletter.core.settings import Settings
from newsletter.core.signing import unsubscribe_mailto
from newsletter.core.tokens import Tokens

TEMPLATES_DIR = paths.TEMPLATES_DIR / "email"


class UnknownMailKind(ValueError):
    """An outbox row names a kind nobody renders (a bug, never retried)."""


@dataclass(frozen=True)
class MailContext:
    settings: Settings
    tokens: Tokens

    def url(self, path: str) -> str:
        return self.settings.base_url + path

    def local_time(self, moment: datetime) -> str:
        return korean_time(moment, city_zone(self.settings))


def compose(
    ctx: MailContext,
    *,
    to: str,
    subject: str,
    text: str,
    html_body: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A complete UTF-8 message, multipart/alternative when there is HTML."""
    settings = ctx.settings
    message = EmailMessage()
    message["From"] = settings.from_address
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now().astimezone())
    message["Message-ID"] = make_msgid(domain=settings.from_domain)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text, charset="utf-8")
    if html_body is not None:
        message.add_alternative(html_body, subtype="html", charset="utf-8")
    return message


@cache
def _template(name: str) -> string.Template:
    return string.Template((TEMPLATES_DIR / name).read_text(encoding="utf-8"))


def fill(name: str, values: dict[str, str]) -> tuple[str, str]:
    """Fill ``name.txt`` and ``name.html`` with ``values`` (escaped for HTML)."""
    text = _template(f"{name}.txt").substitute(values)
    escaped = {key: html.escape(value) for key, value in values.items()}
    return text, _template(f"{name}.html").substitute(escaped)


Renderer = Callable[[MailContext, str, dict[str, Any]], EmailMessage]
RENDERERS: dict[str, Renderer] = {}


def renderer(kind: str) -> Callable[[Renderer], Renderer]:
    def register(function: Renderer) -> Renderer:
        RENDERERS[kind] = function
        return function

    return register


def render_outbox(
    ctx: MailContext, kind: str, recipient: str, payload: dict[str, Any]
) -> EmailMessage:
    try:
        function = RENDERERS[kind]
    except KeyError:
        raise UnknownMailKind(kind) from None
    return function(ctx, recipient, payload)


def _greeting(payload: dict[str, Any]) -> str:
    name = str(payload.get("name") or "").strip()
    return f"{name}님, 안녕하세요." if name else "안녕하세요."


@renderer("confirm")
def _confirm(ctx: MailContext, recipient: str, payload: dict[str, Any]) -> EmailMessage:
    token = ctx.tokens.confirm(str(payload["public_id"]))
    hours = ctx.settings.confirm_max_age_seconds // 3600
    text, html_body = fill(
        "confirm",
        {
            # A name typed on the public form came from whoever typed the address:
            # the city must not carry a stranger's words into someone's inbox.
            # Invitations from the city's own list (roster import) may use it.
            "greeting": _greeting(payload) if payload.get("greet_by_name") else "안녕하세요.",
            "confirm_url": ctx.url(f"/confirm?token={token}"),
            "valid_for": f"{hours // 24}일" if hours % 24 == 0 else f"{hours}시간",
        },
    )
    return compose(
        ctx,
        to=recipient,
        subject="[김포시 뉴스레터] 구독 확인을 부탁드립니다",
        text=text,
        html_body=html_body,
    )


def _notice(
    ctx: MailContext, recipient: str, payload: dict[str, Any], *, subject: str, result: str
) -> EmailMessage:
    at = datetime.fromisoformat(str(payload["at"]))
    text, html_body = fill(
        "notice",
        {
            "greeting": _greeting(payload),
            "sender": ctx.settings.from_address,
            "date": ctx.local_time(at),
            "result": result,
            "unsubscribe_url": ctx.url(
                f"/unsubscribe?token={ctx.tokens.unsubscribe(str(payload['public_id']))}"
            ),
            "subscribe_url": ctx.url("/subscribe"),
        },
    )
    return compose(ctx, to=recipient, subject=subject, text=text, html_body=html_body)


@renderer("opt_in_notice")
def _opt_in(ctx: MailContext, recipient: str, payload: dict[str, Any]) -> EmailMessage:
    return _notice(
        ctx,
        recipient,
        payload,
        subject="[김포시 뉴스레터] 수신 동의 처리 결과 안내",
        result="뉴스레터 수신에 동의하셨습니다 (수신 동의 완료).",
    )


@renderer("opt_out_notice")
def _opt_out(ctx: MailContext, recipient: str, payload: dict[str, Any]) -> EmailMessage:
    return _notice(
        ctx,
        recipient,
        payload,
        subject="[김포시 뉴스레터] 수신 거부 처리 결과 안내",
        result=(
            "뉴스레터 수신을 거부하셨습니다 (수신 거부 완료). 더 이상 뉴스레터가 발송되지 않습니다."
        ),
    )


@renderer("test_issue")
def _test_issue(ctx: MailContext, recipient: str, payload: dict[str, Any]) -> EmailMessage:
    """An editor's test copy of an issue: already rendered and personalised by
    newsletter.issues.test_send, marked "[TEST]" so nobody mistakes it for the real send."""
    settings = ctx.settings
    # List-* headers stay ASCII (no RFC 2047 encoded-words): only the <list-id> part.
    list_id = settings.list_id.rpartition("<")[2].rstrip(">").strip() or settings.from_domain
    return compose(
        ctx,
        to=recipient,
        subject="[TEST] " + str(payload["subject"]),
        text=str(payload["text"]),
        html_body=str(payload["html"]),
        headers={
            "List-Id": f"<{list_id}>",
            "List-Unsubscribe": (
                f"<{ctx.url('/unsubscribe?token=preview')}>, <{unsubscribe_mailto(settings, None)}>"
            ),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


def _days(days: int) -> str:
    return f"{days // 365}년" if days % 365 == 0 else f"{days}일"


@renderer("reconfirm")
def _reconfirm(ctx: MailContext, recipient: str, payload: dict[str, Any]) -> EmailMessage:
    """Every reconfirm_after_days: keep receiving? (see newsletter.lifecycle)."""
    public_id = str(payload["public_id"])
    text, html_body = fill(
        "reconfirm",
        {
            "greeting": _greeting(payload),
            "consented_on": ctx.local_time(datetime.fromisoformat(str(payload["consented_at"]))),
            "period": _days(ctx.settings.reconfirm_after_days),
            "deadline": ctx.local_time(datetime.fromisoformat(str(payload["deadline"]))),
            "reconfirm_url": ctx.url(f"/reconfirm?token={ctx.tokens.reconfirm(public_id)}"),
            "unsubscribe_url": ctx.url(f"/unsubscribe?token={ctx.tokens.unsubscribe(public_id)}"),
            "sender": ctx.settings.from_address,
        },
    )
    return compose(
        ctx,
        to=recipient,
        subject="[김포시 뉴스레터] 수신 동의 여부를 다시 확인해 주세요",
        text=text,
        html_body=html_body,
    )


@renderer("reconfirm_notice")
def _reconfirm_notice(ctx: MailContext, recipient: str, payload: dict[str, Any]) -> EmailMessage:
    """Result of a re-confirmation: kept (confirmed) or ended (lapsed)."""
    if payload.get("result") == "lapsed":
        result = (
            "기한 안에 수신 동의를 다시 확인하지 않으셔서 뉴스레터 발송이 중단되었습니다 "
            "(수신 동의 만료). 다시 받아 보시려면 새로 구독해 주세요."
        )
    else:
        result = "뉴스레터 수신 동의를 유지하셨습니다 (수신 동의 재확인 완료)."
    return _notice(
        ctx,
        recipient,
        payload,
        subject="[김포시 뉴스레터] 수신 동의 재확인 처리 결과 안내",
        result=result,
    )
