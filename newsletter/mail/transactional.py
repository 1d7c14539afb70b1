"""Transactional mail: confirmation requests and the result notices Korean law asks for.

Each outbox ``kind`` has one renderer turning its payload into a complete
message. Bodies come from small Jinja templates under ``templates/email/``
(``<kind>.txt`` and ``<kind>.html``, sharing ``_layout.*`` with the city's
identity), autoescaped for the HTML part. They are written in Korean and
translated by the gettext catalogs into the language the resident signed up
in (the payload's ``language``).

What goes to SMTP is :func:`outbox_mail`: the rendered message with the
outbox row's signed Message-ID and VERP envelope sender (so a bounce finds
its row by our signature, as an issue's does), ``Auto-Submitted:
auto-generated`` (RFC 3834: vacation responders stay quiet), every body
part 7-bit (quoted-printable or base64, whichever is shorter: never
``8bit``, so no downgrading hop re-encodes it), and a DKIM signature when a
key is set, over the same headers as an issue's (``core.dkim``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from functools import cache, cached_property
from typing import Any

import jinja2

from newsletter.core import i18n, paths
from newsletter.core.clock import city_zone, korean_time
from newsletter.core.dkim import Signer, signer_for
from newsletter.core.i18n import N_
from newsletter.core.settings import Settings
from newsletter.core.signing import outbox_message_id, outbox_verp_sender, unsubscribe_mailto
from newsletter.core.tokens import Tokens

TEMPLATES_DIR = paths.TEMPLATES_DIR / "email"
# Bodies are chosen and written 7-bit: the email package picks quoted-printable
# or base64 (the shorter) for UTF-8 text instead of 8bit; lines end in CRLF.
MAIL_POLICY = policy.SMTP.clone(cte_type="7bit")


class UnknownMailKind(ValueError):
    """An outbox row names a kind nobody renders (a bug, never retried)."""


@dataclass(frozen=True)
class MailContext:
    settings: Settings
    tokens: Tokens

    @cached_property
    def signer(self) -> Signer | None:
        """DKIM for transactional mail, the same key and headers as for issues."""
        return signer_for(self.settings)

    def url(self, path: str) -> str:
        return self.settings.base_url + path

    def local_time(self, moment: datetime, language: str = i18n.DEFAULT) -> str:
        """With its zone, as every time a person reads."""
        if language == "en":
            local = moment.astimezone(city_zone(self.settings))
            return f"{local:%-d %B %Y, %H:%M} ({local.tzname()})"
        return korean_time(moment, city_zone(self.settings))


def compose(
    ctx: MailContext,
    *,
    to: str,
    subject: str,
    text: str,
    html_body: str | None = None,
    headers: dict[str, str] | None = None,
    language: str = i18n.DEFAULT,
) -> EmailMessage:
    """A complete UTF-8 message, multipart/alternative when there is HTML,
    saying its language (RFC 3282) for readers and screen readers."""
    settings = ctx.settings
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = settings.from_address
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now().astimezone())
    message["Message-ID"] = make_msgid(domain=settings.from_domain)  # outbox_mail signs it
    message["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text, charset="utf-8")
    if html_body is not None:
        message.add_alternative(html_body, subtype="html", charset="utf-8")
    # After the content: set_content() clears every Content-* header.
    message["Content-Language"] = language
    return message


@cache
def _environment(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=autoescape,  # noqa: S701 - False only for the text/plain part
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )


def language_of(payload: dict[str, Any]) -> str:
    language = payload.get("language")
    return language if language in i18n.LANGUAGES else i18n.DEFAULT


def fill(
    ctx: MailContext, name: str, language: str, title: str, values: dict[str, Any]
) -> tuple[str, str]:
    """``name.txt`` and ``name.html`` in ``language``, with the city around them."""
    translations = i18n.gettext_for(language)
    settings = ctx.settings
    shared = {
        "_": translations.gettext,
        "gettext": translations.gettext,
        "ngettext": translations.ngettext,
        "lang": language,
        "title": title,
        "city": settings.city,
        "t": settings.city.text(language),
        "logo_url": settings.city.logo_url(settings.base_url),
        "sender": settings.from_address,
        **values,
    }
    text = _environment(False).get_template(f"{name}.txt").render(shared).strip() + "\n"
    return text, _environment(True).get_template(f"{name}.html").render(shared)


def _subject(ctx: MailContext, language: str, what: str) -> str:
    newsletter = ctx.settings.city.text(language).newsletter
    return f"[{newsletter}] {i18n.gettext_for(language).gettext(what)}"


def _with_language(url: str, language: str) -> str:
    """Links in a mail open the pages in the mail's language."""
    return url if language == i18n.DEFAULT else f"{url}&lang={language}"


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


