"""The writing desk over HTTP without JavaScript: the textarea's blank lines
are paragraphs, a link without an address is refused beside the body and the
editor's text stays in the form."""

from __future__ import annotations

import html

import httpx

from newsletter.core.db import Database
from tests.support.console import login, make_user, page_csrf


async def test_the_textarea_keeps_paragraphs_beside_bold_text(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    csrf = await page_csrf(client, "/admin/news/new")
    for typed in ("<b>굵게</b> 문단1\n\n문단2", "굵게 문단1\r\n\r\n문단2"):
        saved = await client.post(
            "/admin/news", data={"csrf_token": csrf, "title": "문단", "body": typed}
        )
        assert saved.status_code == 303, saved.text
    bodies = [r["body"] for r in await db.pool.fetch("SELECT body FROM news_items ORDER BY id")]
    assert bodies == ["<p><b>굵게</b> 문단1</p><p>문단2</p>", "<p>굵게 문단1</p><p>문단2</p>"]


async def test_an_empty_link_is_refused_beside_the_body_and_the_text_stays(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    csrf = await page_csrf(client, "/admin/news/new")
    typed = '신청은 <a href="https://">온라인 접수</a>에서\n\n둘째 문단'
    refused = await client.post(
        "/admin/news", data={"csrf_token": csrf, "title": "링크", "body": typed}
    )
    assert refused.status_code == 422
    page = html.unescape(refused.text)
    assert 'id="body-error"' in refused.text and "‘온라인 접수’" in page
    assert typed in page  # the textarea still holds what the editor wrote
    assert await db.pool.fetchval("SELECT count(*) FROM news_items") == 0

    preview = await client.post(
        "/admin/news/body-preview", data={"csrf_token": csrf, "body": typed}
    )
    assert preview.status_code == 200 and "‘온라인 접수’" in html.unescape(preview.text)
