"""The pre-send check (발송 전 점검): what would go wrong if this issue went
out now, found before 20,000 copies do.

:func:`run` renders the issue as residents would get it and reports a list
of :class:`Finding` -- each with a stable ``id``, a ``status`` (``ok``,
``warning``, ``problem``), a sentence (a catalog message id with its values:
Korean for people, English through the catalog for the API) and where it
applies (the item, link or image). It never changes the issue.

What is checked:

- **links** and **images** answer (``linkcheck``: HEAD then GET, redirects,
  SSRF rules -- an internal address is a problem, never fetched); images are
  images, their weight (a warning over :data:`IMAGES_HEAVY_BYTES` in all),
  their size, and their alternative text;
- **size**: the HTML as a resident gets it, personalised with the longest
  name on the list, against Gmail's clipping limit (problem above, warning
  within 10 % of it);
- **reading**: ``lang``, a title, headings in order, no empty link, no link
  that says only "여기"/"클릭" or a bare address, no image without ``alt``,
  and text contrast of at least 4.5:1 (3:1 for large text), WCAG 2.2 AA --
  all on the rendered mail;
- **subject** and **preview text** (preheader), and the ``(광고)`` prefix
  exactly when the issue is marked as advertising;
- **recipients**: how many will get it (a problem at none), how many will
  not (pending, suppressed);
- **sending domain**: SPF, DMARC, the published DKIM key (``sending_domain``).

Results are kept per content version (a hash of what the mail is made of):
the same content answers at once from the kept result (:func:`kept`); a
change to the issue or one of its items gives another version, and the kept
result is then stale. ``schedule`` and ``send-now`` pass :func:`require_clear`
first: a problem of the check for the current content (run then if no kept
result matches) refuses them, unless the person sends despite it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from newsletter.core import i18n
from newsletter.core.db import QUERIES, Connection, Database, Record
from newsletter.core.errors import Named, NotFound, OpenProblems
from newsletter.core.i18n import N_
from newsletter.core.records import check_id
from newsletter.core.settings import Settings
from newsletter.editorial import issues as issues_domain
from newsletter.editorial import linkcheck, sending_domain, transitions
from newsletter.editorial.feeds import FeedFetchPolicy
from newsletter.editorial.rendering import (
    ADVERTISEMENT_PREFIX,
    GMAIL_CLIP_BYTES,
    NewsItemContent,
    RenderedIssue,
    personalise,
)

OK, WARNING, PROBLEM = "ok", "warning", "problem"
SUBJECT_PHONE_CHARACTERS = 40  # what a phone's inbox shows of a Korean subject
IMAGES_HEAVY_BYTES = 1024 * 1024
TOKEN_LENGTH = 75  # the longest unsubscribe token a mail carries (SPEC: under ~75)
VAGUE_LINK_TEXTS = frozenset(
    {"여기", "여기를", "여기를 클릭", "클릭", "클릭하세요", "바로가기", "링크",
     "here", "click", "click here", "link", "more"}
)  # fmt: skip


@dataclass(frozen=True)
class Finding:
    id: str
    status: str
    message: str  # a catalog message id (Korean); values below
    values: Mapping[str, str | int | float] = field(default_factory=dict)
    where: dict[str, Any] | None = None

    def detail(self, language: str) -> str:
        said = i18n.gettext_for(language).gettext(self.message)
        return said % self.values if self.values else said


@dataclass(frozen=True)
class Report:
    issue_id: int
    content_version: str
    checked_at: datetime
    findings: list[Finding]
    stale: bool = False

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.status == PROBLEM]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.status == WARNING]


# --- what the mail is made of -------------------------------------------------


@dataclass(frozen=True)
class Material:
    row: Record
    items: list[NewsItemContent]
    rendered: RenderedIssue
    version: str


def content_version(row: Record, items: Sequence[NewsItemContent], settings: Settings) -> str:
    """A hash of everything the mail is made of; any edit gives another one."""
    made_of = {
        "issue": [
            *(row["title"], row["intro"], row["is_advertisement"], list(row["news_item_ids"])),
            row["greeting"],
        ],
        "items": [
            [
                *(i.id, i.title, i.summary, i.body, i.link, i.image_url, i.category),
                *(str(i.published_at), i.image_alt, i.image_caption),
            ]
            for i in items
        ],
        "sender": [settings.from_address, settings.bounce_address, settings.dkim_selector],
    }
    encoded = json.dumps(made_of, ensure_ascii=False, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


async def _material(conn: Connection, issue_id: int, settings: Settings) -> Material:
    row = await conn.fetchrow(QUERIES.get_issue, issue_id)
    if row is None:
        raise NotFound(issues_domain.NO_ISSUE, id=issue_id)
    items = await issues_domain.items_of(conn, row)
    rendered = await issues_domain.snapshot_or_render(conn, row, settings)
    return Material(row, items, rendered, content_version(row, items, settings))


# --- kept results ---------------------------------------------------------------


def _findings_of(stored: Any) -> list[Finding]:
    data = json.loads(stored) if isinstance(stored, str) else stored
    return [Finding(**entry) for entry in data]


async def kept(db: Database, settings: Settings, issue_id: int) -> Report | None:
    """The last result, marked stale when the content changed since; None if never run."""
    check_id(issue_id, "issue")
    async with db.pool.acquire() as conn:
        material = await _material(conn, issue_id, settings)
        row = await conn.fetchrow(QUERIES.kept_issue_checks, issue_id)
    if row is None:
        return None
    return Report(
        issue_id,
        row["content_version"],
        row["checked_at"],
        _findings_of(row["findings"]),
        stale=row["content_version"] != material.version,
    )


async def open_problems(
    db: Database, settings: Settings, issue_id: int, policy: FeedFetchPolicy
) -> list[Finding]:
    """Problems of the check for the issue's current content: the kept result
    when the content is unchanged (at once), otherwise the check run now."""
    return (await run(db, settings, issue_id, policy)).problems


async def require_clear(
    db: Database,
    settings: Settings,
    issue_id: int,
    action: str,
    policy: FeedFetchPolicy,
    *,
    despite_problems: bool,
) -> None:
    """The one gate before ``schedule`` and ``send-now`` (API and console):
    :class:`OpenProblems` naming each problem of the check, unless the person
    says they send despite them. Warnings never block. An action the issue's
    state refuses is not checked: the action's own 409 says why."""
    if despite_problems:
        return
    row = await issues_domain.get(db, issue_id)
    if transitions.refusal(action, row) is not None:
        return
    problems = await open_problems(db, settings, issue_id, policy)
    if problems:
        raise OpenProblems(
            N_(
                "발송 전 점검에서 문제 %(count)s건이 나왔습니다: %(problems)s 고친 뒤 보내거나, "
                "문제를 알고도 보낸다고 밝혀 주세요."
            ),
            count=len(problems),
            problems=i18n.Term(
                ko=" ".join(_named(f, "ko") for f in problems),
                en=" ".join(_named(f, "en") for f in problems),
            ),
            named=[
                Named(f.id, i18n.Term(f.detail("ko"), f.detail("en")), f.where) for f in problems
            ],
        )