@dataclass(frozen=True, slots=True)
class OutboxMail:
    """One outbox row ready for SMTP."""

    data: bytes  # the whole message: CRLF, 7-bit, signed when DKIM is on; not dot-stuffed
    sender: str  # the envelope sender: the row's signed VERP address when BOUNCE_ADDRESS is set


def outbox_mail(
    ctx: MailContext, outbox_id: int, kind: str, recipient: str, payload: dict[str, Any]
) -> OutboxMail:
    """:func:`render_outbox`, with the row's signed ids, as the bytes to send."""
    settings = ctx.settings
    message = render_outbox(ctx, kind, recipient, payload)
    message.replace_header("Message-ID", outbox_message_id(settings, outbox_id))
    data = message.as_bytes(policy=MAIL_POLICY)
    if ctx.signer is not None:
        data = ctx.signer(data) + data
    sender = outbox_verp_sender(settings, outbox_id) or parseaddr(settings.from_address)[1]
    return OutboxMail(data=data, sender=sender)


def _greeting(payload: dict[str, Any], language: str) -> str:
    _ = i18n.gettext_for(language).gettext
    name = str(payload.get("name") or "").strip()
    return _("%(name)s님, 안녕하세요.") % {"name": name} if name else _("안녕하세요.")


@renderer("confirm")
def _confirm(ctx: MailContext, recipient: str, payload: dict[str, Any]) -> EmailMessage:
    language = language_of(payload)
    _ = i18n.gettext_for(language).gettext
    token = ctx.tokens.confirm(str(payload["public_id"]))
    hours = ctx.settings.confirm_max_age_seconds // 3600
    valid_for = (
        _("%(days)d일") % {"days": hours // 24}
        if hours % 24 == 0
        else _("%(hours)d시간") % {"hours": hours}
    )
    text, html_body = fill(
        ctx,
        "confirm",
        language,
        _("%(newsletter)s 구독 확인") % {"newsletter": ctx.settings.city.text(language).newsletter},
        {
            # A name typed on the public form came from whoever typed the address:
            # the city must not carry a stranger's words into someone's inbox.
            # Invitations from the city's own list (roster import) may use it.
            "greeting": _greeting(payload if payload.get("greet_by_name") else {}, language),
            "confirm_url": _with_language(ctx.url(f"/confirm?token={token}"), language),
            "valid_for": valid_for,
        },
    )
    return compose(
        ctx,
        to=recipient,
        subject=_subject(ctx, language, N_("구독 확인을 부탁드립니다")),
        text=text,
        html_body=html_body,
        language=language,
    )


def _notice(
    ctx: MailContext,
    recipient: str,
    payload: dict[str, Any],
    *,
    subject: str,
    result: str,
    receiving: bool,
) -> EmailMessage:
    """A result notice. ``receiving``: the resident now gets the newsletter, so
    the notice offers the way out; otherwise it offers the way back in."""
    language = language_of(payload)
    _ = i18n.gettext_for(language).gettext
    at = datetime.fromisoformat(str(payload["at"]))
    public_id = str(payload["public_id"])
    text, html_body = fill(
        ctx,
        "notice",
        language,
        _("수신 동의 처리 결과 안내"),
        {
            "greeting": _greeting(payload, language),
            "date": ctx.local_time(at, language),
            "result": _(result),
            "receiving": receiving,
            "unsubscribe_url": _with_language(
                ctx.url(f"/unsubscribe?token={ctx.tokens.unsubscribe(public_id)}"), language
            ),
            "subscribe_url": ctx.url(
                "/subscribe" if language == i18n.DEFAULT else "/subscribe?lang=en"
            ),
        },
    )
    return compose(
        ctx,
        to=recipient,
        subject=_subject(ctx, language, subject),
        text=text,
        html_body=html_body,
        language=language,
    )


# The opt-in and opt-out result notices (정보통신망법 제50조 ⑧): one shape, two texts.
NOTICES = {
    "opt_in_notice": (
        N_("수신 동의 처리 결과 안내"),
        N_("뉴스레터 수신에 동의하셨습니다 (수신 동의 완료)."),
        True,
    ),
    "opt_out_notice": (
        N_("수신 거부 처리 결과 안내"),
        N_(
            "뉴스레터 수신을 거부하셨습니다 (수신 거부 완료). 더 이상 뉴스레터가 발송되지 않습니다."
        ),
        False,
    ),
}


def _notice_renderer(subject: str, result: str, receiving: bool) -> Renderer:
    def render(ctx: MailContext, recipient: str, payload: dict[str, Any]) -> EmailMessage:
        return _notice(ctx, recipient, payload, subject=subject, result=result, receiving=receiving)

    return render


for _kind, (_subject_id, _result_id, _receiving) in NOTICES.items():
    renderer(_kind)(_notice_renderer(_subject_id, _result_id, _receiving))


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


def _days(days: int, language: str) -> str:
    _ = i18n.gettext_for(language).gettext
    if days % 365 == 0:
        return _("%(years)d년") % {"years": days // 365}
    return _("%(days)d일") % {"days": days}


@renderer("reconfirm")
def _reconfirm(ctx: MailContext, recipient: str, payload: dict[str, Any]) -> EmailMessage:
    """Every reconfirm_after_days: keep receiving? (see audience.lifecycle)."""
    language = language_of(payload)
    _ = i18n.gettext_for(language).gettext
    public_id = str(payload["public_id"])
    text, html_body = fill(
        ctx,
        "reconfirm",
        language,
        _("수신 동의 재확인"),
        {
            "greeting": _greeting(payload, language),
            "consented_on": ctx.local_time(
                datetime.fromisoformat(str(payload["consented_at"])), language
            ),
            "period": _days(ctx.settings.reconfirm_after_days, language),
            "deadline": ctx.local_time(datetime.fromisoformat(str(payload["deadline"])), language),
            "reconfirm_url": _with_language(
                ctx.url(f"/reconfirm?token={ctx.tokens.reconfirm(public_id)}"), language
            ),
            "unsubscribe_url": _with_language(
                ctx.url(f"/unsubscribe?token={ctx.tokens.unsubscribe(public_id)}"), language
            ),
        },
    )
    return compose(
        ctx,
        to=recipient,
        subject=_subject(ctx, language, N_("수신 동의 여부를 다시 확인해 주세요")),
        text=text,
        html_body=html_body,
        language=language,
    )


@renderer("reconfirm_notice")
def _reconfirm_notice(ctx: MailContext, recipient: str, payload: dict[str, Any]) -> EmailMessage:
    """Result of a re-confirmation: kept (confirmed) or ended (lapsed)."""
    lapsed = payload.get("result") == "lapsed"
    if lapsed:
        result = N_(
            "기한 안에 수신 동의를 다시 확인하지 않으셔서 뉴스레터 발송이 중단되었습니다 "
            "(수신 동의 만료). 다시 받아 보시려면 새로 구독해 주세요."
        )
    else:
        result = N_("뉴스레터 수신 동의를 유지하셨습니다 (수신 동의 재확인 완료).")
    return _notice(
        ctx,
        recipient,
        payload,
        subject=N_("수신 동의 재확인 처리 결과 안내"),
        result=result,
        receiving=not lapsed,
    )
