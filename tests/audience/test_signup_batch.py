"""Concurrent signups share one statement (newsletter/signup_batch.py) without
weakening any guarantee: one row per address, identical answers, exact limits,
one bad row fails only itself, shutdown answers everyone."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
from litestar import Litestar

from newsletter.audience import signup_batch, subscribers
from newsletter.audience.signup_batch import SignupBatcher, Unavailable
from newsletter.audience.subscribers import Evidence, suppression_hash
from newsletter.core.db import Database
from newsletter.core.errors import RateLimited
from newsletter.core.settings import Settings


async def post(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/subscribe", data={"email": email, "name": "김포", "consent": "on"})


async def count(db: Database, sql: str, *args: object) -> int:
    value: int = await db.pool.fetchval(sql, *args)
    return value


async def test_same_address_at_once_gives_one_row_and_identical_answers(
    client: httpx.AsyncClient, app: Litestar, db: Database
) -> None:
    spellings = ["same@example.com", "Same@example.com", "same@EXAMPLE.com"] * 4
    answers = await asyncio.gather(*(post(client, email) for email in spellings))
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert await count(db, "SELECT count(*) FROM subscribers") == 1
    # The per-address limit (3 a day) holds across the batches the repeats wait for.
    assert await count(db, "SELECT count(*) FROM outbox WHERE kind = 'confirm'") == 3
    assert await count(db, "SELECT count(*) FROM consent_events WHERE kind = 'signup'") == 3
    assert app.state[signup_batch.STATE_KEY].statements >= 4  # one address per statement


async def test_per_ip_limit_is_exact_under_a_burst_from_one_ip(
    client: httpx.AsyncClient, app: Litestar, db: Database, settings: Settings
) -> None:
    assert settings.signup_limit_per_ip_per_hour == 20
    answers = await asyncio.gather(*(post(client, f"burst{i}@example.com") for i in range(35)))
    codes = [a.status_code for a in answers]
    assert codes.count(200) == 20 and codes.count(429) == 15
    assert await count(db, "SELECT count(*) FROM subscribers") == 20
    assert await count(db, "SELECT count(*) FROM outbox WHERE kind = 'confirm'") == 20
    assert app.state[signup_batch.STATE_KEY].statements < 35  # they really were batched
    # The next one, in a new statement, is still refused.
    assert (await post(client, "late@example.com")).status_code == 429


async def test_a_bad_row_fails_only_itself(db: Database, settings: Settings) -> None:
    await db.pool.execute(
        "INSERT INTO suppressions (email_hash, reason) VALUES ($1, 'erased')",
        suppression_hash(db.address_key, "gone@example.com"),
    )
    batcher = SignupBatcher(db)

    async def sign_up(email: str, ip: str) -> None:
        await subscribers.sign_up(
            db,
            settings,
            email=email,
            name=None,
            consent=True,
            evidence=Evidence(ip, "ua", "/subscribe", settings.consent_version),
            batcher=batcher,
        )

    results = await asyncio.gather(
        sign_up("a@example.com", "198.51.100.1"),
        sign_up("b@example.com", "not-an-address"),  # the database refuses this inet
        sign_up("gone@example.com", "198.51.100.3"),  # suppressed: silently skipped
        sign_up("c@example.com", "198.51.100.4"),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None and results[3] is None
    assert isinstance(results[1], asyncpg.DataError)
    emails = {r["email"] for r in await db.pool.fetch("SELECT email FROM subscribers")}
    assert emails == {"a@example.com", "c@example.com"}
    assert await count(db, "SELECT count(*) FROM outbox") == 2
    assert batcher.statements == 5  # the batch, then each row on its own


async def test_shutdown_answers_everyone_waiting(
    client: httpx.AsyncClient, app: Litestar, db: Database, settings: Settings
) -> None:
    batcher = signup_batch.batcher_for(app.state, db)
    evidence = Evidence("198.51.100.1", "ua", "/subscribe", settings.consent_version)

    async def sign_up() -> None:
        await subscribers.sign_up(
            db,
            settings,
            email="wait@example.com",
            name=None,
            consent=True,
            evidence=evidence,
            batcher=batcher,
        )

    waiting = [asyncio.create_task(sign_up()) for _ in range(3)]
    await asyncio.sleep(0)  # queued
    await signup_batch.close(app.state)
    results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 5)
    assert all(r is None or isinstance(r, Unavailable) for r in results)
    after = await post(client, "after@example.com")
    assert after.status_code == 503
    assert after.json()["error"] == "unavailable"


async def test_statements_run_side_by_side_and_each_ip_limit_stays_exact(
    db: Database, settings: Settings
) -> None:
    """Signups arriving while a statement runs go into a second one at once,
    unless their client is in the running one: each client still gets exactly
    its limit accepted (IPv4 and an IPv6 /64 alike)."""
    batcher = SignupBatcher(db)
    running = 0
    most_at_once = 0
    later: list[asyncio.Task[bool]] = []
    run_batch = batcher._run

    def client_ip(client: int, i: int) -> str:
        return ["198.51.100.1", "198.51.100.2", f"2001:db8:1:2::{i + 1:x}"][client]

    async def counting(batch: list[signup_batch._Waiting]) -> None:
        nonlocal running, most_at_once
        running += 1
        most_at_once = max(most_at_once, running)
        try:
            if not later:  # the first statement: the second wave comes while it runs
                later.extend(
                    asyncio.create_task(sign_up(f"c{c}-{i}@example.com", client_ip(c, i)))
                    for i in range(15, 45)
                    for c in range(3)
                )
                for _ in range(20):  # let them queue and a second lane start
                    await asyncio.sleep(0)
            await run_batch(batch)
        finally:
            running -= 1

    batcher._run = counting  # type: ignore[method-assign]

    async def sign_up(email: str, ip: str) -> bool:
        try:
            await subscribers.sign_up(
                db,
                settings,
                email=email,
                name=None,
                consent=True,
                evidence=Evidence(ip, "ua", "/subscribe", settings.consent_version),
                batcher=batcher,
            )
        except RateLimited:
            return False
        return True

    first = await asyncio.gather(
        *(sign_up(f"c0-{i}@example.com", client_ip(0, i)) for i in range(15))
    )
    accepted = [*first, *await asyncio.gather(*later)]
    per_client = [
        sum(accepted[:15]) + sum(accepted[15::3]),
        sum(accepted[16::3]),
        sum(accepted[17::3]),
    ]
    assert per_client == [settings.signup_limit_per_ip_per_hour] * 3
    assert await count(db, "SELECT count(*) FROM outbox WHERE kind = 'confirm'") == 60
    assert most_at_once == signup_batch.IN_FLIGHT
