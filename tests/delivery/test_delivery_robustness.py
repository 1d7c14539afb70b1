"""Delivery when the relay misbehaves: refusals before any recipient, long
outages for transactional mail, one global rate limit for both kinds of mail,
a recipient stuck on 421, and the per-recipient List-Unsubscribe mailto.

Real PostgreSQL and real aiosmtpd servers throughout."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dkim
import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from newsletter.audience import bounces
from newsletter.core.db import Database
from newsletter.core.settings import Settings, SmtpTarget
from newsletter.core.signing import unsubscribe_mailto
from newsletter.delivery.claim import Outcomes, delivery_waits
from newsletter.delivery.message import IssueMessage
from newsletter.delivery.outcomes import Failure
from newsletter.delivery.smtp import ServerTrouble
from newsletter.delivery.worker import Worker
from newsletter.mail import outbox
from tests.audience.test_mailto_unsubscribe import reply_to
from tests.conftest import RecordingHandler, SmtpServer, free_port, make_settings
from tests.delivery.test_dkim import make_key
from tests.support.delivery import (
    add_subscribers,
    address,
    fast_worker,
    handler_of,
    issue_status,
    max_per_window,
    running,
    start_issue,
    status_counts,
    timed_smtp,
    wait_for_status,
)

__all__ = ["timed_smtp"]  # fixture

# --- a relay that can refuse us before any recipient -------------------------


@dataclass
class RelayHandler(RecordingHandler):
    """``greeting``: say this instead of 220; ``accept_login``: AUTH verdict."""

    greeting: str | None = None
    accept_login: bool = True
    logins: int = 0

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        self.logins += 1
        return AuthResult(success=self.accept_login, handled=False)

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        with self.lock:
            for mail in self.messages:
                for rcpt in mail.rcpt_tos:
                    counted[rcpt.lower()] = counted.get(rcpt.lower(), 0) + 1
        return counted


class GreetingSMTP(SMTP):
    """aiosmtpd, except the first line can be a refusal (``RelayHandler.greeting``)."""

    greeted = False

    async def push(self, status: Any) -> None:
        if not self.greeted:
            self.greeted = True
            greeting = getattr(self.event_handler, "greeting", None)
            if greeting:
                status = greeting
        await super().push(status)


class RelayController(Controller):
    def factory(self) -> SMTP:
        return GreetingSMTP(self.handler, **self.SMTP_kwargs)


@dataclass
class Relay(SmtpServer):
    def start(self) -> None:
        assert isinstance(self.handler, RelayHandler)
        self.controller = RelayController(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            auth_require_tls=False,
            authenticator=self.handler.authenticate,
        )
        self.controller.start()

    @property
    def relay(self) -> RelayHandler:
        assert isinstance(self.handler, RelayHandler)
        return self.handler


@pytest.fixture
def relay() -> Iterator[Relay]:
    server = Relay(port=free_port(), handler=RelayHandler())
    server.start()
    yield server
    server.stop()


async def wait_until(db: Database, query: str, *args: object, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await db.pool.fetchval(query, *args):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still false after {timeout}s: {query}")


async def nobody_bounced(db: Database) -> None:
    assert await db.pool.fetchval("SELECT count(*) FROM bounce_events") == 0
    statuses = await db.pool.fetch("SELECT DISTINCT status FROM subscribers")
    assert [r["status"] for r in statuses] == ["active"]
    assert await db.pool.fetchval("SELECT max(soft_bounces) FROM subscribers") == 0


async def refused_then_fixed(db: Database, settings: Settings, relay: Relay, fix: Any) -> None:
    await add_subscribers(db, 10)
    issue_id = await start_issue(db, settings)
    async with running(fast_worker(settings, db, "one")):
        # Every delivery has met the refusal and been put back at least once.
        await wait_until(
            db, "SELECT bool_and(deferrals > 0) FROM deliveries WHERE issue_id = $1", issue_id
        )
        counts = await status_counts(db, issue_id)
        assert "failed" not in counts and "bounced" not in counts
        assert await issue_status(db, issue_id) == "sending"
        await nobody_bounced(db)
        # Ops can see why nothing goes out.
        errors = await db.pool.fetch(
            "SELECT DISTINCT last_error FROM deliveries WHERE issue_id = $1 AND deferrals > 0",
            issue_id,
        )
        assert errors and all("relay refused" in r["last_error"] for r in errors), errors
        # No attempt was spent on the relay's refusal.
        assert await db.pool.fetchval("SELECT max(attempts) FROM deliveries") <= 1
        fix()
        await wait_for_status(db, issue_id, "sent", timeout=60)
    counts_by_rcpt = relay.relay.counts()
    assert counts_by_rcpt == {address(n): 1 for n in range(1, 11)}
    await nobody_bounced(db)


async def test_relay_greeting_550_fails_and_suppresses_nobody(
    database_url: str, db: Database, relay: Relay
) -> None:
    relay.relay.greeting = "550 5.7.1 Access denied"
    settings = make_settings(database_url, relay.target, smtp_connections=3)

    def fix() -> None:
        relay.relay.greeting = None

    await refused_then_fixed(db, settings, relay, fix)


async def test_relay_refusing_auth_fails_and_suppresses_nobody(
    database_url: str, db: Database, relay: Relay
) -> None:
    relay.relay.accept_login = False
    target = SmtpTarget(host="127.0.0.1", port=relay.port, username="news", password="wrong")
    settings = make_settings(database_url, relay.target, smtp_connections=3).replace(smtp=target)

    def fix() -> None:
        relay.relay.accept_login = True

    await refused_then_fixed(db, settings, relay, fix)
    assert relay.relay.logins > 1


# --- transactional mail through a long outage ---------------------------------

SIGNUP = {"email": "resident@example.com", "name": "김포 시민", "consent": "on"}


async def outbox_round(settings: Settings, db: Database) -> None:
    worker = Worker(settings, db, worker_id="test:outbox", reconnect_base_seconds=0.01)
    try:
        await worker.run_once()
    finally:
        await worker.smtp.close()
    await db.pool.execute("UPDATE outbox SET next_attempt_at = now() WHERE status = 'queued'")


async def test_outbox_survives_an_outage_longer_than_max_attempts(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    settings = settings.replace(max_attempts=2)
    smtp_server.stop()
    assert (await client.post("/subscribe", data=SIGNUP)).status_code == 200
    for _ in range(settings.max_attempts + 3):
        await outbox_round(settings, db)
    row = await db.pool.fetchrow("SELECT status, attempts, deferrals, last_error FROM outbox")
    assert row is not None
    assert row["status"] == "queued", row
    assert row["attempts"] == 0  # the outage is not the recipient's doing
    assert row["deferrals"] == settings.max_attempts + 3
    assert row["last_error"]

    smtp_server.start()
    await outbox_round(settings, db)
    await outbox_round(settings, db)
    assert len(smtp_server.handler.to(SIGNUP["email"])) == 1
    assert await db.pool.fetchval("SELECT status FROM outbox") == "sent"


async def test_outbox_gives_up_after_the_confirm_link_lifetime(
    client: httpx.AsyncClient, db: Database, settings: Settings, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    await client.post("/subscribe", data=SIGNUP)
    await db.pool.execute(
        "UPDATE outbox SET created_at = now() - make_interval(secs => $1)",
        float(settings.confirm_max_age_seconds + 60),
    )
    await outbox_round(settings, db)
    row = await db.pool.fetchrow("SELECT status, attempts FROM outbox")
    assert row is not None and row["status"] == "failed"


# --- one rate limit for transactional and bulk mail ---------------------------


async def test_rate_limit_covers_outbox_and_bulk_together(
    database_url: str, db: Database, timed_smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, timed_smtp.target, rate_per_second=20.0)
    await add_subscribers(db, 30)
    issue_id = await start_issue(db, settings)
    async with db.transaction() as conn:
        for n in range(1, 31):
            await outbox.enqueue(
                conn, "confirm", address(n, "o"), {"subscriber_id": n}, subscriber_id=n, priority=0
            )
    async with running(fast_worker(settings, db, "one")):
        await wait_for_status(db, issue_id, "sent", timeout=60)
        await wait_until(db, "SELECT bool_and(status = 'sent') FROM outbox")
    handler = handler_of(timed_smtp)
    assert len(handler.arrivals) == 60
    # At most rate + the bucket's burst (1 token at 20/s) in any one second.
    assert max_per_window(handler.arrivals) <= 21
    # Transactional mail still went first.
    first = [m.rcpt_tos[0] for m in handler.messages[:30]]
    assert all(r.startswith("o") for r in first), first


# --- a recipient stuck on 421 -------------------------------------------------


async def test_recipient_stuck_on_421_is_failed_after_max_age_and_issue_finishes(
    database_url: str, db: Database, smtp_server: SmtpServer
) -> None:
    settings = make_settings(database_url, smtp_server.target, smtp_connections=2)
    await add_subscribers(db, 5)
    stuck = address(3)
    smtp_server.handler.rcpt_reply[stuck] = "421 4.7.0 Try again later"
    issue_id = await start_issue(db, settings)
    worker = fast_worker(settings, db, "one", delivery_max_age_seconds=1.0)
    async with running(worker):
        await wait_for_status(db, issue_id, "sent", timeout=30)
    assert await status_counts(db, issue_id) == {"sent": 4, "failed": 1}
    row = await db.pool.fetchrow(
        "SELECT d.attempts, d.deferrals, d.last_error, s.status, s.soft_bounces"
        " FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE s.email = $1",
        stuck,
    )
    assert row is not None
    # A push-back: tried again at once each time, never an attempt nor a deferral.
    assert row["deferrals"] == 0 and row["attempts"] == 0
    assert "maximum age" in row["last_error"] and "421" in row["last_error"]
    # Not a bounce: the subscriber is untouched and gets the next issue.
    assert (row["status"], row["soft_bounces"]) == ("active", 0)
    assert await db.pool.fetchval("SELECT count(*) FROM bounce_events") == 0


async def test_server_trouble_backs_off_exponentially_with_a_cap(
    database_url: str, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 12)
    issue_id = await start_issue(db, settings)
    await db.pool.execute(
        "UPDATE deliveries SET status = 'sending', worker = 'test:w', attempts = 1,"
        " deferrals = subscriber_id - 1 WHERE issue_id = $1",
        issue_id,
    )
    base, cap = 30.0, 1800.0
    outcomes = Outcomes(settings.max_attempts, delivery_waits(defer_base=base), worker_id="test:w")
    rows = await db.pool.fetch(
        "SELECT id, subscriber_id, deferrals FROM deliveries WHERE issue_id = $1", issue_id
    )
    trouble = ServerTrouble(421, "busy")
    outcomes.errors = [
        Failure(r["id"], r["subscriber_id"], 1, r["deferrals"], trouble) for r in rows
    ]
    await outcomes.flush(db)
    for row in rows:
        delay = await db.pool.fetchval(
            "SELECT extract(epoch FROM next_attempt_at - now()) FROM deliveries WHERE id = $1",
            row["id"],
        )
        ceiling = min(cap, base * 2 ** row["deferrals"])
        assert ceiling / 2 - 1 <= delay <= ceiling + 1, (row["deferrals"], delay)
    assert await status_counts(db, issue_id) == {"queued": 12}
    assert await db.pool.fetchval("SELECT min(deferrals) FROM deliveries") == 1
    assert await db.pool.fetchval("SELECT max(attempts) FROM deliveries") == 0


# --- List-Unsubscribe mailto per recipient -------------------------------------


def raw_header(data: bytes, name: bytes) -> bytes:
    """The header's physical line(s) as sent, continuation lines included."""
    head = data.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    for index, line in enumerate(lines):
        if line.lower().startswith(name.lower() + b":"):
            folded = [line]
            for more in lines[index + 1 :]:
                if more[:1] not in (b" ", b"\t"):
                    break
                folded.append(more)
            return b"\r\n".join(folded)
    raise AssertionError(f"no {name!r} header")


