"""Helpers for the delivery tests: subscribers in bulk, a started issue, SMTP
servers that record arrival times or offer PIPELINING, running workers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.delivery.worker import Worker
from newsletter.editorial import issues
from newsletter.ops.audit import Actor
from tests.conftest import RecordingHandler, SmtpServer, free_port

EDITOR = Actor(name="test-editor", role="editor")


@dataclass
class TimedHandler(RecordingHandler):
    """Records when each message arrived; can offer PIPELINING in EHLO."""

    arrivals: list[float] = field(default_factory=list)
    pipelining: bool = False

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        extra = ["250-PIPELINING"] if self.pipelining else []
        return [*responses[:-1], *extra, responses[-1]]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            with self.lock:
                self.arrivals.append(time.monotonic())
        return reply

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        with self.lock:
            for mail in self.messages:
                for rcpt in mail.rcpt_tos:
                    counted[rcpt.lower()] = counted.get(rcpt.lower(), 0) + 1
        return counted


@pytest.fixture
def timed_smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(port=free_port(), handler=TimedHandler(pipelining=True))
    server.start()
    yield server
    server.stop()


def handler_of(server: SmtpServer) -> TimedHandler:
    assert isinstance(server.handler, TimedHandler)
    return server.handler


async def add_subscribers(
    db: Database, count: int, *, prefix: str = "r", name: str | None = "홍길동"
) -> None:
    """``count`` active subscribers r00001@example.com … in one statement."""
    await db.pool.execute(
        """
        INSERT INTO subscribers (email, name, status, confirmed_at, last_consent_at)
        SELECT $2 || lpad(g::text, 5, '0') || '@example.com', $3, 'active', now(), now()
        FROM generate_series(1, $1) g
        """,
        count,
        prefix,
        name,
    )


def address(n: int, prefix: str = "r") -> str:
    return f"{prefix}{n:05d}@example.com"


async def start_issue(
    db: Database, settings: Settings, *, title: str = "11월 김포시 소식", body: str = ""
) -> int:
    """A real issue: one news item, created and started through issues.py."""
    item_id = await db.pool.fetchval(
        "INSERT INTO news_items (title, summary, body) VALUES ($1, $2, $3) RETURNING id",
        "한강 야간 축제 개최",
        "김포 한강 야간 축제가 열립니다.",
        body or "<p>시민 여러분을 초대합니다.</p>",
    )
    row = await issues.create(db, EDITOR, issues.IssueFields(title, "안녕하세요.", [item_id]))
    issue_id: int = row["id"]
    async with db.transaction() as conn:
        await issues.start_issue(conn, issue_id, settings)
    return issue_id


async def status_counts(db: Database, issue_id: int) -> dict[str, int]:
    rows = await db.pool.fetch(
        "SELECT status, count(*) AS n FROM deliveries WHERE issue_id = $1 GROUP BY status",
        issue_id,
    )
    return {r["status"]: r["n"] for r in rows}


async def issue_status(db: Database, issue_id: int) -> str:
    status: str = await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", issue_id)
    return status


async def wait_for_status(
    db: Database,
    issue_id: int,
    wanted: str = "sent",
    timeout: float = 60.0,  # noqa: ASYNC109
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await issue_status(db, issue_id) == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(
        f"issue {issue_id} not {wanted} after {timeout}s: {await status_counts(db, issue_id)}"
    )


def fast_worker(settings: Settings, db: Database, name: str, **overrides: Any) -> Worker:
    options: dict[str, Any] = {
        "lease_seconds": 5.0,
        "retry_base_seconds": 0.2,
        "reconnect_base_seconds": 0.05,
        "defer_seconds": 0.3,
    }
    options.update(overrides)
    return Worker(settings, db, worker_id=f"test:{name}", **options)


@contextlib.asynccontextmanager
async def running(*workers: Worker) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield tasks
    finally:
        for worker in workers:
            worker.stop.set()
        await asyncio.gather(*tasks)


def max_per_window(arrivals: list[float], window: float = 1.0) -> int:
    times = sorted(arrivals)
    best = 0
    start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def assert_each_got_one(handler: TimedHandler, recipients: int) -> None:
    """Nobody missing, nobody with a second copy (counted by RCPT at the server)."""
    counts = handler.counts()
    assert len(counts) == recipients, "somebody was skipped"
    assert set(counts.values()) == {1}, "somebody got a duplicate"


def assert_nobody_skipped(
    handler: TimedHandler, recipients: int, *, duplicates_at_most: int, what: str
) -> None:
    """Nobody missing, at most ``duplicates_at_most`` second copies in all
    (``what`` that many stands for, e.g. "one flush group")."""
    counts = handler.counts()
    assert len(counts) == recipients, "somebody was skipped"
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= duplicates_at_most, f"{duplicates} duplicates, more than {what}"
