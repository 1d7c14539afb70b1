"""Issue rendering: MJML -> responsive HTML plus a plain-text part, once per issue.

MJML runs once per issue. Per-recipient values (unsubscribe link, name) are
left in the output as ASCII markers (``%%UNSUBSCRIBE_URL%%``,
``%%RECIPIENT_NAME%%``) and filled in later by plain string substitution, so
mailing 20,000 residents costs 20,000 ``str.replace`` calls, not 20,000 MJML
runs. The markers are pure ASCII so they survive any transfer-encoding choice
made on the whole message, and the name marker sits in HTML text context, so
the value that replaces it must be HTML-escaped (``personalise`` does that).

Every editor field is HTML-escaped by the template's autoescaping; only a news
item's ``body`` goes in raw, and it was sanitised with nh3 when it was saved.

A news item's link reaches the templates already replaced by its click
redirect (``/c/<issue>/<item>/<sig>`` on BASE_URL) when the issue and the item
have ids: one address for every recipient, so counting a click names nobody.
Content without ids (tests, benchmarks) keeps the plain link.
Markers exist only where the template writes them. Editors and feeds are not
the template: a ``%%UNSUBSCRIBE_URL%%`` typed into a title, or hidden in a
feed's image URL, must stay those characters and never become someone's
unsubscribe token or name. So every value the template prints passes
:func:`_defuse` (the environment's ``finalize``), which breaks each ``%%``
in it: ``%&#37;`` in HTML (a browser shows ``%%`` and follows the same URL),
``%`` + WORD JOINER + ``%`` in text (invisible). No marker can come out of content.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import jinja2
import mjml
from markupsafe import Markup, escape

from newsletter.core import paths
from newsletter.core.clock import city_zone, korean_date
from newsletter.core.settings import Settings
from newsletter.core.signing import click_path
from newsletter.core.text import without_unfit

TEMPLATES_DIR = paths.TEMPLATES_DIR / "email"

UNSUBSCRIBE_URL = "%%UNSUBSCRIBE_URL%%"
RECIPIENT_NAME = "%%RECIPIENT_NAME%%"
# What the greeting says when we do not know the resident's name.
DEFAULT_NAME = "구독자"
# The line above the intro, a field of each issue (may be emptied). A greeting
# that starts with "구독자님" is addressed by name where the resident gave one.
DEFAULT_GREETING = f"{DEFAULT_NAME}님, 안녕하세요."
ADVERTISEMENT_PREFIX = "(광고) "  # 정보통신망법 제50조: advertising mail says so up front

# Inboxes show the preheader and then as much of the body as fits; these
# invisible characters fill that space so the preview ends with the preheader.
PREHEADER_PADDING = "&#847;&zwnj;&nbsp;" * 60
# Gmail clips a message's HTML beyond 102 KB, hiding the unsubscribe link.
GMAIL_CLIP_BYTES = 102 * 1024

_BLOCK_END = re.compile(r"(?i)<br\s*/?>|</(p|div|li|h[1-6]|blockquote|tr|ul|ol)>")
_TAG = re.compile(r"<[^>]*>")
_BLANKS = re.compile(r"\n{3,}")
_SPACES = re.compile(r"[ \t\r\f\v]+")


@dataclass(frozen=True)
class IssueContent:
    title: str
    intro: str = ""
    number: int | None = None  # archive number; None until sending starts
    is_advertisement: bool = False
    id: int | None = None  # with ids, item links go through the click redirect
    greeting: str = DEFAULT_GREETING


@dataclass(frozen=True)
class NewsItemContent:
    title: str
    summary: str = ""
    body: str = ""  # sanitised HTML (see newsletter.news.sanitise_body)
    link: str | None = None
    image_url: str | None = None
    category: str | None = None
    published_at: datetime | None = None
    id: int | None = None
    image_alt: str | None = None  # required with an image (web/API/console alike)
    image_caption: str | None = None


@dataclass(frozen=True)
class RenderedIssue:
    """One issue as every recipient gets it, markers still in place, and what
    it says as data (``web_content``: title, intro, items) for the archive page."""

    subject: str
    html: str
    text: str
    web_content: dict[str, Any] | None = None


class RenderError(RuntimeError):
    """The MJML template itself is broken (a bug, not bad editor input)."""


MARKER_EDGE = "%%"
_DEFUSED_HTML = Markup("%&#37;")
_DEFUSED_TEXT = "%\u2060%"  # U+2060 WORD JOINER: nothing visible between the two


def _defuse_html(value: object) -> Markup:
    """A printed value, escaped as autoescaping would, with no ``%%`` left in it."""
    escaped = value if isinstance(value, Markup) else escape("" if value is None else value)
    # Safe: ``escaped`` is escaped (or was Markup already); only "%%" changes.
    return Markup(str(escaped).replace(MARKER_EDGE, str(_DEFUSED_HTML)))  # noqa: S704


def _defuse_text(value: object) -> str:
    text = "" if value is None else str(value)
    while MARKER_EDGE in text:  # "%%%" holds two
        text = text.replace(MARKER_EDGE, _DEFUSED_TEXT)
    return text


@cache
def _environment(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=autoescape,  # noqa: S701 - False only for the text/plain part
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        finalize=_defuse_html if autoescape else _defuse_text,
    )


def subject_for(issue: IssueContent) -> str:
    # A header must never carry a line break, whatever the editor typed.
    subject = " ".join(issue.title.split())
    return ADVERTISEMENT_PREFIX + subject if issue.is_advertisement else subject


def web_url(settings: Settings, number: int | None) -> str:
    """The "view in browser" address: the archive page of this issue."""
    return f"{settings.base_url}/archive/{number}" if number else f"{settings.base_url}/archive"


def click_url(settings: Settings, issue_id: int, news_item_id: int) -> str:
    """The counted redirect to a news item's link, the same for every recipient."""
    return settings.base_url + click_path(settings.secret_key, issue_id, news_item_id)


