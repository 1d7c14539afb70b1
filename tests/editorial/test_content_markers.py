"""Per-recipient markers exist only where the issue template puts them: text
from editors or feeds that looks like a marker stays text in every mail."""

from __future__ import annotations

import httpx

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.editorial import issues
from tests.conftest import SmtpServer, bearer, drain
from tests.support.delivery import add_subscribers, address

MARKERS = "%%UNSUBSCRIBE_URL%% %%RECIPIENT_NAME%%"
PIXEL = "https://tracker.example/p.gif?who=%%RECIPIENT_NAME%%&t=%%UNSUBSCRIBE_URL%%"


async def test_marker_text_in_editor_and_feed_content_is_never_filled_in(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    headers = await bearer(db, "editor")
    typed = await client.post(
        "/api/v1/news-items",
        headers=headers,
        json={
            "title": f"제목 {MARKERS}",
            "summary": f"요약 {MARKERS}",
            "body": f'<p>본문 {MARKERS}</p><p><img src="{PIXEL}" alt="x"></p>',
            "link": f"https://www.gimpo.go.kr/news/1?x={MARKERS.replace(' ', '+')}",
            "image_url": PIXEL,
            "image_alt": f"사진 {MARKERS}",
            "category": "%%RECIPIENT_NAME%%",
        },
    )
    assert typed.status_code == 201, typed.text
    feed = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>김포</title>'
        "<item><title>피드 %%UNSUBSCRIBE_URL%%</title>"
        "<link>https://www.gimpo.go.kr/news/2</link>"
        f"<description>&lt;img src=&quot;{PIXEL.replace('&', '&amp;amp;')}&quot;&gt; "
        "%%RECIPIENT_NAME%%</description></item></channel></rss>"
    )
    imported = await client.post(
        "/api/v1/news-items/import-feed",
        headers={**headers, "content-type": "application/rss+xml"},
        content=feed.encode(),
    )
    assert imported.status_code == 200, imported.text
    ids = [typed.json()["id"], *imported.json()["ids"]]
    issue = await client.post(
        "/api/v1/issues",
        headers=headers,
        json={"title": f"호 {MARKERS}", "intro": f"인사 {MARKERS}", "news_item_ids": ids},
    )
    assert issue.status_code == 201, issue.text
    await add_subscribers(db, 1, name="홍길동")
    async with db.transaction() as conn:
        await issues.start_issue(conn, issue.json()["id"], settings)
    await drain(settings, db)

    [mail] = smtp_server.handler.to(address(1))
    message = mail.message
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    token_url = f"{settings.base_url}/unsubscribe?token="
    # The template's own places only: one greeting by name, one unsubscribe link.
    assert text.count(token_url) == 1 and html.count(token_url) == 1
    assert text.count("홍길동") == 1 and html.count("홍길동") == 1
    # The tracking pixel learned nothing about the recipient.
    assert "who=홍길동" not in html and "t=https" not in html
    # What the editor typed is still there to read.
    assert "UNSUBSCRIBE_URL" in text and "RECIPIENT_NAME" in html
