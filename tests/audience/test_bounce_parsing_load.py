"""A hostile bounce report cannot stall the web process: reading it is bounded
and runs off the event loop, so residents' pages keep answering meanwhile."""

from __future__ import annotations

import asyncio
import time

import httpx

from newsletter.core.db import Database
from tests.conftest import bearer
from tests.support.processes import serving

# Lines the format detectors scan with patterns that are quadratic in a
# line's length, a 5 MB run that made the old VERP pattern backtrack for
# hours, then 5 MB of near-misses of the signed VERP id.
PATHOLOGICAL = (
    b"From: MAILER-DAEMON@mx.example.com\r\nSubject: Undeliverable\r\n"
    b"Content-Type: text/plain\r\n\r\n"
    b"did not reach the following recipient\r\n"
    + (b"<a" * 499 + b"\r\n") * 140
    + b"a" * 5_000_000
    + b"\r\n"
    + b"+123456789012345678-abcdefg " * 180_000
)


async def test_a_10_mb_pathological_bounce_leaves_the_signup_page_fast(
    database_url: str, db: Database
) -> None:
    assert len(PATHOLOGICAL) > 10_000_000
    headers = {**await bearer(db, "ops"), "content-type": "message/rfc822"}
    async with (
        serving(database_url, BOUNCE_MAX_BYTES=str(16 * 1024 * 1024)) as served,
        httpx.AsyncClient(base_url=served.base_url, timeout=120) as http,
    ):
        assert (await http.get("/subscribe")).status_code == 200  # warm
        posting = asyncio.create_task(
            http.post("/api/v1/bounces", content=PATHOLOGICAL, headers=headers)
        )
        samples: list[float] = []
        while not posting.done():
            started = time.perf_counter()
            page = await http.get("/subscribe")
            samples.append(time.perf_counter() - started)
            assert page.status_code == 200
        answer = await posting
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "ignored"  # no failed recipient in it
    # Enough requests overlapped the parse to speak of a p99 at all.
    assert len(samples) >= 20, samples
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    assert p99 < 0.1, f"p99 {p99 * 1000:.0f} ms over {len(samples)} requests"
