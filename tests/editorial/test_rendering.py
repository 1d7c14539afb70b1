"""Rendering an issue: escaping, Korean copy, markers, plain text (no database needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from newsletter.core.settings import Settings
from newsletter.editorial.rendering import (
    DEFAULT_NAME,
    RECIPIENT_NAME,
    UNSUBSCRIBE_URL,
    IssueContent,
    NewsItemContent,
    html_to_text,
    personalise,
    render_issue,
)

SETTINGS = Settings.from_env(
    {"NEWSLETTER_DEV": "1", "NEWSLETTER_BASE_URL": "https://newsletter.gimpo.go.kr"}
)
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'

ITEMS = [
    NewsItemContent(
        title="김포 한강 야간축제 " + XSS,
        summary="요약 & 설명",
        body="<p>본문 <strong>강조</strong></p><p>둘째 문단</p>",
        link="https://www.gimpo.go.kr/news/1?a=1&b=2",
        image_url="https://www.gimpo.go.kr/img/1.png",
        category="행사",
        published_at=datetime(2026, 3, 1, 15, 30, tzinfo=UTC),
    ),
    NewsItemContent(title="두 번째 소식", link="https://www.gimpo.go.kr/news/2"),
]


def test_renders_titles_links_and_markers() -> None:
    rendered = render_issue(
        IssueContent("3월 소식", "안녕하세요.\n\n둘째 문단", 7), ITEMS, SETTINGS
    )
    assert rendered.subject == "3월 소식"
    for html in (rendered.html,):
        assert "두 번째 소식" in html
        assert 'href="https://www.gimpo.go.kr/news/1?a=1&amp;b=2"' in html
        assert 'href="https://newsletter.gimpo.go.kr/archive/7"' in html
        assert "웹에서 보기" in html
        assert f'href="{UNSUBSCRIBE_URL}"' in html
        assert RECIPIENT_NAME in html
        assert "fonts.googleapis" not in html  # no third-party fetch
        assert "<strong>강조</strong>" in html  # sanitised body kept as HTML
    text = rendered.text
    assert "김포 한강 야간축제" in text and "두 번째 소식" in text
    assert "https://www.gimpo.go.kr/news/1?a=1&b=2" in text
    assert "본문 강조\n둘째 문단" in text
    assert f"수신 거부: {UNSUBSCRIBE_URL}" in text
    assert "웹에서 보기: https://newsletter.gimpo.go.kr/archive/7" in text
    assert "2026년 3월 2일" in text  # published_at shown in Asia/Seoul


def test_editor_fields_are_escaped() -> None:
    rendered = render_issue(
        IssueContent("제목 " + XSS, "소개 " + XSS), [*ITEMS, NewsItemContent(XSS)], SETTINGS
    )
    assert "<script" not in rendered.html
    assert "onerror=alert(1)>" not in rendered.html
    assert "&lt;script&gt;" in rendered.html


def test_advertisement_prefix_and_single_line_subject() -> None:
    rendered = render_issue(IssueContent("특가\r\n안내", is_advertisement=True), [], SETTINGS)
    assert rendered.subject == "(광고) 특가 안내"


def test_personalise_escapes_name_and_fills_both_parts() -> None:
    rendered = render_issue(IssueContent("소식"), ITEMS, SETTINGS)
    url = "https://newsletter.gimpo.go.kr/unsubscribe?token=abc.def"
    html, text = personalise(rendered, unsubscribe_url=url, name="<김&포>")
    assert "&lt;김&amp;포&gt;님, 안녕하세요." in html
    assert "<김&포>님, 안녕하세요." in text
    assert f'href="{url}"' in html and url in text
    assert "%%" not in html and "%%" not in text
    html, text = personalise(rendered, unsubscribe_url=url, name=None)
    assert f"{DEFAULT_NAME}님, 안녕하세요." in text


def test_html_to_text() -> None:
    assert html_to_text("<p>a &amp; b</p><ul><li>x</li><li>y</li></ul>") == "a & b\nx\ny"


def test_web_content_is_the_issue_as_data_without_markers() -> None:
    rendered = render_issue(
        IssueContent("소식", intro="첫 문단\n\n둘째 문단", number=3), ITEMS, SETTINGS
    )
    content = rendered.web_content
    assert content is not None
    assert content["title"] == "소식"
    assert content["intro_paragraphs"] == ["첫 문단", "둘째 문단"]
    assert [item["title"] for item in content["items"]] == [item.title for item in ITEMS]
    assert "%%" not in json.dumps(content, ensure_ascii=False)
