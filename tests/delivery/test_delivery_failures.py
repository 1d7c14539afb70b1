"""One verdict for a failed send, for issue deliveries and transactional mail
alike: a relay pushing back gets the mail again at once without spending an
attempt (a few times in a row; then that one mail waits, so a greylisted
recipient cannot hold the queue); an ordinary temporary refusal spends one
and waits.

Real PostgreSQL and a real aiosmtpd server; each test drives whole worker
rounds (``Worker.run_once``), so "the next round" is literal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.core.db import Database, Record
from newsletter.core.settings import Settings
from newsletter.delivery import claim, failures
from newsletter.delivery.failures import Verdict
from newsletter.delivery.outcomes import Failure
from newsletter.delivery.smtp import (
    PermanentError,
    PushBack,
    RelayRefused,
    SendError,
    ServerTrouble,
    TransientError,
)
from newsletter.delivery.worker import Worker
from newsletter.mail import outbox
from tests.conftest import RecordingHandler, SmtpServer, free_port, make_settings
from tests.support.delivery import add_subscribers, address, start_issue, status_counts

PUSH_BACKS = ["450 4.7.1 Error: too much mail from 127.0.0.1", "421 4.7.0 Try again later"]
ORDINARY = "451 4.3.0 Temporary local problem"


# Refusals in a row; the pool does not retry a push-back inline, each one
# reaches the queue (one per round), so the last round delivers. As many as
# may come back at once.
REFUSALS = failures.FREE_PUSH_BACKS
FOREVER = 10**6
GREYLISTED = "450 4.7.1 <{rcpt}>: Recipient address rejected: Greylisted, try again later"


@dataclass
class RefusingHandler(RecordingHandler):
    """Answers RCPT for an address with its reply ``REFUSALS`` times, then accepts it."""

    refusing: dict[str, str] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    times: int = REFUSALS

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.refusing.get(address.lower())
        if reply:
            self.refused.append(address.lower())
            if self.refused.count(address.lower()) >= self.times:
                del self.refusing[address.lower()]
            return reply
        return await super().handle_RCPT(server, session, envelope, address, options)


@pytest.fixture
def relay() -> Iterator[SmtpServer]:
    server = SmtpServer(port=free_port(), handler=RefusingHandler())
    server.start()
    yield server
    server.stop()


def refuse(server: SmtpServer, rcpt: str, reply: str, times: int = REFUSALS) -> RefusingHandler:
    assert isinstance(server.handler, RefusingHandler)
    server.handler.refusing[rcpt] = reply
    server.handler.times = times
    return server.handler


async def one_round(settings: Settings, db: Database) -> None:
    # Production waits (30 s before a retry): a row that must wait is not
    # due in the next round, a pushed-back one is.
    worker = Worker(settings, db, worker_id="test:rounds", reconnect_base_seconds=0.01)
    try:
        await worker.run_once()
    finally:
        await worker.smtp.close()


async def rounds_while_pushed_back(
    settings: Settings, db: Database, row_of: Callable[[], Awaitable[Record]], rounds: int
) -> Record:
    """Up to ``rounds`` worker rounds, until the mail is sent; after each round
    it did not go out, it is back in the queue, due at once, with no attempt
    or deferral spent. The row as the last round left it."""
    for _ in range(rounds):
        await one_round(settings, db)
        row = await row_of()
        if row["status"] == "sent":
            break
        assert row["status"] == "queued" and row["due"], "not back in the queue at once"
        assert (row["attempts"], row["deferrals"]) == (0, 0)
    return row


async def two_rounds_refused(
    settings: Settings, db: Database, row_of: Callable[[], Awaitable[Record]]
) -> Record:
    """Two worker rounds against an ordinary temporary refusal: the first
    spends an attempt, and the mail is not due again in the second."""
    await one_round(settings, db)
    await one_round(settings, db)
    row = await row_of()
    assert row["status"] == "queued" and not row["due"], "a 451 was tried again at once"
    assert (row["attempts"], row["deferrals"]) == (1, 0)
    return row


async def delivery_of(db: Database, rcpt: str) -> Record:
    row = await db.pool.fetchrow(
        "SELECT d.status, d.attempts, d.deferrals, d.pushbacks, d.reason, d.smtp_code,"
        " d.next_attempt_at <= now() AS due, s.status AS subscriber_status, s.soft_bounces"
        " FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id WHERE s.email = $1",
        rcpt,
    )
    assert row is not None
    return row


@pytest.mark.parametrize("reply", PUSH_BACKS)
async def test_push_back_puts_the_delivery_back_at_once_without_an_attempt(
    database_url: str, db: Database, relay: SmtpServer, reply: str
) -> None:
    settings = make_settings(database_url, relay.target, smtp_connections=1)
    await add_subscribers(db, 3)
    issue_id = await start_issue(db, settings)
    pushed = address(2)
    handler = refuse(relay, pushed, reply)

    # A round claims again while the issue has due mail; a pushed-back
    # delivery is due at once, so this round (or the next) delivers it.
    row = await rounds_while_pushed_back(
        settings, db, lambda: delivery_of(db, pushed), REFUSALS + 1
    )
    assert handler.refused == [pushed] * REFUSALS
    assert row["status"] == "sent"
    assert (row["attempts"], row["deferrals"]) == (1, 0), "a push-back was counted"
    assert len(handler.to(pushed)) == 1
    assert (row["subscriber_status"], row["soft_bounces"]) == ("active", 0)
    assert await db.pool.fetchval("SELECT count(*) FROM bounce_events") == 0
    assert await status_counts(db, issue_id) == {"sent": 3}


async def test_push_back_left_in_the_queue_is_due_and_waits_for_the_relay(
    database_url: str, db: Database, relay: SmtpServer
) -> None:
    settings = make_settings(database_url, relay.target, smtp_connections=1)
    await add_subscribers(db, 1)
    issue_id = await start_issue(db, settings)
    await db.pool.execute(
        "UPDATE deliveries SET status = 'sending', worker = 'test:w', attempts = 3, deferrals = 2"
    )
    [delivery_id] = [r["id"] for r in await db.pool.fetch("SELECT id FROM deliveries")]
    outcomes = claim.Outcomes(settings.max_attempts, worker_id="test:w")
    push_back = PushBack(450, "4.7.1 Error: too much mail from 127.0.0.1", stage="mail")
    outcomes.errors.append(Failure(delivery_id, 1, 3, 2, push_back))
    await outcomes.flush(db)
    row = await delivery_of(db, address(1))
    assert row["status"] == "queued" and row["due"], "not back in the queue at once"
    assert (row["attempts"], row["deferrals"], row["smtp_code"]) == (2, 2, 450)
    # The delivery record says it waits for the relay, not that the recipient refused.
    assert row["reason"] == "server_trouble"
    assert await status_counts(db, issue_id) == {"queued": 1}


async def test_ordinary_temporary_refusal_counts_an_attempt_and_waits(
    database_url: str, db: Database, relay: SmtpServer
) -> None:
    settings = make_settings(database_url, relay.target, smtp_connections=1)
    await add_subscribers(db, 3)
    issue_id = await start_issue(db, settings)
    refused = address(2)
    refuse(relay, refused, ORDINARY)

    row = await two_rounds_refused(settings, db, lambda: delivery_of(db, refused))
    assert row["reason"] == "temporary_refusal"
    assert relay.handler.to(refused) == []
    assert await status_counts(db, issue_id) == {"sent": 2, "queued": 1}


async def enqueue_confirmation(db: Database, rcpt: str) -> None:
    async with db.transaction() as conn:
        await outbox.enqueue(conn, "confirm", rcpt, {"subscriber_id": 1}, subscriber_id=1)


async def outbox_row(db: Database) -> Record:
    row = await db.pool.fetchrow(
        "SELECT status, attempts, deferrals, pushbacks, smtp_code,"
        " next_attempt_at <= now() AS due FROM outbox"
    )
    assert row is not None
    return row


@pytest.mark.parametrize("reply", PUSH_BACKS)
async def test_push_back_gives_transactional_mail_again_at_once_without_an_attempt(
    database_url: str, db: Database, relay: SmtpServer, reply: str
) -> None:
    settings = make_settings(database_url, relay.target, smtp_connections=1)
    await add_subscribers(db, 1)
    rcpt = address(1)
    await enqueue_confirmation(db, rcpt)
    handler = refuse(relay, rcpt, reply)

    await one_round(settings, db)
    row = await outbox_row(db)
    assert row["status"] == "queued" and row["due"], "not back in the queue at once"
    assert (row["attempts"], row["deferrals"], row["smtp_code"]) == (0, 0, int(reply[:3]))
    # One claim of the outbox per round.
    row = await rounds_while_pushed_back(settings, db, lambda: outbox_row(db), REFUSALS)
    assert (row["status"], row["attempts"]) == ("sent", 1)
    assert len(handler.to(rcpt)) == 1


async def test_ordinary_temporary_refusal_of_transactional_mail_counts_an_attempt(
    database_url: str, db: Database, relay: SmtpServer
) -> None:
    settings = make_settings(database_url, relay.target, smtp_connections=1)
    await add_subscribers(db, 1)
    rcpt = address(1)
    await enqueue_confirmation(db, rcpt)
    refuse(relay, rcpt, ORDINARY)

    await two_rounds_refused(settings, db, lambda: outbox_row(db))
    assert relay.handler.to(rcpt) == []


# --- the verdicts themselves ------------------------------------------------


@pytest.mark.parametrize(
    ("error", "attempts", "expected", "reason"),
    [
        (PushBack(421, "4.7.0 try later", stage="rcpt"), 6, Verdict.PUSH_BACK, None),
        (PushBack(450, "4.7.1 too much mail", stage="mail"), 6, Verdict.PUSH_BACK, None),
        (ServerTrouble(None, "connection reset"), 6, Verdict.DEFER, None),
        (RelayRefused(535, "auth failed", stage="connect"), 1, Verdict.DEFER, None),
        (PermanentError(553, "sender refused", stage="mail"), 1, Verdict.DEFER, None),
        (PermanentError(550, "5.1.1 no such user", stage="rcpt"), 1, Verdict.BOUNCE, "refused"),
        (PermanentError(552, "too big", stage="data"), 1, Verdict.BOUNCE, "refused"),
        (TransientError(451, "local problem", stage="rcpt"), 5, Verdict.RETRY, None),
        (TransientError(451, "local", stage="rcpt"), 6, Verdict.GIVE_UP, "retries_exhausted"),
        (TransientError(451, "not you", stage="mail"), 6, Verdict.GIVE_UP, "sender_refused"),
    ],
)
def test_each_failure_has_one_verdict(
    error: SendError, attempts: int, expected: Verdict, reason: str | None
) -> None:
    decision = failures.verdict(error, attempts, max_attempts=6)
    assert (decision.verdict, decision.reason) == (expected, reason)


def test_waits_grow_exponentially_with_jitter_up_to_the_cap() -> None:
    waits = claim.delivery_waits(retry_base=30.0, defer_base=30.0)
    retry = failures.Decision(Verdict.RETRY)
    defer = failures.Decision(Verdict.DEFER)
    for n in range(1, 15):
        ceiling = min(30.0 * 2 ** (n - 1), claim.RETRY_CAP_SECONDS)
        assert ceiling / 2 <= waits.delay(retry, attempts=n, deferrals=0) <= ceiling
        # The deferral count is the row's before this deferral.
        ceiling = min(30.0 * 2 ** (n - 1), claim.DEFER_CAP_SECONDS)
        assert ceiling / 2 <= waits.delay(defer, attempts=1, deferrals=n - 1) <= ceiling
    push_back = failures.Decision(Verdict.PUSH_BACK)
    assert waits.delay(push_back, attempts=9, deferrals=9) == 0.0
    # Pushed back again and again: at once a few times, then 5 s, 10 s ... 15 min.
    for before in range(failures.FREE_PUSH_BACKS):
        assert waits.delay(push_back, attempts=1, deferrals=0, pushbacks=before) == 0.0
    for n in range(1, 12):
        before = failures.FREE_PUSH_BACKS + n - 1
        ceiling = min(5.0 * 2 ** (n - 1), 900.0)
        delay = waits.delay(push_back, attempts=1, deferrals=0, pushbacks=before)
        assert ceiling / 2 <= delay <= ceiling


# --- one recipient pushing back for ever (greylisting) -----------------------


async def test_a_greylisted_recipient_waits_after_a_few_push_backs_and_the_rest_go_out(
    database_url: str, db: Database, relay: SmtpServer
) -> None:
    settings = make_settings(database_url, relay.target, smtp_connections=1)
    await add_subscribers(db, 3)
    issue_id = await start_issue(db, settings)
    grey = address(2)
    handler = refuse(relay, grey, GREYLISTED.format(rcpt=grey), times=FOREVER)

    for _ in range(failures.FREE_PUSH_BACKS + 3):
        await one_round(settings, db)
    row = await delivery_of(db, grey)
    # Tried at once while the push-backs were few, then left to wait: not
    # tried round after round at the head of the queue.
    assert handler.refused == [grey] * (failures.FREE_PUSH_BACKS + 1)
    assert row["status"] == "queued" and not row["due"], "tried again at once for ever"
    assert (row["attempts"], row["pushbacks"]) == (0, failures.FREE_PUSH_BACKS + 1)
    assert (row["subscriber_status"], row["soft_bounces"]) == ("active", 0)
    assert await status_counts(db, issue_id) == {"sent": 2, "queued": 1}


async def test_a_greylisted_transactional_mail_does_not_keep_the_issue_waiting(
    database_url: str, db: Database, relay: SmtpServer
) -> None:
    """Transactional mail goes first each round; one that is pushed back for
    ever must not take every round from the issue."""
    settings = make_settings(database_url, relay.target, smtp_connections=1)
    await add_subscribers(db, 3)
    grey = address(1)
    await enqueue_confirmation(db, grey)
    issue_id = await start_issue(db, settings)
    refuse(relay, grey, GREYLISTED.format(rcpt=grey), times=FOREVER)

    for _ in range(failures.FREE_PUSH_BACKS + 4):
        await one_round(settings, db)
    row = await outbox_row(db)
    assert row["status"] == "queued" and not row["due"]
    assert (row["attempts"], row["pushbacks"]) == (0, failures.FREE_PUSH_BACKS + 1)
    counts = await status_counts(db, issue_id)
    assert counts.get("sent") == 2, counts  # everyone but the greylisted address
