"""The worker loop: claim due mail from PostgreSQL, send it, record the outcome.

Any number of workers on any number of hosts may run; they coordinate only
through the database (``FOR UPDATE SKIP LOCKED`` plus a lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from dataclasses import dataclass, field
from email.utils import parseaddr

from newsletter.db import Database, Record
from newsletter.delivery.smtp import PermanentError, SendError, SmtpConnection
from newsletter.mails import MailContext, UnknownMailKind, render_outbox
from newsletter.settings import Settings
from newsletter.tokens import Tokens

log = logging.getLogger("newsletter.worker")

LEASE_SECONDS = 120.0
IDLE_POLL_SECONDS = 0.5


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: ~10 s, 20 s, 40 s ... capped at 1 h."""
    ceiling = min(10.0 * 2.0 ** max(attempt - 1, 0), 3600.0)
    jitter = random.uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Worker:
    settings: Settings
    database: Database
    worker_id: str = field(default_factory=default_worker_id)

    def __post_init__(self) -> None:
        self.mail_context = MailContext(
            self.settings,
            Tokens(self.settings.secret_key, self.settings.confirm_max_age_seconds),
        )
        self.smtp = SmtpConnection(self.settings.smtp)
        self.envelope_from = (
            self.settings.bounce_address or parseaddr(self.settings.from_address)[1]
        )

    async def run(self, stop: asyncio.Event) -> None:
        log.info("worker %s started", self.worker_id)
        try:
            while not stop.is_set():
                worked = await self.run_once()
                if not worked:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), IDLE_POLL_SECONDS)
        finally:
            await self.smtp.close()
            log.info("worker %s stopped", self.worker_id)

    async def run_once(self) -> int:
        """Send one batch of transactional mail; return how many were claimed."""
        rows = await self.database.fetch(
            "claim_outbox", self.worker_id, self.settings.batch_size, LEASE_SECONDS
        )
        remaining = [row["id"] for row in rows]
        try:
            for row in rows:
                await self._send_outbox(row)
                remaining.pop(0)
        finally:
            if remaining:  # cancelled mid-batch: give the rest back
                await self.database.execute("outbox_release", remaining)
        return len(rows)

    async def _send_outbox(self, row: Record) -> None:
        try:
            message = render_outbox(
                self.mail_context, row["kind"], row["recipient"], row["payload"]
            )
        except (UnknownMailKind, KeyError, ValueError) as exc:
            log.error("outbox %s cannot be rendered: %r", row["id"], exc)
            await self.database.execute("outbox_failed", row["id"], f"render: {exc!r}", None)
            return
        try:
            code, _reply = await self.smtp.send(
                self.envelope_from, row["recipient"], message.as_bytes()
            )
        except SendError as exc:
            await self._record_failure(row, exc)
            return
        await self.database.execute("outbox_sent", row["id"], code, message["Message-ID"])

    async def _record_failure(self, row: Record, exc: SendError) -> None:
        if isinstance(exc, PermanentError) or row["attempts"] >= self.settings.max_attempts:
            log.warning("outbox %s failed for good: %s", row["id"], exc)
            await self.database.execute("outbox_failed", row["id"], str(exc), exc.code)
        else:
            delay = backoff_seconds(row["attempts"])
            log.info("outbox %s retry in %.0fs: %s", row["id"], delay, exc)
            await self.database.execute("outbox_retry", row["id"], delay, str(exc), exc.code)


async def run_worker(
    settings: Settings, *, database: Database | None = None, stop: asyncio.Event | None = None
) -> None:
    owned = database is None
    db = database or await Database.connect(_require_url(settings))
    try:
        await Worker(settings, db).run(stop or asyncio.Event())
    finally:
        if owned:
            await db.close()


def _require_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise RuntimeError("NEWSLETTER_DATABASE_URL is not set")
    return settings.database_url
