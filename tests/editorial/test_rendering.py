"""Rendering an issue: escaping, Korean copy, markers, plain text (no database needed)."""

from __future__ import annotations

import json
import re
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
from tests.conftest import TEST_SECRET_KEY

SETTINGS = Settings.from_env(
    {
        "NEWSLETTER_DATABASE_URL": "postgresql://127.0.0.1/unused",
        "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
        "NEWSLETTER_BASE_URL": "https://newsletter.gimpo.go.kr",
    }
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


def twenty_items() -> list[NewsItemContent]:
    """A full issue as the PR office writes them: long Korean copy in every field."""
    return [
        NewsItemContent(
            title=f"{n}번째 소식: 김포한강신도시 생활체육시설 개관과 주민 프로그램 안내",
            summary="김포시는 주민들이 가까운 곳에서 운동할 수 있도록 생활체육시설을 새로 열고 "
            "연령대별 프로그램을 운영합니다. " * 2,
            body="<p>"
            + "시설은 평일 오전 6시부터 오후 10시까지 운영하며, 주말에는 오후 6시까지 엽니다. " * 5
            + "</p><p>자세한 내용은 체육진흥과로 문의해 주세요.</p>",
            link=f"https://www.gimpo.go.kr/portal/selectBbsNttView.do?bbsNo=54&nttNo={n}",
            image_url=f"https://www.gimpo.go.kr/img/news/{n}.jpg",
            category="체육",
            published_at=datetime(2026, 11, n, 1, 0, tzinfo=UTC),
        )
        for n in range(1, 21)
    ]


def test_issue_mail_for_clients_and_screen_readers() -> None:
    rendered = render_issue(
        IssueContent("11월 김포 소식", intro="첫 문단", number=7), twenty_items(), SETTINGS
    )
    html, _text = personalise(
        rendered, unsubscribe_url="https://newsletter.gimpo.go.kr/unsubscribe?token=x", name=None
    )
    # Gmail clips beyond 102 KB, hiding the footer with the unsubscribe link.
    assert len(html.encode()) < 102 * 1024, len(html.encode())
    assert '<html lang="ko"' in html
    assert len(re.findall(r"<h1[ >]", html)) == 1 and ">11월 김포 소식</h1>" in html
    assert '<meta name="color-scheme" content="light dark"' in html
    # No style a reader needs lives in a <style> block (Gmail drops them for
    # non-Google accounts): each link carries its own, and the head holds only
    # MJML's layout scaffolding and the dark-mode refinement.
    for link in re.findall(r"<a [^>]*>(?!<img)", html):  # an image link shows no text
        assert 'style="' in link, link
    for block in re.findall(r"<style[^>]*>(.*?)</style>", html, re.S):
        assert ".item-title" not in block and ".footer" not in block
    # Each item's "자세히 보기" is told apart by its accessible name.
    labels = re.findall(r'aria-label="([^"]*) 자세히 보기"', html)
    assert len(labels) == 20 and len(set(labels)) == 20
    # Korean words are not split at line ends, in any text cell.
    assert "word-break:break-word" not in html and "word-break:keep-all" in html
    # The city's identity, from settings.
    assert SETTINGS.city.ko.department in html and SETTINGS.city.phone in html
    assert 'src="https://newsletter.gimpo.go.kr/city/logo"' in html


def test_preheader_is_hidden_without_low_contrast_text() -> None:
    rendered = render_issue(IssueContent("소식", intro="이번 호 요약"), ITEMS[:1], SETTINGS)
    hidden = re.search(r'<div style="display:none[^"]*">([^<]*)', rendered.html)
    assert hidden is not None and hidden.group(1).startswith("이번 호 요약")
    style = hidden.group(0)
    assert "color" not in style and "font-size" not in style
