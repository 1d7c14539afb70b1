"""Console content through HTTP: uploaded images are sniffed, resized and
stripped of metadata; illegal state changes are explained in Korean; a
subscriber is erased only after confirmation; a CSV import reports each line."""

from __future__ import annotations

import asyncio
import html
import io

import httpx
from PIL import Image

from newsletter.core.db import Database
from tests.support.console import login, make_user, page_csrf


def photo_with_gps(width: int = 3000, height: int = 2000) -> bytes:
    image = Image.new("RGB", (width, height), (200, 40, 40))
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° to show upright
    gps = {1: "N", 2: (37.0, 36.0, 0.0), 3: "E", 4: (126.0, 42.0, 0.0)}
    exif[0x8825] = gps
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, comment=b"secret note")
    return out.getvalue()


async def test_an_uploaded_photo_is_resized_stripped_and_served_safely(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    csrf = await page_csrf(client, "/admin/news/new")
    saved = await client.post(
        "/admin/news",
        data={
            "csrf_token": csrf,
            "title": "사진 있는 소식",
            "link": "https://www.gimpo.go.kr/p/1",
            "image_alt": "빨간 사진",
        },
        files={"image": ("IMG_0001.JPG", photo_with_gps(), "image/jpeg")},
    )
    assert saved.status_code == 303, saved.text
    image_url = await db.pool.fetchval("SELECT image_url FROM news_items")
    assert image_url.startswith("https://newsletter.gimpo.go.kr/media/")
    served = await client.get(image_url.removeprefix("https://newsletter.gimpo.go.kr"))
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in served.headers["cache-control"]
    with Image.open(io.BytesIO(served.content)) as stored:
        # Turned upright by its EXIF orientation, then scaled to 1200 px wide.
        assert stored.size == (1200, 1800)
        assert not stored.getexif()
        assert "comment" not in stored.info and "exif" not in stored.info
    assert b"CameraMaker" not in served.content and b"secret note" not in served.content
    again = await client.get(
        image_url.removeprefix("https://newsletter.gimpo.go.kr"),
        headers={"If-None-Match": served.headers["etag"]},
    )
    assert again.status_code == 304
    gone = await client.get("/media/" + "0" * 64 + ".jpg")
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "text/plain; charset=utf-8"


async def test_a_file_that_is_not_an_image_is_refused_next_to_the_field(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    csrf = await page_csrf(client, "/admin/news/new")
    answer = await client.post(
        "/admin/news",
        data={"csrf_token": csrf, "title": "가짜 사진"},
        files={"image": ("photo.jpg", b"<html><script>alert(1)</script></html>", "image/jpeg")},
    )
    assert answer.status_code == 422
    assert 'id="image-error"' in answer.text and "이미지로 읽을 수 없는" in answer.text
    assert await db.pool.fetchval("SELECT count(*) FROM news_items") == 0
    assert await db.pool.fetchval("SELECT count(*) FROM media") == 0


async def test_illegal_state_changes_are_explained_in_korean(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    issue_id = await db.pool.fetchval("INSERT INTO issues (title) VALUES ('빈 호') RETURNING id")
    await login(client, editor.email)
    csrf = await page_csrf(client, f"/admin/issues/{issue_id}")
    pause = await client.post(
        f"/admin/issues/{issue_id}/pause", data={"csrf_token": csrf, "confirmed": "yes"}
    )
    assert pause.status_code == 409
    said = html.unescape(pause.text)
    assert "'초안' 상태라서" in said and "'발송 중' 상태인 호만" in said
    empty = await client.post(
        f"/admin/issues/{issue_id}/send-now", data={"csrf_token": csrf, "confirmed": "yes"}
    )
    assert empty.status_code == 409 and "아직 뉴스 항목이 없습니다" in empty.text
    past = await client.post(
        f"/admin/issues/{issue_id}/schedule",
        data={"csrf_token": csrf, "send_at": "2020-01-01T09:00"},
    )
    assert past.status_code == 422 and "발송 일시가 이미 지났습니다" in past.text
    assert 'id="send_at-error"' in past.text
    assert await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", issue_id) == "draft"


async def finished_import(client: httpx.AsyncClient, csrf: str, name: str, data: bytes) -> str:
    """Start a confirmed import through the form and wait for its progress panel's end."""
    started = await client.post(
        "/admin/subscribers/import",
        data={"csrf_token": csrf, "mode": "confirmed", "source": "2025 시민 설문 동의서"},
        files={"file": (name, data, "text/csv")},
    )
    assert started.status_code == 303, started.text
    for _ in range(100):
        progress = await client.get(started.headers["location"] + "/progress")
        if progress.status_code == 286:
            break
        await asyncio.sleep(0.05)
    return html.unescape(progress.text)


async def test_erasing_needs_the_address_typed_and_a_csv_import_reports_each_line(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin = await make_user(db, "admin")
    await login(client, admin.email)
    csrf = await page_csrf(client, "/admin/subscribers/import")
    said = await finished_import(
        client,
        csrf,
        "명단.csv",
        "이메일,이름\nlee@example.com,이영희\nnot-an-address,박\n".encode("cp949"),
    )
    assert 'id="count-inserted">1<' in said
    assert 'id="count-invalid">1<' in said
    assert "잘못된 이메일 주소" in said and ">3<" in said  # the line number

    person = await db.pool.fetchval("SELECT id FROM subscribers WHERE email = 'lee@example.com'")
    asked = await client.post(f"/admin/subscribers/{person}/erase", data={"csrf_token": csrf})
    assert asked.status_code == 200 and "개인정보를 지울까요?" in asked.text
    mistyped = await client.post(
        f"/admin/subscribers/{person}/erase",
        data={"csrf_token": csrf, "confirmed": "yes", "typed": "someone@example.com"},
    )
    assert mistyped.status_code == 422
    assert await db.pool.fetchval("SELECT count(*) FROM subscribers WHERE id = $1", person) == 1
    erased = await client.post(
        f"/admin/subscribers/{person}/erase",
        data={"csrf_token": csrf, "confirmed": "yes", "typed": "LEE@example.com"},
    )
    assert erased.status_code == 303
    assert await db.pool.fetchval("SELECT count(*) FROM subscribers WHERE id = $1", person) == 0


FEED_WITH_A_BAD_ENTRY = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>김포시 보도자료</title><link>https://www.gimpo.go.kr/</link>
<item><title>한강 야간 축제 개최</title><link>https://www.gimpo.go.kr/news/festival</link></item>
<item><title></title><link>https://www.gimpo.go.kr/news/untitled</link></item>
<item><title>링크 없는 소식</title></item>
</channel></rss>"""


async def test_a_feed_preview_says_in_korean_why_an_entry_cannot_be_imported(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    csrf = await page_csrf(client, "/admin/news/import")
    preview = await client.post(
        "/admin/news/import",
        data={"csrf_token": csrf},
        files={"file": ("press.xml", FEED_WITH_A_BAD_ENTRY.encode(), "application/rss+xml")},
    )
    assert preview.status_code == 200, preview.text
    said = html.unescape(preview.text)
    assert "제목을(를) 입력해 주세요." in said
    assert "링크가 없는 항목이라" in said
    assert "must not be empty" not in said and "de-duplicate" not in said


async def test_sending_to_nobody_is_called_what_it_is_before_it_happens(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    item = await db.pool.fetchval(
        "INSERT INTO news_items (title, link) VALUES ('소식', 'https://www.gimpo.go.kr/n/1') "
        "RETURNING id"
    )
    issue_id = await db.pool.fetchval(
        "INSERT INTO issues (title, news_item_ids) VALUES ('첫 호', $1) RETURNING id", [item]
    )
    await login(client, editor.email)
    csrf = await page_csrf(client, f"/admin/issues/{issue_id}")
    asked = await client.post(f"/admin/issues/{issue_id}/send-now", data={"csrf_token": csrf})
    assert asked.status_code == 200
    said = html.unescape(asked.text)
    assert "지금 구독 중인 사람이 없습니다" in said and "0명에게" not in said
    assert await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", issue_id) == "draft"


async def test_an_import_with_an_unclosed_quote_says_which_lines_in_korean(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin = await make_user(db, "admin")
    await login(client, admin.email)
    csrf = await page_csrf(client, "/admin/subscribers/import")
    said = await finished_import(
        client,
        csrf,
        "명단.csv",
        'email,name\nkim@example.com,김\nlee@example.com,"이영희\npark@example.com,박\n'.encode(),
    )
    assert '따옴표(")가 닫히지 않아 3번째 줄부터 4번째 줄까지가 한 줄로 읽혔습니다' in said
    assert 'id="count-inserted">1<' in said


async def test_an_import_that_cannot_start_says_why_in_korean(
    client: httpx.AsyncClient, db: Database
) -> None:
    admin = await make_user(db, "admin")
    await login(client, admin.email)
    csrf = await page_csrf(client, "/admin/subscribers/import")
    no_address = await finished_import(client, csrf, "명단.csv", "이름,출처\n홍길동,web\n".encode())
    assert "이메일 열이 없습니다" in no_address and "header row" not in no_address
    # The workbook itself instead of a CSV saved from it: said so, not 300 lines of noise.
    workbook = b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 40
    spreadsheet = await finished_import(client, csrf, "명단.xlsx", workbook)
    assert "엑셀" in spreadsheet and "CSV" in spreadsheet
    assert 'id="import-errors"' not in spreadsheet
    assert await db.pool.fetchval("SELECT count(*) FROM subscribers") == 0
