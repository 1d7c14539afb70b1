"""The greeting line is the issue's own field: today's default unless the
editor changes or empties it, and the mail shows exactly that (addressed by
name where it starts with 구독자님)."""

from __future__ import annotations

import httpx

from newsletter.core.db import Database
from newsletter.editorial.rendering import IssueContent, personalise, render_issue
from tests.conftest import bearer
from tests.editorial.test_rendering import ITEMS, SETTINGS

Client = httpx.AsyncClient


async def test_the_greeting_is_a_field_and_the_mail_follows_it(
    client: Client, db: Database
) -> None:
    headers = await bearer(db)
    created = await client.post(
        "/api/v1/issues", json={"title": "3월 소식", "intro": "봄 소식입니다."}, headers=headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["greeting"] == "구독자님, 안녕하세요."
    path = f"/api/v1/issues/{created.json()['id']}"

    async def text_part() -> str:
        return (await client.get(f"{path}/preview?format=text", headers=headers)).text

    assert "3월 소식\n\n구독자님, 안녕하세요.\n\n봄 소식입니다." in await text_part()

    own = await client.put(
        path,
        json={
            "title": "3월 소식",
            "intro": "봄 소식입니다.",
            "greeting": "김포 시민 여러분, 반갑습니다.",
        },
        headers=headers,
    )
    assert own.status_code == 200 and own.json()["greeting"] == "김포 시민 여러분, 반갑습니다."
    html = (await client.get(f"{path}/preview", headers=headers)).text
    assert "김포 시민 여러분, 반갑습니다." in html and "안녕하세요" not in html
    assert "3월 소식\n\n김포 시민 여러분, 반갑습니다.\n\n봄 소식입니다." in await text_part()

    none = await client.put(
        path, json={"title": "3월 소식", "intro": "봄 소식입니다.", "greeting": ""}, headers=headers
    )
    assert none.status_code == 200 and none.json()["greeting"] == ""
    assert "3월 소식\n\n봄 소식입니다." in await text_part()
    assert "반갑습니다" not in (await client.get(f"{path}/preview", headers=headers)).text


def test_a_greeting_to_the_subscriber_is_addressed_by_name() -> None:
    rendered = render_issue(
        IssueContent("3월 소식", "봄", 3, greeting="구독자님, 봄이 왔어요 %%UNSUBSCRIBE_URL%%"),
        ITEMS,
        SETTINGS,
    )
    html, text = personalise(rendered, unsubscribe_url="https://x.example/u", name="홍길동")
    assert "홍길동님, 봄이 왔어요" in html and "홍길동님, 봄이 왔어요" in text
    # A marker typed into the greeting stays text (never someone's token).
    assert "https://x.example/u" not in text.split("봄이 왔어요")[1].split("\n")[0]
    html, text = personalise(rendered, unsubscribe_url="https://x.example/u", name=None)
    assert "구독자님, 봄이 왔어요" in text
