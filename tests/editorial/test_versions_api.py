"""Two writers on one draft over the API: GET answers an ETag, a PUT with a
stale If-Match is 412 (saying who changed it) and changes nothing; a
matching If-Match, or none, works as before."""

from __future__ import annotations

import httpx
import pytest

from newsletter.core.db import Database
from tests.conftest import bearer

Client = httpx.AsyncClient


async def _item(client: Client, headers: dict[str, str]) -> str:
    created = await client.post(
        "/api/v1/news-items", json={"title": "처음 제목", "body": "본문"}, headers=headers
    )
    assert created.status_code == 201, created.text
    return f"/api/v1/news-items/{created.json()['id']}"


async def _issue(client: Client, headers: dict[str, str]) -> str:
    created = await client.post(
        "/api/v1/issues", json={"title": "처음 제목", "intro": "머리말"}, headers=headers
    )
    assert created.status_code == 201, created.text
    return f"/api/v1/issues/{created.json()['id']}"


@pytest.mark.parametrize("make", [_item, _issue], ids=["news item", "issue"])
async def test_a_stale_if_match_changes_nothing(client: Client, db: Database, make: object) -> None:
    first = await bearer(db, name="홍보팀 스크립트")
    second = await bearer(db, name="다른 편집 도구")
    path = await make(client, first)  # type: ignore[operator]
    read = await client.get(path, headers=first)
    etag = read.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')

    # The second writer saves first, naming the version they read.
    theirs = await client.put(
        path, json={"title": "그쪽 제목"}, headers={**second, "If-Match": etag}
    )
    assert theirs.status_code == 200, theirs.text
    assert theirs.headers["etag"] != etag
    assert (await client.get(path, headers=first)).headers["etag"] == theirs.headers["etag"]

    mine = await client.put(path, json={"title": "내 제목"}, headers={**first, "If-Match": etag})
    assert mine.status_code == 412, mine.text
    assert mine.json()["error"] == "precondition_failed"
    assert "다른 편집 도구" in mine.json()["detail"]
    assert (await client.get(path, headers=first)).json()["title"] == "그쪽 제목"
    for stale in (f"W/{theirs.headers['etag']}", '"nope"', "garbage"):
        refused = await client.put(
            path, json={"title": "내 제목"}, headers={**first, "If-Match": stale}
        )
        assert refused.status_code == 412, stale

    # With the current version (among others, or "*"), or none, it works.
    both = f'"old", {theirs.headers["etag"]}'
    merged = await client.put(
        path, json={"title": "합친 제목"}, headers={**first, "If-Match": both}
    )
    assert merged.status_code == 200 and merged.json()["title"] == "합친 제목"
    anything = await client.put(path, json={"title": "아무 판"}, headers={**first, "If-Match": "*"})
    assert anything.status_code == 200
    plain = await client.put(path, json={"title": "헤더 없이"}, headers=first)
    assert plain.status_code == 200 and plain.json()["title"] == "헤더 없이"