def _named(finding: Finding, language: str) -> str:
    """A problem's sentence with the item, link or image it is about."""
    where = finding.where or {}
    said = finding.detail(language)
    place = where.get("news_item_title") or where.get("url")
    return f"{said} ({place})" if place else said


async def run(
    db: Database,
    settings: Settings,
    issue_id: int,
    policy: FeedFetchPolicy,
    *,
    again: bool = False,
) -> Report:
    """Check the issue, or answer from the kept result of the same content."""
    check_id(issue_id, "issue")
    async with db.pool.acquire() as conn:
        material = await _material(conn, issue_id, settings)
        before = await conn.fetchrow(QUERIES.kept_issue_checks, issue_id)
        counts = await conn.fetchrow(QUERIES.recipient_counts_for_checks)
        assert counts is not None  # an aggregate always answers one row
        longest_name = int(await conn.fetchval(QUERIES.longest_recipient_name_bytes))
    if before is not None and before["content_version"] == material.version and not again:
        return Report(
            issue_id, material.version, before["checked_at"], _findings_of(before["findings"])
        )
    findings = [
        *_items_check(material),
        *await _links_and_images(material, settings, policy),
        *_size(material, settings, longest_name),
        *_reading(material.rendered.html),
        *_subject_and_preview(material),
        *_recipients(counts),
        *await _sending_domain(settings),
    ]
    stored = json.dumps([asdict(f) for f in findings], ensure_ascii=False)
    checked_at = await db.fetchval("keep_issue_checks", issue_id, material.version, stored)
    return Report(issue_id, material.version, checked_at, findings)


