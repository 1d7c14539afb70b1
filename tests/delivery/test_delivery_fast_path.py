"""The worker at high rates: the next chunk is prepared (rate tokens, send-time
check) while the current one is queued, and outcomes are written in the
background. Pause and unsubscribe must still hold, and nobody is sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.audience import subscribers
from newsletter.audience.subscribers import Evidence
from newsletter.core.db import Database
from newsletter.core.tokens import SubscriberRef
from newsletter.delivery.issue_batches import CHUNK
from newsletter.editorial import issues
from tests.conftest import SmtpServer, free_port, make_settings
from tests.support.delivery import (
    EDITOR,
    TimedHandler,
    add_subscribers,
    address,
    assert_each_got_one,
    fast_worker,
    running,
    start_issue,
    status_counts,
    wait_for_status,
)
from tests.support.processes import kill_after, spawn_worker, worker_env

RATE = 1_000_000.0  # "off": the bucket's burst holds many chunks, so the worker works ahead


@dataclass
class SlowHandler(TimedHandler):
    """A pipelining server that takes a moment per message, so a send lasts a while."""

    delay: float = 0.003

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(port=free_port(), handler=SlowHandler(pipelining=True))
    server.start()
    yield server
    server.stop()


def handler(server: SmtpServer) -> SlowHandler:
    assert isinstance(server.handler, SlowHandler)
    return server.handler


def test_the_fast_path_is_what_these_tests_run() -> None:
    # IssueBatches._send_batch works ahead when the burst (5 % of the rate) holds two chunks.
    assert RATE * 0.05 >= 2 * CHUNK


async def test_pause_at_full_speed_stops_within_the_prepared_chunks_then_resume(
    database_url: str, db: Database, slow_smtp: SmtpServer
) -> None:
    settings = make_settings(
        database_url,
        slow_smtp.target,
        rate_per_second=RATE,
        batch_size=300,
        smtp_connections=4,
    )
    await add_subscribers(db, 1200)
    issue_id = await start_issue(db, settings)
    h = handler(slow_smtp)
    async with running(fast_worker(settings, db, "one")):
        while len(h.messages) < 150:
            await asyncio.sleep(0.01)
        await issues.pause(db, EDITOR, issue_id)
        at_pause = len(h.messages)
        await asyncio.sleep(0.5)  # what was checked before the pause may finish
        settled = len(h.messages)
        # At most the queue, the chunk prepared ahead, and one message per connection.
        assert settled - at_pause <= 2 * CHUNK + 2 * 4 + CHUNK
        await asyncio.sleep(0.5)
        assert len(h.messages) == settled, "mail kept going out while paused"
        counts = await status_counts(db, issue_id)
        assert counts.get("sending", 0) == 0, "a paused issue's batch was not released"
        assert counts["sent"] == settled
        await issues.resume(db, EDITOR, issue_id)
        await wait_for_status(db, issue_id, "sent", timeout=60)
    assert_each_got_one(h, 1200)
    assert await status_counts(db, issue_id) == {"sent": 1200}


async def test_unsubscribe_at_full_speed_reaches_messages_not_yet_checked(
    database_url: str, db: Database, slow_smtp: SmtpServer
) -> None:
    settings = make_settings(
        database_url,
        slow_smtp.target,
        rate_per_second=RATE,
        batch_size=1000,
        smtp_connections=4,
    )
    await add_subscribers(db, 1000)
    leaver = address(900)
    issue_id = await start_issue(db, settings)
    h = handler(slow_smtp)
    async with running(fast_worker(settings, db, "one")):
        while len(h.messages) < 50:
            await asyncio.sleep(0.01)
        row = await db.fetchrow("get_subscriber_by_email", leaver)
        assert row is not None
        await subscribers.unsubscribe(
            db,
            ref=SubscriberRef(public_id=row["public_id"]),
            evidence=Evidence(None, None, "test", settings.consent_version),
        )
        await wait_for_status(db, issue_id, "sent", timeout=60)
    issue_mail = [m for m in h.to(leaver) if "수신 거부 처리" not in str(m.message["Subject"])]
    assert issue_mail == []
    assert await status_counts(db, issue_id) == {"sent": 999, "skipped": 1}
    per_rcpt = h.counts()
    assert set(per_rcpt.values()) == {1}


async def test_sigkill_at_full_speed_resends_less_than_a_batch(
    database_url: str, db: Database, slow_smtp: SmtpServer
) -> None:
    env = worker_env(
        database_url,
        slow_smtp.target,
        RATE_PER_SECOND=str(RATE),
        BATCH_SIZE="200",
        SMTP_CONNECTIONS="4",
    )
    settings = make_settings(database_url, slow_smtp.target, rate_per_second=RATE)
    await add_subscribers(db, 1500)
    issue_id = await start_issue(db, settings)
    h = handler(slow_smtp)
    process = await spawn_worker(env)
    await kill_after(process, slow_smtp, 400)
    assert (await status_counts(db, issue_id)).get("sent", 0) < 1500, "finished before the kill"

    async with running(fast_worker(settings, db, "survivor")):
        await wait_for_status(db, issue_id, "sent", timeout=60)

    per_rcpt = h.counts()
    assert len(per_rcpt) == 1500, "somebody was skipped"
    duplicates = sum(n - 1 for n in per_rcpt.values())
    assert duplicates < 200, f"{duplicates} duplicates, a batch or more"
    assert await status_counts(db, issue_id) == {"sent": 1500}