async def test_bulk_mailto_names_the_recipient_and_a_reply_unsubscribes_them(
    database_url: str, db: Database, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    private, public = make_key(tmp_path)
    settings = make_settings(
        database_url,
        smtp_server.target,
        bounce_address="bounce@gimpo.go.kr",
        dkim_selector="news2026",
        dkim_private_key=private,
    )
    await add_subscribers(db, 3)
    issue_id = await start_issue(db, settings)
    async with running(fast_worker(settings, db, "one")):
        await wait_for_status(db, issue_id, "sent", timeout=30)

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"news2026._domainkey.gimpo.go.kr." else b""

    mailtos: dict[int, str] = {}
    for n in (1, 2, 3):
        row = await db.fetchrow("get_subscriber_by_email", address(n))
        assert row is not None
        [mail] = smtp_server.handler.to(address(n))
        line = raw_header(mail.data, b"List-Unsubscribe")
        assert b"\r\n" not in line, "List-Unsubscribe is folded"
        assert line.isascii() and len(line) <= 998
        found = re.findall(r"<(mailto:[^>]+)>", line.decode())
        assert found == [unsubscribe_mailto(settings, row["public_id"])]
        mailtos[row["id"]] = found[0]
        assert dkim.verify(mail.data, dnsfunc=dns)
        # The signature covers the mailto: pointing it at someone else breaks it.
        other = unsubscribe_mailto(settings, row["id"] + 100).removeprefix("mailto:")
        forged = mail.data.replace(found[0].removeprefix("mailto:").encode(), other.encode())
        assert forged != mail.data and not dkim.verify(forged, dnsfunc=dns)
    assert len(set(mailtos.values())) == 3

    leaver = next(iter(mailtos))
    result = await bounces.process(db, settings, reply_to(mailtos[leaver]))
    assert result.unsubscribed == [leaver]
    rows = await db.pool.fetch("SELECT id, status FROM subscribers")
    statuses = {r["id"]: r["status"] for r in rows}
    assert statuses == {sid: "unsubscribed" if sid == leaver else "active" for sid in mailtos}


def test_mailto_spliced_per_issue_equals_the_one_bounces_recognise() -> None:
    for bounce in (None, "bounce@gimpo.go.kr", "bounce+tag@mail.gimpo.go.kr"):
        settings = make_settings(
            "postgresql://unused/x", SmtpTarget("127.0.0.1", 25), bounce_address=bounce
        )
        message = IssueMessage(settings, issue_id=1, subject="s", html_body="h", text_body="t")
        for public_id in ("0123456789abcdef", "ffffffffffffffff", "00000000000000a1"):
            expected = unsubscribe_mailto(settings, public_id)
            assert message.unsubscribe_mailto(public_id) == expected
