"""A news body as editors write it: blank-line paragraphs mixed with a tag or
two stay paragraphs in the stored body, the mail and the archive; a link with
no address a reader can open is refused, naming the link, never dropped."""

from __future__ import annotations

import httpx
import pytest

from newsletter.core.db import Database
from tests.conftest import bearer

Client = httpx.AsyncClient
MIXED = "<b>굵게</b> 문단1\n\n문단2\n둘째 줄"


async def test_blank_lines_stay_paragraphs_beside_inline_tags(client: Client, db: Database) -> None:
    headers = await bearer(db)
    created = await client.post(
        "/api/v1/news-items", json={"title": "문단", "body": MIXED}, headers=headers
    )
    assert created.status_code == 201, created.text
    body = created.json()["body"]
    assert body == "<p><b>굵게</b> 문단1</p><p>문단2<br>둘째 줄</p>"

    await db.pool.execute(
        "INSERT INTO subscribers (email, status) VALUES ('reader@example.com', 'active')"
    )
    issue = await client.post(
        "/api/v1/issues",
        json={"title": "문단 호", "news_item_ids": [created.json()["id"]]},
        headers=headers,
    )
    issue_id = issue.json()["id"]
    mail = await client.get(f"/api/v1/issues/{issue_id}/preview", headers=headers)
    # MJML writes <br> as <br />; what matters is where each paragraph ends.
    assert "<p><b>굵게</b> 문단1</p><p>문단2<br />둘째 줄</p>" in mail.text
    text = await client.get(f"/api/v1/issues/{issue_id}/preview?format=text", headers=headers)
    # The text part puts each paragraph on a line of its own (as it always has).
    assert "\n굵게 문단1\n문단2\n둘째 줄\n" in text.text

    started = await client.post(
        f"/api/v1/issues/{issue_id}/send-now",
        headers=headers,
        json={"despite_problems": True},  # offline: BASE_URL's pages do not answer
    )
    assert started.status_code == 200, started.text
    archive = await client.get(f"/archive/{started.json()['number']}")
    assert "<p><b>굵게</b> 문단1</p><p>문단2<br>둘째 줄</p>" in archive.text


async def test_paragraphs_inside_one_p_and_html_bodies_are_kept(
    client: Client, db: Database
) -> None:
    headers = await bearer(db)
    for sent, kept in [
        ("<p>첫 문단\n\n둘째 문단</p>", "<p>첫 문단</p><p>둘째 문단</p>"),
        ("<h3>소제목</h3>\n본문 <i>기울임</i>", "<h3>소제목</h3><p>본문 <i>기울임</i></p>"),
        ("<ul><li>하나</li></ul>\n\n<p>끝</p>", "<ul><li>하나</li></ul><p>끝</p>"),
        ("줄<br>\n다음 줄", "<p>줄<br>다음 줄</p>"),
        ("a &lt; b & c", "<p>a &lt; b &amp; c</p>"),
    ]:
        created = await client.post(
            "/api/v1/news-items", json={"title": "x", "body": sent}, headers=headers
        )
        assert created.status_code == 201, created.text
        assert created.json()["body"] == kept


@pytest.mark.parametrize(
    "href", ["https://", "", "javascript:alert(1)", "/news/1", "news.html", "http://"]
)
async def test_a_link_without_a_usable_address_is_refused_by_its_text(
    client: Client, db: Database, href: str
) -> None:
    headers = await bearer(db)
    body = f'행사 안내는 <a href="{href}">접수 페이지</a>에서 보세요.'
    refused = await client.post(
        "/api/v1/news-items", json={"title": "링크", "body": body}, headers=headers
    )
    assert refused.status_code == 422, refused.text
    assert "접수 페이지" in refused.json()["detail"]
    assert await db.pool.fetchval("SELECT count(*) FROM news_items") == 0

    kept = await client.post(
        "/api/v1/news-items",
        json={"title": "링크", "body": '<a href="https://www.gimpo.go.kr/a">접수 페이지</a>'},
        headers=headers,
    )
    assert kept.status_code == 201
    replaced = await client.put(
        f"/api/v1/news-items/{kept.json()['id']}",
        json={"title": "링크", "body": body},
        headers=headers,
    )
    assert replaced.status_code == 422 and "접수 페이지" in replaced.json()["detail"]
    stored = await db.pool.fetchval("SELECT body FROM news_items")
    assert 'href="https://www.gimpo.go.kr/a"' in stored


async def test_mail_and_web_links_are_kept(client: Client, db: Database) -> None:
    headers = await bearer(db)
    body = '<a href="mailto:news@gimpo.go.kr">문의</a> · <a href="http://gimpo.go.kr/x">시청</a>'
    created = await client.post(
        "/api/v1/news-items", json={"title": "링크", "body": body}, headers=headers
    )
    assert created.status_code == 201, created.text
    assert 'href="mailto:news@gimpo.go.kr"' in created.json()["body"]
    assert 'href="http://gimpo.go.kr/x"' in created.json()["body"]


async def test_a_feed_body_links_resolve_against_the_entry(client: Client, db: Database) -> None:
    feed = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>보도자료</title><link>https://www.gimpo.go.kr/</link>
<item><title>상대 링크</title><link>https://www.gimpo.go.kr/news/view/1</link>
<description><![CDATA[<p>자세한 내용은 <a href="/board/2">공고</a>를 보세요.</p>]]></description>
</item>
<item><title>스크립트 링크</title><link>https://www.gimpo.go.kr/news/view/2</link>
<description><![CDATA[<p><a href="javascript:void(0)">열기</a> <a href="/b">공고</a></p>]]>
</description>
</item></channel></rss>"""
    headers = {**await bearer(db), "Content-Type": "application/rss+xml"}
    imported = await client.post("/api/v1/news-items/import-feed", content=feed, headers=headers)
    assert imported.status_code == 200, imported.text
    result = imported.json()
    assert result["inserted"] == 1
    assert [e["entry"] for e in result["errors"]] == [2]
    assert "열기" in result["errors"][0]["reason"]
    body = await db.pool.fetchval("SELECT body FROM news_items")
    assert 'href="https://www.gimpo.go.kr/board/2"' in body
