"""A news item's image has words for those who cannot see it: required with
an image (API and console), shown as alt text with an optional caption under
the image in the mail, its text part and the archive, the image heading its
item in both; the feed import takes the feed's words for the picture, or the
title."""

from __future__ import annotations

import re

import httpx

from newsletter.core.db import Database
from tests.conftest import bearer
from tests.support.console import login, make_user, page_csrf

Client = httpx.AsyncClient
PHOTO = "https://www.gimpo.go.kr/images/festival.jpg"
ALT = "라베니체 수변에서 불꽃놀이를 보는 시민들, 현수막에 ‘한강 야간 축제’"
CAPTION = "지난해 축제 모습 (김포시 제공)"


async def test_an_image_without_words_is_refused(client: Client, db: Database) -> None:
    headers = await bearer(db)
    for alt in (None, "", "   "):
        body = {"title": "축제", "image_url": PHOTO} | (
            {"image_alt": alt} if alt is not None else {}
        )
        refused = await client.post("/api/v1/news-items", json=body, headers=headers)
        assert refused.status_code == 422, refused.text
        assert "image_alt" in refused.json()["detail"]
    assert await db.pool.fetchval("SELECT count(*) FROM news_items") == 0
    plain = await client.post("/api/v1/news-items", json={"title": "글만"}, headers=headers)
    assert plain.status_code == 201
    assert plain.json()["image_alt"] is None and plain.json()["image_caption"] is None
    changed = await client.put(
        f"/api/v1/news-items/{plain.json()['id']}",
        json={"title": "글만", "image_url": PHOTO},
        headers=headers,
    )
    assert changed.status_code == 422 and "image_alt" in changed.json()["detail"]


async def test_mail_text_and_archive_carry_the_words_in_one_place(
    client: Client, db: Database
) -> None:
    headers = await bearer(db)
    created = await client.post(
        "/api/v1/news-items",
        json={
            "title": "한강 야간 축제",
            "summary": "토요일 저녁",
            "image_url": PHOTO,
            "image_alt": ALT,
            "image_caption": CAPTION,
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["image_alt"] == ALT and created.json()["image_caption"] == CAPTION
    await db.pool.execute(
        "INSERT INTO subscribers (email, status) VALUES ('reader@example.com', 'active')"
    )
    issue = await client.post(
        "/api/v1/issues",
        json={"title": "축제 호", "news_item_ids": [created.json()["id"]]},
        headers=headers,
    )
    issue_id = issue.json()["id"]
    mail = (await client.get(f"/api/v1/issues/{issue_id}/preview", headers=headers)).text
    image = re.search(r'<img [^>]*src="' + re.escape(PHOTO) + '"[^>]*>', mail)
    assert image is not None and f'alt="{ALT}"' in image.group(0)
    # The image, then its caption, then the item's title: in the mail...
    assert mail.index(PHOTO) < mail.index(CAPTION) < mail.index(">한강 야간 축제<")
    text = (
        await client.get(f"/api/v1/issues/{issue_id}/preview?format=text", headers=headers)
    ).text
    assert f"[사진: {ALT}] {CAPTION}\n한강 야간 축제" in text

    started = await client.post(
        f"/api/v1/issues/{issue_id}/send-now",
        headers=headers,
        json={"despite_problems": True},  # offline: BASE_URL's pages do not answer
    )
    page = (await client.get(f"/archive/{started.json()['number']}")).text
    figure = re.search(r"<figure[^>]*>.*?</figure>", page, re.S)
    assert figure is not None
    assert f'alt="{ALT}"' in figure.group(
        0
    ) and f"<figcaption>{CAPTION}</figcaption>" in figure.group(0)
    # ... and in the archive.
    assert page.index(PHOTO) < page.index(CAPTION) < page.index(">한강 야간 축제<")


async def test_the_feed_gives_its_picture_words_or_the_title(client: Client, db: Database) -> None:
    feed = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>보도자료</title>
<link>https://www.gimpo.go.kr/</link>
<item><title>설명 있는 사진</title><link>https://www.gimpo.go.kr/n/1</link><description>본문</description>
<media:content url="https://www.gimpo.go.kr/a.jpg" medium="image">
<media:description>시장이 테이프를 자르는 개통식</media:description></media:content></item>
<item><title>제목만 있는 사진</title><link>https://www.gimpo.go.kr/n/2</link><description>본문</description>
<media:content url="https://www.gimpo.go.kr/b.jpg" medium="image">
<media:title>골드라인 열차</media:title></media:content></item>
<item><title>말 없는 사진</title><link>https://www.gimpo.go.kr/n/3</link><description>본문</description>
<enclosure url="https://www.gimpo.go.kr/c.jpg" type="image/jpeg" length="1"/></item>
</channel></rss>"""
    headers = {**await bearer(db), "Content-Type": "application/rss+xml"}
    imported = await client.post("/api/v1/news-items/import-feed", content=feed, headers=headers)
    assert imported.status_code == 200 and imported.json()["inserted"] == 3, imported.text
    rows = await db.pool.fetch("SELECT link, image_alt, body FROM news_items ORDER BY link")
    # The picture's words stay the picture's: they are not the item's text.
    assert [r["body"] for r in rows] == ["", "", ""]
    assert [r["image_alt"] for r in rows] == [
        "시장이 테이프를 자르는 개통식",
        "골드라인 열차",
        "말 없는 사진",
    ]


async def test_the_console_asks_for_the_words_beside_the_field(
    client: Client, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    csrf = await page_csrf(client, "/admin/news/new")
    form = {"csrf_token": csrf, "title": "사진 소식", "image_url": PHOTO}
    refused = await client.post("/admin/news", data=form)
    assert refused.status_code == 422
    assert 'id="image_alt-error"' in refused.text and "이미지 대체 텍스트" in refused.text
    assert await db.pool.fetchval("SELECT count(*) FROM news_items") == 0
    saved = await client.post(
        "/admin/news", data=form | {"image_alt": ALT, "image_caption": CAPTION}
    )
    assert saved.status_code == 303, saved.text
    edit = await client.get(saved.headers["location"])
    assert f'value="{ALT}"' in edit.text and f'value="{CAPTION}"' in edit.text
    assert re.search(r'id="image_alt"[^>]*required', edit.text)