# --- the checks ---------------------------------------------------------------------


def _items_check(material: Material) -> list[Finding]:
    if not material.items:
        return [Finding("items", PROBLEM, N_("소식이 하나도 없습니다. 보낼 소식을 추가해 주세요."))]
    return [
        Finding("items", OK, N_("소식 %(count)s건이 실립니다."), {"count": len(material.items)})
    ]


class _Links(HTMLParser):
    """Links and images in a body: (href, text) and (src, alt or None)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self.images: list[tuple[str, str | None]] = []
        self._open: list[list[str]] = []  # [href, text so far]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self._open.append([values.get("href") or "", ""])
        elif tag == "img":
            self.images.append((values.get("src") or "", values.get("alt")))
            if self._open:
                self._open[-1][1] += values.get("alt") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open:
            href, text = self._open.pop()
            self.links.append((href, " ".join(text.split())))

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][1] += data


def _parsed(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser


async def _links_and_images(
    material: Material, settings: Settings, policy: FeedFetchPolicy
) -> list[Finding]:
    links: list[tuple[str, dict[str, Any]]] = []
    images: list[tuple[str, str | None, dict[str, Any]]] = []
    for item in material.items:
        where = {"news_item_id": item.id, "news_item_title": item.title}
        if item.link:
            links.append((item.link, where))
        if item.image_url:
            images.append((item.image_url, item.image_alt or "", where))
        body = _parsed(item.body or "")
        links += [(href, where) for href, _ in body.links if not href.startswith("mailto:")]
        images += [(src, alt, where) for src, alt in body.images]
    ours = {"what": "archive"}
    links.append((f"{settings.base_url}/archive", ours))
    links.append((issues_domain.preview_unsubscribe_url(settings), {"what": "unsubscribe"}))
    answers = await linkcheck.ask_all([u for u, _ in links], [u for u, _, _ in images], policy)
    findings = [_link_finding(answers[(url, False)], where) for url, where in links]
    weight = 0
    for url, alt, where in images:
        answer = answers[(url, True)]
        weight += answer.size or 0
        findings.append(_image_finding(answer, where))
        if alt is None or not alt.strip():
            findings.append(
                Finding(
                    "image_alt",
                    WARNING if alt is not None else PROBLEM,
                    N_(
                        "그림에 대체 텍스트가 없습니다. 화면을 볼 수 없는 분께는 아무것도 "
                        "전해지지 않습니다."
                    ),
                    where={**where, "url": url},
                )
            )
    if images:
        heavy = weight > IMAGES_HEAVY_BYTES
        findings.append(
            Finding(
                "images_weight",
                WARNING if heavy else OK,
                N_(
                    "그림 %(count)s개, 모두 %(kb)s KB입니다. 1 MB가 넘으면 휴대전화에서 늦게 "
                    "열립니다."
                )
                if heavy
                else N_("그림 %(count)s개, 모두 %(kb)s KB입니다."),
                {"count": len(images), "kb": round(weight / 1024)},
            )
        )
    return findings


_LINK_WORDS = {
    "ok": N_("링크가 열립니다 (HTTP %(status)s)."),
    "refused": N_(
        "링크의 사이트가 확인을 거절했습니다 (HTTP %(status)s). 직접 열어 확인해 주세요."
    ),
    "dead": N_("링크가 열리지 않습니다 (HTTP %(status)s)."),
    "unreachable": N_("링크의 사이트가 응답하지 않습니다. 주소를 확인해 주세요."),
    "internal": N_("링크가 시청 내부망 같은 외부에서 열 수 없는 주소를 가리킵니다."),
    "invalid": N_("http나 https로 시작하는 주소가 아닙니다."),
}
_STATUS_OF = {"ok": OK, "refused": WARNING}


def _link_finding(answer: linkcheck.Answer, where: dict[str, Any]) -> Finding:
    status = _STATUS_OF.get(answer.outcome, PROBLEM)
    values: dict[str, str | int | float] = {"status": answer.status} if answer.status else {}
    place = {
        **where,
        "url": answer.url,
        "final_url": answer.final_url,
        "http_status": answer.status,
    }
    message = _LINK_WORDS[answer.outcome]
    if answer.outcome == "ok" and answer.final_url and answer.final_url != answer.url:
        message = N_("링크가 다른 주소로 넘어가 열립니다 (HTTP %(status)s): %(final)s")
        values["final"] = answer.final_url
    return Finding("link", status, message, values, place)


def _image_finding(answer: linkcheck.Answer, where: dict[str, Any]) -> Finding:
    place = {
        **where,
        "url": answer.url,
        "final_url": answer.final_url,
        "http_status": answer.status,
        "bytes": answer.size,
        "width": answer.width,
        "height": answer.height,
    }
    if answer.outcome != "ok":
        return Finding("image", PROBLEM, N_("그림을 불러오지 못합니다."), where=place)
    if not (answer.content_type or "").startswith("image/") or answer.width is None:
        return Finding(
            "image",
            PROBLEM,
            N_("그림 주소가 그림이 아닌 것(%(type)s)을 돌려줍니다."),
            {"type": answer.content_type or "?"},
            place,
        )
    return Finding(
        "image",
        OK,
        N_("그림이 열립니다: %(width)s×%(height)s, %(kb)s KB."),
        {
            "width": answer.width,
            "height": answer.height or 0,
            "kb": round((answer.size or 0) / 1024),
        },
        place,
    )


def _size(material: Material, settings: Settings, longest_name: int) -> list[Finding]:
    token = "x" * TOKEN_LENGTH
    html_part, _ = personalise(
        material.rendered,
        unsubscribe_url=f"{settings.base_url}/unsubscribe?token={token}",
        name="가" * max(1, -(-longest_name // 3)),  # as many bytes as the longest name, or more
    )
    size = len(html_part.encode())
    values: dict[str, str | int | float] = {
        "kb": round(size / 1024, 1),
        "limit": GMAIL_CLIP_BYTES // 1024,
    }
    if size > GMAIL_CLIP_BYTES:
        return [
            Finding(
                "size",
                PROBLEM,
                N_(
                    "메일 본문이 %(kb)s KB로 Gmail의 한도(%(limit)s KB)를 넘어 잘립니다. 수신 "
                    "거부 링크가 가려집니다. 소식을 "
                    "줄여 주세요."
                ),
                values,
            )
        ]
    if size > GMAIL_CLIP_BYTES * 0.9:
        return [
            Finding(
                "size",
                WARNING,
                N_("메일 본문이 %(kb)s KB로 Gmail의 한도(%(limit)s KB)에 가깝습니다."),
                values,
            )
        ]
    return [
        Finding("size", OK, N_("메일 본문은 %(kb)s KB입니다 (Gmail 한도 %(limit)s KB)."), values)
    ]


# --- reading: the rendered mail as a screen reader and a tired eye meet it ------


_HEX = re.compile(r"#([0-9a-f]{3}|[0-9a-f]{6})\b", re.I)
_NAMED = {"white": (255, 255, 255), "black": (0, 0, 0)}
_HIDDEN = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.I)
_SKIP_TEXT_IN = {"style", "script", "title", "head"}
_VOID = {"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr", "source"}


def _colour(value: str) -> tuple[int, int, int] | None:
    value = value.strip().lower()
    match = _HEX.search(value)
    if match:
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(d * 2 for d in digits)
        return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))
    for name, rgb in _NAMED.items():
        if re.search(rf"\b{name}\b", value):
            return rgb
    return None


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _style(attrs: dict[str, str | None]) -> dict[str, str]:
    declarations = {}
    for part in (attrs.get("style") or "").split(";"):
        name, _, value = part.partition(":")
        if value:
            declarations[name.strip().lower()] = value.strip()
    return declarations


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """WCAG 2.2 contrast ratio of two sRGB colours."""

    def luminance(rgb: tuple[int, int, int]) -> float:
        def channel(c: int) -> float:
            s = c / 255
            return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

        r, g, b_ = (channel(c) for c in rgb)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b_

    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@dataclass
class _Frame:
    tag: str
    colour: tuple[int, int, int]
    background: tuple[int, int, int]
    size_px: float
    bold: bool
    hidden: bool


class _Reading(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.title = ""
        self.headings: list[int] = []
        self.links: list[tuple[str, str]] = []
        self.images_without_alt = 0
        self.low_contrast: dict[tuple[str, str], float] = {}
        self._stack = [_Frame("", (0, 0, 0), (255, 255, 255), 16.0, False, False)]
        self._in_title = False
        self._skip = 0
        self._link: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.lang = values.get("lang")
        if tag == "title":
            self._in_title = True
        if tag in _SKIP_TEXT_IN:
            self._skip += 1
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag == "a":
            self._link = [values.get("href") or "", ""]
        if tag == "img":
            alt = values.get("alt")
            if alt is None:
                self.images_without_alt += 1
            if self._link is not None:
                self._link[1] += alt or ""
        if tag in _VOID:
            return
        top = self._stack[-1]
        style = _style(values)
        colour = _colour(style.get("color", "") or values.get("color") or "") or top.colour
        background = (
            _colour(style.get("background-color", "") or style.get("background", ""))
            or _colour(values.get("bgcolor") or "")
            or top.background
        )
        size = top.size_px
        size_match = re.match(r"([\d.]+)px", style.get("font-size", ""))
        if size_match:
            size = float(size_match.group(1))
        bold = top.bold or style.get("font-weight", "") in ("bold", "700", "800", "900")
        bold = bold or tag in ("b", "strong") or bool(re.fullmatch(r"h[1-6]", tag))
        hidden = top.hidden or bool(_HIDDEN.search(values.get("style") or ""))
        self._stack.append(_Frame(tag, colour, background, size, bold, hidden))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIP_TEXT_IN:
            self._skip = max(0, self._skip - 1)
        if tag == "a" and self._link is not None:
            href, text = self._link
            self.links.append((href, " ".join(text.split())))
            self._link = None
        if tag in _VOID:
            return
        # Close up to the matching open tag (mail HTML is not always tidy).
        for depth in range(len(self._stack) - 1, 0, -1):
            if self._stack[depth].tag == tag:
                del self._stack[depth:]
                break

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._link is not None:
            self._link[1] += data
        top = self._stack[-1]
        if self._skip or top.hidden or not data.strip():
            return
        ratio = contrast(top.colour, top.background)
        large = top.size_px >= 24 or (top.bold and top.size_px >= 18.66)
        if ratio < (3.0 if large else 4.5):
            key = (_hex(top.colour), _hex(top.background))
            self.low_contrast[key] = ratio


def _reading(html: str) -> list[Finding]:
    page = _Reading()
    page.feed(html)
    page.close()
    findings = [
        Finding(
            "reading_lang", OK, N_("메일에 언어(lang)가 적혀 있어 화면 낭독기가 한국어로 읽습니다.")
        )
        if page.lang
        else Finding("reading_lang", PROBLEM, N_("메일에 언어(lang)가 적혀 있지 않습니다.")),
        Finding("reading_title", OK, N_("메일에 제목(title)이 있습니다."))
        if page.title.strip()
        else Finding("reading_title", PROBLEM, N_("메일에 제목(title)이 없습니다.")),
    ]
    skipped = [
        f"h{a}→h{b}" for a, b in zip(page.headings, page.headings[1:], strict=False) if b > a + 1
    ]
    findings.append(
        Finding(
            "reading_headings",
            WARNING,
            N_("제목 단계가 건너뜁니다 (%(steps)s). 화면 낭독기로 훑어보기 어렵습니다."),
            {"steps": ", ".join(skipped)},
        )
        if skipped
        else Finding("reading_headings", OK, N_("제목 단계가 차례대로입니다."))
    )
    for href, text in page.links:
        where = {"url": href, "text": text}
        if not text:
            findings.append(
                Finding(
                    "reading_link_text", PROBLEM, N_("글자가 없는 링크가 있습니다."), where=where
                )
            )
        elif text.lower() in VAGUE_LINK_TEXTS or re.fullmatch(r"(https?://|www\.)\S+", text):
            findings.append(
                Finding(
                    "reading_link_text",
                    WARNING,
                    N_("링크 글자 '%(text)s'만으로는 어디로 가는지 알 수 없습니다."),
                    {"text": text[:60]},
                    where,
                )
            )
    if page.images_without_alt:
        findings.append(
            Finding(
                "reading_alt",
                PROBLEM,
                N_("대체 텍스트(alt)가 아예 없는 그림이 %(count)s개 있습니다."),
                {"count": page.images_without_alt},
            )
        )
    for (fg, bg), ratio in sorted(page.low_contrast.items()):
        findings.append(
            Finding(
                "reading_contrast",
                PROBLEM,
                N_(
                    "글자색 %(fg)s와 바탕색 %(bg)s의 명암비가 %(ratio)s:1로 낮아 읽기 어렵습니다 "
                    "(4.5:1 이상)."
                ),
                {"fg": fg, "bg": bg, "ratio": f"{ratio:.2f}"},
            )
        )
    if not page.low_contrast:
        findings.append(
            Finding("reading_contrast", OK, N_("모든 글자의 명암비가 기준(4.5:1) 이상입니다."))
        )
    return findings


def _subject_and_preview(material: Material) -> list[Finding]:
    row = material.row
    title = " ".join(str(row["title"]).split())
    findings = []
    if not title:
        findings.append(Finding("subject", PROBLEM, N_("메일 제목이 비어 있습니다.")))
    elif len(material.rendered.subject) > SUBJECT_PHONE_CHARACTERS:
        findings.append(
            Finding(
                "subject",
                WARNING,
                N_("메일 제목이 %(count)s자라 휴대전화에서는 %(limit)s자쯤에서 잘려 보입니다."),
                {"count": len(material.rendered.subject), "limit": SUBJECT_PHONE_CHARACTERS},
            )
        )
    else:
        findings.append(Finding("subject", OK, N_("메일 제목이 휴대전화에서도 다 보입니다.")))
    typed_prefix = title.startswith(ADVERTISEMENT_PREFIX.strip())
    if row["is_advertisement"] and not typed_prefix:
        findings.append(
            Finding("advertising", OK, N_("광고성 호라서 제목 앞에 (광고)가 붙습니다."))
        )
    elif row["is_advertisement"]:
        findings.append(
            Finding(
                "advertising",
                PROBLEM,
                N_("제목에 (광고)를 직접 적었습니다. 자동으로 붙으니 지워 주세요."),
            )
        )
    elif typed_prefix:
        findings.append(
            Finding(
                "advertising",
                PROBLEM,
                N_(
                    "제목은 (광고)로 시작하는데 광고성 호로 표시되지 않았습니다. 광고성이면 "
                    "표시하고 (광고)는 지워 주세요."
                ),
            )
        )
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", str(row["intro"])) if p.strip()]
    if not paragraphs:
        findings.append(
            Finding(
                "preheader",
                WARNING,
                N_(
                    "미리 보기 글(받은편지함에서 제목 옆에 보이는 글)이 없어 제목이 한 번 더 "
                    "보입니다. 인사말을 적어 주세요."
                ),
            )
        )
    elif " ".join(paragraphs[0].split()) == title:
        findings.append(
            Finding(
                "preheader", WARNING, N_("미리 보기 글이 제목과 같습니다. 다른 내용을 적어 주세요.")
            )
        )
    else:
        findings.append(Finding("preheader", OK, N_("미리 보기 글이 있습니다.")))
    return findings


def _recipients(counts: Record) -> list[Finding]:
    values = {
        "active": int(counts["active"]),
        "pending": int(counts["pending"]),
        "suppressed": int(counts["suppressed"]),
    }
    if not values["active"]:
        return [Finding("recipients", PROBLEM, N_("받을 구독자가 없습니다."), values)]
    return [
        Finding(
            "recipients",
            OK,
            N_(
                "구독자 %(active)s명이 받습니다. 확인 전인 %(pending)s명과 수신 불가로 멈춘 "
                "%(suppressed)s명은 받지 않습니다."
            ),
            values,
        )
    ]


async def _sending_domain(settings: Settings) -> list[Finding]:
    resolver = sending_domain.resolver_for(settings.dns_resolver)
    domain = settings.from_domain.lower()
    bounce_domain = sending_domain.domain_of(settings.bounce_address or settings.from_address)
    findings = []
    try:
        spf = await sending_domain.txt(resolver, domain, "v=spf1")
        dmarc = await sending_domain.txt(resolver, f"_dmarc.{domain}", "v=dmarc1")
        findings.append(
            Finding(
                "domain_spf",
                OK,
                N_("보내는 도메인 %(domain)s에 SPF가 있습니다."),
                {"domain": domain},
            )
            if spf.found
            else Finding(
                "domain_spf",
                WARNING,
                N_(
                    "보내는 도메인 %(domain)s에 SPF 레코드가 없습니다. 일부 메일이 스팸함으로 "
                    "갑니다."
                ),
                {"domain": domain},
            )
        )
        findings.append(
            Finding(
                "domain_dmarc",
                OK,
                N_("보내는 도메인 %(domain)s에 DMARC가 있습니다."),
                {"domain": domain},
            )
            if dmarc.found
            else Finding(
                "domain_dmarc",
                WARNING,
                N_(
                    "보내는 도메인 %(domain)s에 DMARC 레코드가 없습니다. Gmail 등은 대량 메일에 "
                    "DMARC를 요구합니다."
                ),
                {"domain": domain},
            )
        )
        if bounce_domain and bounce_domain != domain:
            bounce_spf = await sending_domain.txt(resolver, bounce_domain, "v=spf1")
            findings.append(
                Finding(
                    "domain_bounce",
                    OK,
                    N_("반송 주소의 도메인 %(domain)s에 SPF가 있습니다."),
                    {"domain": bounce_domain},
                )
                if bounce_spf.found
                else Finding(
                    "domain_bounce",
                    WARNING,
                    N_("반송 주소의 도메인 %(domain)s에 SPF 레코드가 없습니다."),
                    {"domain": bounce_domain},
                )
            )
        findings += await _dkim_key(resolver, settings)
    except sending_domain.ResolverDown:
        findings.append(
            Finding(
                "domain_dns",
                WARNING,
                N_(
                    "DNS 서버가 응답하지 않아 보내는 도메인(SPF, DMARC, DKIM)을 확인하지 "
                    "못했습니다."
                ),
            )
        )
    return findings


async def _dkim_key(resolver: Any, settings: Settings) -> list[Finding]:
    ours = sending_domain.our_public_key(settings)
    if ours is None or not settings.dkim_selector:
        return [
            Finding(
                "domain_dkim",
                WARNING,
                N_("DKIM 서명을 쓰지 않습니다. 받는 쪽이 메일을 의심할 수 있습니다."),
            )
        ]
    domain = (settings.dkim_domain or settings.from_domain).lower()
    name = f"{settings.dkim_selector}._domainkey.{domain}"
    record = await sending_domain.txt(resolver, name, "")
    keys = [sending_domain.published_key(value) for value in record.found]
    values = {"name": name}
    if not record.found:
        return [
            Finding(
                "domain_dkim",
                PROBLEM,
                N_(
                    "DKIM 공개 키가 %(name)s에 게시되어 있지 않습니다. 모든 메일의 DKIM 확인이 "
                    "실패합니다."
                ),
                values,
            )
        ]
    if ours not in keys:
        return [
            Finding(
                "domain_dkim",
                PROBLEM,
                N_(
                    "%(name)s에 게시된 DKIM 공개 키가 서명에 쓰는 키와 다릅니다. 모든 메일의 "
                    "DKIM 확인이 실패합니다."
                ),
                values,
            )
        ]
    return [
        Finding(
            "domain_dkim", OK, N_("%(name)s에 게시된 DKIM 공개 키가 서명 키와 맞습니다."), values
        )
    ]