def _link(issue: IssueContent, item: NewsItemContent, settings: Settings) -> str | None:
    if not item.link or issue.id is None or item.id is None:
        return item.link
    return click_url(settings, issue.id, item.id)


def html_to_text(fragment: str) -> str:
    """Readable text from sanitised body HTML (block ends become line breaks)."""
    text = _BLOCK_END.sub("\n", fragment)
    text = html.unescape(_TAG.sub("", text))
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def greeting_parts(greeting: str) -> tuple[bool, str]:
    """``(named, text)``: whether the greeting opens with the resident's name
    (the template writes the name marker there, never the editor), and the
    text that follows it (or the whole greeting)."""
    text = " ".join(greeting.split())
    if text.startswith(DEFAULT_NAME + "님"):
        return True, text[len(DEFAULT_NAME) :]
    return False, text


def _date(moment: datetime | None, settings: Settings) -> str:
    return korean_date(moment, city_zone(settings)) if moment is not None else ""


def _city(settings: Settings) -> dict[str, str]:
    """The sender's identity in the issue: in the editors' language (Korean), as
    the issue itself is."""
    city, text = settings.city, settings.city.ko
    return {
        "name": text.name,
        "newsletter": text.newsletter,
        "department": text.department,
        "address": text.address,
        "logo_alt": text.logo_alt,
        "collection_refusal": text.collection_refusal,
        "logo_url": city.logo_url(settings.base_url),
        "homepage": city.homepage,
        "phone": city.phone,
        "privacy_url": city.privacy_url,
    }


# MJML puts word-break:break-word on every text cell, which splits Korean
# words anywhere ("않습니|다"). keep-all breaks between words only; with
# overflow-wrap a long URL may still wrap instead of widening the mail.
_MJML_WORD_BREAK = "word-break:break-word;"
_KOREAN_WORD_BREAK = "word-break:keep-all;overflow-wrap:anywhere;"


