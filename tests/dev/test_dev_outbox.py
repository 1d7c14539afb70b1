"""`make dev`'s capture server and /dev/outbox: a newcomer reads the mail in the browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from newsletter.core.db import Database
from newsletter.core.settings import Settings, SmtpTarget
from newsletter.dev.capture import start_capture_server
from newsletter.dev.server import create_dev_app
from tests.conftest import drain, free_port


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    port = free_port()
    server: Any = start_capture_server(tmp_path / "mail", port=port)
    yield tmp_path, port
    server.stop()


async def test_newcomer_confirms_through_the_captured_mail(
    db: Database, settings: Settings, capture: tuple[Path, int]
) -> None:
    dev_dir, port = capture
    dev = settings.replace(dev=True, dev_dir=dev_dir, smtp=SmtpTarget("127.0.0.1", port))
    transport = httpx.ASGITransport(app=create_dev_app(dev, db))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=dev.base_url) as browser:
        empty = await browser.get("/dev/outbox")
        assert empty.status_code == 200
        assert "No mail yet" in empty.text

        await browser.post("/subscribe", data={"email": "new@example.com", "consent": "on"})
        await drain(dev, db)

        listing = await browser.get("/dev/outbox")
        assert "구독 확인을 부탁드립니다" in listing.text
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d KST", listing.text)
        [key] = re.findall(r'href="/dev/outbox/([^"]+)"', listing.text)
        message = await browser.get(f"/dev/outbox/{key}")
        assert message.status_code == 200
        confirm = re.search(
            r'href="https://newsletter\.gimpo\.go\.kr(/confirm\?token=[^"]+)"', message.text
        )
        assert confirm, "the confirmation link is clickable in /dev/outbox"

        button = await browser.get(confirm.group(1))
        assert "구독 확인" in button.text
        token = confirm.group(1).split("token=")[1]
        done = await browser.post("/confirm", data={"token": token})
        assert "구독이 완료되었습니다" in done.text

        missing = await browser.get("/dev/outbox/nope")
        assert missing.status_code == 404


async def test_outbox_pages_exist_only_in_dev_mode(client: httpx.AsyncClient) -> None:
    response = await client.get("/dev/outbox")
    assert response.status_code == 404
