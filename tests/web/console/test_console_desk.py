"""The writing desk over HTTP without JavaScript: the textarea's blank lines
are paragraphs, a link without an address is refused beside the body and the
editor's text stays in the form; a form loaded before someone else's save is
refused with who and when, keeping both texts."""

from __future__ import annotations

import html
import re

import httpx

from newsletter.core.db import Database
from tests.conftest import bearer
from tests.support.console import csrf_of, login, make_user, page_csrf


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


VERSION = re.compile(r'name="version" value="([^"]*)"')


async def test_a_stale_news_form_is_refused_with_who_and_keeps_the_text(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    other = await bearer(db, name="박편집 도구")
    created = await client.post(
        "/api/v1/news-items", json={"title": "처음", "body": "처음 본문"}, headers=other
    )
    item_id = created.json()["id"]
    form = (await client.get(f"/admin/news/{item_id}")).text
    loaded = VERSION.search(form)
    assert loaded is not None and loaded.group(1)
    csrf = csrf_of(form)
    theirs = await client.put(
        f"/api/v1/news-items/{item_id}",
        json={"title": "그쪽 제목", "body": "그쪽 본문"},
        headers=other,
    )
    assert theirs.status_code == 200

    mine = {"csrf_token": csrf, "title": "내 제목", "body": "내가 쓴 긴 본문", "version": loaded[1]}
    refused = await client.post(f"/admin/news/{item_id}", data=mine)
    assert refused.status_code == 412
    page = html.unescape(refused.text)
    assert "박편집 도구 님이" in page and 'id="version"' in page
    assert "내가 쓴 긴 본문" in page and 'value="내 제목"' in page  # my text, still there
    assert "그쪽 본문" in page  # and theirs, to compare
    assert await db.pool.fetchval("SELECT title FROM news_items") == "그쪽 제목"

    # Saving again from that page is a choice made after seeing theirs.
    current = VERSION.search(refused.text)
    assert current is not None and current[1] != loaded[1]
    again = await client.post(f"/admin/news/{item_id}", data=mine | {"version": current[1]})
    assert again.status_code == 303
    assert await db.pool.fetchval("SELECT title FROM news_items") == "내 제목"


async def test_a_stale_issue_form_is_refused_with_who_and_keeps_the_text(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    other = await bearer(db, name="박편집 도구")
    created = await client.post(
        "/api/v1/issues", json={"title": "3월 소식", "intro": "처음 머리말"}, headers=other
    )
    issue_id = created.json()["id"]
    form = (await client.get(f"/admin/issues/{issue_id}")).text
    loaded = VERSION.search(form)
    assert loaded is not None and loaded.group(1)
    theirs = await client.put(
        f"/api/v1/issues/{issue_id}",
        json={"title": "3월 소식", "intro": "그쪽 머리말"},
        headers=other,
    )
    assert theirs.status_code == 200
    mine = {
        "csrf_token": csrf_of(form),
        "title": "3월 소식",
        "intro": "내가 고친 머리말",
        "version": loaded[1],
        "op": "",
    }
    refused = await client.post(f"/admin/issues/{issue_id}", data=mine)
    assert refused.status_code == 412
    page = html.unescape(refused.text)
    assert "박편집 도구 님이" in page
    assert "내가 고친 머리말" in page and "그쪽 머리말" in page
    assert await db.pool.fetchval("SELECT intro FROM issues") == "그쪽 머리말"
    current = VERSION.search(refused.text)
    assert current is not None
    again = await client.post(f"/admin/issues/{issue_id}", data=mine | {"version": current[1]})
    assert again.status_code == 303
    assert await db.pool.fetchval("SELECT intro FROM issues") == "내가 고친 머리말"


async def test_the_issue_form_shows_greeting_number_and_items_sent_before(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    new = await client.get("/admin/issues/new")
    assert re.search(r'<label for="greeting">인사말', new.text)
    assert 'id="greeting" name="greeting" value="구독자님, 안녕하세요."' in new.text
    created = await client.post(
        "/admin/issues",
        data={"csrf_token": csrf_of(new.text), "title": "인사 없는 호", "greeting": ""},
    )
    assert created.status_code == 303
    assert await db.pool.fetchval("SELECT greeting FROM issues") == ""

    # An issue goes out with one item; the next draft is number 2 and marks it.
    api = await bearer(db)
    sent_item = await client.post("/api/v1/news-items", json={"title": "지난번 소식"}, headers=api)
    fresh_item = await client.post("/api/v1/news-items", json={"title": "새 소식"}, headers=api)
    await db.pool.execute(
        "INSERT INTO subscribers (email, status) VALUES ('reader@example.com', 'active')"
    )
    first = await client.post(
        "/api/v1/issues",
        json={"title": "1호", "news_item_ids": [sent_item.json()["id"]]},
        headers=api,
    )
    started = await client.post(
        f"/api/v1/issues/{first.json()['id']}/send-now",
        headers=api,
        json={"despite_problems": True},  # offline: BASE_URL's pages do not answer
    )
    assert started.json()["number"] == 1
    draft_id = await db.pool.fetchval("SELECT id FROM issues WHERE title = '인사 없는 호'")
    page = (await client.get(f"/admin/issues/{draft_id}")).text
    assert "<strong>제2호</strong>로 나갑니다" in page
    assert 'id="greeting" name="greeting" value=""' in page
    picker = page[page.index('id="pickable"') :]
    marked = re.search(
        r'data-item-id="(\d+)"><span>([^<]*)<span class="sent-before">([^<]*)', picker
    )
    assert marked is not None
    assert int(marked[1]) == sent_item.json()["id"] and "제1호" in marked[3]
    fresh = picker[picker.index(f'data-item-id="{fresh_item.json()["id"]}"') :]
    assert "sent-before" not in fresh.split("</li>")[0]

    saved = await client.post(
        f"/admin/issues/{draft_id}",
        data={
            "csrf_token": csrf_of(page),
            "title": "인사 있는 호",
            "greeting": "김포 시민 여러분, 반갑습니다.",
            "version": re.search(r'name="version" value="([^"]*)"', page)[1],  # type: ignore[index]
            "op": "",
        },
    )
    assert saved.status_code == 303
    preview = await client.get(f"/admin/issues/{draft_id}/preview?format=text")
    assert "제2호" in preview.text and "김포 시민 여러분, 반갑습니다." in preview.text
