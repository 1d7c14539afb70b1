"""Image bombs against the console served by uvicorn on a real socket (issue
24.6): a small file declaring a huge picture is refused by its declared size
before any decoding, a big camera JPEG is decoded at a reduced scale, and the
server's memory (the resident set of this process, which runs the server)
stays bounded while six arrive at once and comes back afterwards."""

from __future__ import annotations

import asyncio
import gc
import io
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psutil
from PIL import Image

from newsletter.core.db import Database
from tests.support.console import login, make_user, page_csrf
from tests.web.console.conftest import Console

MB = 1024 * 1024


def png_bomb(width: int = 7000, height: int = 7000) -> bytes:
    """An RGBA PNG of transparent pixels, written row by row so that making
    it costs the test no memory: about 190 KB declaring 196 MB of pixels."""
    row = b"\x00" + bytes(width * 4)  # filter byte, then the pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def big_camera_jpeg() -> bytes:
    """A 7000 x 7000 JPEG (49 MP, under the JPEG limit): decoded whole it
    would be 147 MB; it is made in grey to keep the test's own memory low."""
    image = Image.new("L", (7000, 7000), 128)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=70)
    del image
    return out.getvalue()


@contextmanager
def peak_rss() -> Iterator[list[int]]:
    """The highest resident set seen while the block runs, sampled often."""
    process = psutil.Process()
    seen = [process.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            seen.append(process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        stop.set()
        sampler.join()


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


async def upload(http: httpx.AsyncClient, csrf: str, name: str, data: bytes) -> httpx.Response:
    return await http.post(
        "/admin/news",
        data={
            "csrf_token": csrf,
            "title": f"사진 {name}",
            "link": f"https://www.gimpo.go.kr/{name}",
            "image_alt": f"사진 {name}",
        },
        files={"image": (name, data, "image/png" if name.endswith(".png") else "image/jpeg")},
    )


async def test_six_image_bombs_at_once_are_refused_without_the_memory(console: Console) -> None:
    editor = await make_user(console.db, "editor")
    bomb = png_bomb()
    assert len(bomb) < 300 * 1024
    async with httpx.AsyncClient(base_url=console.base, timeout=120) as http:
        await login(http, editor.email)
        csrf = await page_csrf(http, "/admin/news/new")
        small = io.BytesIO()
        Image.new("RGB", (800, 600), (20, 90, 160)).save(small, format="PNG")
        warm = await upload(http, csrf, "warm-up.png", small.getvalue())  # imports, pools
        assert warm.status_code == 303, warm.text
        before = rss()
        with peak_rss() as seen:
            answers = await asyncio.gather(
                *(upload(http, csrf, f"bomb-{n}.png", bomb) for n in range(6))
            )
        after = rss()
        print(
            f"\nsix PNG bombs: RSS before {before / MB:.0f} MB, peak {max(seen) / MB:.0f} MB, "
            f"after {after / MB:.0f} MB"
        )
        for answer in answers:
            assert answer.status_code == 422
            assert 'id="image-error"' in answer.text
            assert "이미지가 너무 큽니다 (가로 7,000 × 세로 7,000 픽셀)" in answer.text
        # Refused from the header: nothing near the 196 MB each would decode to.
        assert max(seen) - before < 100 * MB
        assert after - before < 50 * MB
    assert await console.db.pool.fetchval("SELECT count(*) FROM media") == 1  # the warm-up


async def test_six_big_camera_photos_at_once_are_decoded_small(console: Console) -> None:
    editor = await make_user(console.db, "editor")
    photo = big_camera_jpeg()
    async with httpx.AsyncClient(base_url=console.base, timeout=120) as http:
        await login(http, editor.email)
        csrf = await page_csrf(http, "/admin/news/new")
        before = rss()
        with peak_rss() as seen:
            answers = await asyncio.gather(
                *(upload(http, csrf, f"camera-{n}.jpg", photo) for n in range(6))
            )
        after = rss()
        print(
            f"\nsix 49 MP JPEGs: RSS before {before / MB:.0f} MB, peak {max(seen) / MB:.0f} MB, "
            f"after {after / MB:.0f} MB"
        )
        assert [a.status_code for a in answers] == [303] * 6
        # Whole, each would be 147 MB decoded (and as much again per copy).
        assert max(seen) - before < 200 * MB
        assert after - before < 100 * MB
    sizes = await console.db.pool.fetch("SELECT DISTINCT width, height FROM media")
    assert [(r["width"], r["height"]) for r in sizes] == [(1200, 1200)]


async def test_each_declared_limit_is_named_in_korean(
    client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    csrf = await page_csrf(client, "/admin/news/new")
    cases = {
        # one side too long
        (13_000, 100): ("이미지가 너무 큽니다 (가로 13,000 × 세로 100 픽셀)", "1,600만 화소"),
        # too many pixels for a format decoded whole
        (4_100, 4_000): ("이미지가 너무 큽니다 (가로 4,100 × 세로 4,000 픽셀)", "1,600만 화소"),
        # past Pillow's own guard, which refuses while reading the header
        (8_000, 8_000): ("이미지가 너무 큽니다.", "5,000만 화소"),
    }
    for (width, height), (message, limit) in cases.items():
        answer = await upload(client, csrf, f"wide-{width}.png", png_bomb(width, height))
        assert answer.status_code == 422, (width, height)
        assert message in answer.text and limit in answer.text, (width, height)
    assert await db.pool.fetchval("SELECT count(*) FROM media") == 0