def render_issue(
    issue: IssueContent, items: Sequence[NewsItemContent], settings: Settings
) -> RenderedIssue:
    """Render ``issue`` with its ``items`` (in order) to subject, HTML and text."""
    subject = subject_for(issue)
    link = web_url(settings, issue.number)
    sender = settings.from_address
    intro_paragraphs = [p.strip() for p in re.split(r"\n\s*\n", issue.intro) if p.strip()]
    city = _city(settings)
    masthead = city["newsletter"] + (f" 제{issue.number}호" if issue.number else "")
    html_items = [
        {
            "title": item.title,
            "summary": item.summary,
            "body": item.body,
            "link": _link(issue, item, settings),
            "image_url": item.image_url,
            "image_alt": item.image_alt or "",
            "image_caption": item.image_caption or "",
            "category": item.category,
            "date": _date(item.published_at, settings),
        }
        for item in items
    ]
    source = (
        _environment(True)
        .get_template("issue.mjml")
        .render(
            subject=subject,
            preview_text=(intro_paragraphs[0] if intro_paragraphs else issue.title)[:120],
            title=issue.title,
            number=issue.number,
            intro_paragraphs=intro_paragraphs,
            greeting=greeting_parts(issue.greeting),
            items=html_items,
            web_url=link,
            sender=sender,
            city=city,
            preheader_padding=PREHEADER_PADDING,
        )
    )
    try:
        # Text stored before inputs refused non-characters may still hold
        # some; the XML parser would refuse the whole issue for one of them.
        rendered_html = mjml.mjml2html(without_unfit(source), fonts={})
    except ValueError as exc:  # mjml-python's answer to malformed MJML
        raise RenderError(f"issue template does not render: {exc}") from exc
    rendered_html = rendered_html.replace(_MJML_WORD_BREAK, _KOREAN_WORD_BREAK)
    text_items = [{**item, "body": html_to_text(item["body"] or "")} for item in html_items]
    text = (
        _environment(False)
        .get_template("issue.txt")
        .render(
            masthead=masthead,
            title=issue.title,
            greeting=greeting_parts(issue.greeting),
            intro="\n\n".join(intro_paragraphs),
            items=text_items,
            web_url=link,
            sender=sender,
            city=city,
        )
    )
    return RenderedIssue(
        subject=subject,
        html=rendered_html,
        text=_BLANKS.sub("\n\n", text).strip() + "\n",
        # The archive is a web page, not a mail: its readers follow each item's
        # own link; only the mail's links go through the click counter.
        web_content={
            "title": issue.title,
            "intro_paragraphs": intro_paragraphs,
            "items": [
                {**shown, "link": item.link} for shown, item in zip(html_items, items, strict=True)
            ],
        },
    )


def personalise(
    rendered: RenderedIssue, *, unsubscribe_url: str, name: str | None
) -> tuple[str, str]:
    """``(html, text)`` for one recipient (preview, test send, archive).

    Bulk delivery does the same substitution on pre-encoded bytes; this is the
    readable reference version.
    """
    shown = (name or "").strip() or DEFAULT_NAME
    html_part = rendered.html.replace(UNSUBSCRIBE_URL, html.escape(unsubscribe_url)).replace(
        RECIPIENT_NAME, html.escape(shown)
    )
    text_part = rendered.text.replace(UNSUBSCRIBE_URL, unsubscribe_url).replace(
        RECIPIENT_NAME, shown
    )
    return html_part, text_part


# The footer's unsubscribe link exactly as the template wrote it before the
# archive had pages of its own; issues sent then are shown from their mail.
_UNSUBSCRIBE_LINK = f'<a href="{UNSUBSCRIBE_URL}">수신 거부</a>'


def for_web(rendered_html: str, settings: Settings) -> str:
    """An old issue's mail as the archive's copy: no name, no unsubscribe token."""
    subscribe = f"{settings.base_url}/subscribe"
    page = rendered_html.replace(
        _UNSUBSCRIBE_LINK, f'<a href="{html.escape(subscribe)}">뉴스레터 구독하기</a>'
    )
    page = page.replace(UNSUBSCRIBE_URL, html.escape(subscribe))
    return page.replace(RECIPIENT_NAME, DEFAULT_NAME)
