"""The signup-limit log holds client IPs: the worker keeps it to one day."""

from __future__ import annotations

import httpx
from litestar import Litestar

from newsletter.app import create_app
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.delivery.worker import Worker


async def test_worker_prunes_limit_hits_older_than_a_day(db: Database, settings: Settings) -> None:
    await db.pool.execute(
        "INSERT INTO signup_hits (bucket, at) VALUES "
        "('ip:198.51.100.1', now() - interval '25 hours'), ('ip:198.51.100.2', now())"
    )
    worker = Worker(settings, db)
    assert any(job.name == "prune signup limit log" for job in worker.chores.jobs)
    await worker.chores.prune_signup_hits()
    left = await db.pool.fetch("SELECT bucket FROM signup_hits")
    assert [row["bucket"] for row in left] == ["ip:198.51.100.2"]


async def _signup_from(app: Litestar, ip: str, email: str) -> int:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://x") as http:
        response = await http.post("/subscribe", data={"email": email, "consent": "on"})
        return response.status_code


async def test_the_per_ip_limit_counts_an_ipv6_64_as_one_client(
    db: Database, settings: Settings
) -> None:
    """A home or a phone gets a whole /64 and may use any address in it."""
    app = create_app(settings.replace(signup_limit_per_ip_per_hour=3), db)
    answers = [
        await _signup_from(app, f"2001:db8:1234:5678::{n:x}", f"v6-{n}@example.com")
        for n in range(1, 5)
    ]
    assert answers == [200, 200, 200, 429]
    # Another /64 is another client; an IPv4-mapped address is its IPv4 one.
    assert await _signup_from(app, "2001:db8:1234:5679::1", "other@example.com") == 200
    for n in range(3):
        assert await _signup_from(app, "::ffff:198.51.100.9", f"m{n}@example.com") == 200
    assert await _signup_from(app, "198.51.100.9", "v4@example.com") == 429
