"""Pipelining across messages (RFC 2920): each message's content and final dot
travel with the next message's MAIL/RCPT/DATA. Real aiosmtpd servers that
offer PIPELINING; refusals in the middle of a pipelined run must hit only
their own message, and everyone else gets exactly one copy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.core.db import Database
from newsletter.core.settings import SmtpTarget
from newsletter.delivery.message import dot_stuff
from newsletter.delivery.pool import Job, SmtpPool
from newsletter.delivery.smtp import (
    PermanentError,
    PushBack,
    Reply,
    SendError,
    ServerTrouble,
    SmtpConnection,
)
from tests.conftest import SmtpServer, drain, free_port, make_settings
from tests.support.delivery import (
    TimedHandler,
    add_subscribers,
    address,
    start_issue,
    status_counts,
)


@dataclass
class PickyHandler(TimedHandler):
    """Refuses DATA for chosen recipients; ``once`` refusals apply one time only."""

    data_reply_for: dict[str, str] = field(default_factory=dict)
    once: set[str] = field(default_factory=set)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for rcpt in envelope.rcpt_tos:
            reply = self.data_reply_for.get(rcpt.lower())
            if reply:
                if rcpt.lower() in self.once:
                    del self.data_reply_for[rcpt.lower()]
                return reply
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def picky_smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(port=free_port(), handler=PickyHandler(pipelining=True))
    server.start()
    yield server
    server.stop()


def handler(server: SmtpServer) -> PickyHandler:
    assert isinstance(server.handler, PickyHandler)
    return server.handler


def message_for(n: int) -> bytes:
    """Prepared as the pool expects: CRLF and dot-stuffed."""
    return dot_stuff(
        f"From: news@example.org\r\nTo: {address(n)}\r\nSubject: {n}\r\n\r\n"
        f".line starting with a dot\r\nmessage {n}\r\n".encode()
    )


def prepared(data: bytes) -> Callable[[bool], tuple[bytes, bool]]:
    def render(_eight_bit: bool) -> tuple[bytes, bool]:
        return data, False

    return render


async def send_all(server: SmtpServer, count: int, size: int = 2) -> dict[int, Reply | SendError]:
    outcomes: dict[int, Reply | SendError] = {}

    def sent(job: Job, reply: Reply) -> None:
        assert job.key not in outcomes
        outcomes[job.key] = reply

    def failed(job: Job, exc: SendError) -> None:
        assert job.key not in outcomes
        outcomes[job.key] = exc

    def released(job: Job) -> None:
        raise AssertionError(f"job {job.key} released")

    pool = SmtpPool(server.target, size, backoff_base=0.01, timeout=10.0)
    try:
        for n in range(1, count + 1):
            data = message_for(n)
            await pool.submit(
                Job(
                    key=n,
                    sender="bounce@example.org",
                    recipient=address(n),
                    render=prepared(data),
                    on_sent=sent,
                    on_error=failed,
                    on_released=released,
                )
            )
        await pool.drain()
        writes = sum(conn.writes for conn in pool.connections)
    finally:
        await pool.close()
    # One group per message plus a little (first envelopes, a queue that ran dry).
    assert writes < count * 1.5, f"not pipelined: {writes} writes for {count} messages"
    return outcomes


async def test_refusals_mid_pipeline_hit_only_their_own_message(picky_smtp: SmtpServer) -> None:
    h = handler(picky_smtp)
    h.rcpt_reply[address(10)] = "550 5.1.1 No such user"
    h.rcpt_reply[address(11)] = "550 5.1.1 No such user"  # two refused in a row
    h.rcpt_reply[address(30)] = "452 4.2.2 Mailbox full"
    h.data_reply_for[address(20)] = "554 5.6.0 Content refused"
    h.data_reply_for[address(25)] = "451 4.3.0 Try again later"

    outcomes = await send_all(picky_smtp, 60)

    assert len(outcomes) == 60
    for n in (10, 11):
        exc = outcomes[n]
        assert isinstance(exc, PermanentError) and exc.stage == "rcpt" and exc.code == 550
    refused = outcomes[20]
    assert isinstance(refused, PermanentError) and refused.stage == "data" and refused.code == 554
    for n, code in ((30, 452), (25, 451)):
        exc = outcomes[n]
        assert isinstance(exc, SendError) and not isinstance(exc, PermanentError)
        assert exc.code == code
    others = set(range(1, 61)) - {10, 11, 20, 25, 30}
    assert all(isinstance(outcomes[n], Reply) for n in others)
    counts = h.counts()
    assert counts == {address(n): 1 for n in others}
    # The content arrived intact (dot-stuffing undone by the server).
    [mail] = h.to(address(12))
    assert b"\r\n.line starting with a dot\r\nmessage 12\r\n" in mail.data


async def test_421_to_one_message_goes_back_at_once_and_the_pipelined_next_arrives_once(
    picky_smtp: SmtpServer,
) -> None:
    h = handler(picky_smtp)
    h.data_reply_for[address(15)] = "421 4.7.0 Too many requests, closing"
    h.once.add(address(15))

    outcomes = await send_all(picky_smtp, 40)

    # Push-back is not retried on the same relay: the job hears of it at once
    # (the worker puts it back in the queue for the lowered rate).
    pushed = outcomes[15]
    assert isinstance(pushed, PushBack) and pushed.code == 421
    assert all(isinstance(outcomes[n], Reply) for n in range(1, 41) if n != 15), outcomes
    assert h.counts() == {address(n): 1 for n in range(1, 41) if n != 15}


async def test_server_drop_mid_pipeline_loses_nobody(picky_smtp: SmtpServer) -> None:
    """The server goes away and comes back: jobs are retried on fresh connections."""
    h = handler(picky_smtp)

    async def bounce_server() -> None:
        while len(h.messages) < 10:
            await asyncio.sleep(0.001)
        picky_smtp.stop()
        await asyncio.sleep(0.05)
        picky_smtp.start()

    restart = asyncio.create_task(bounce_server())
    outcomes = await send_all(picky_smtp, 40)
    await restart
    lost = [n for n, o in outcomes.items() if isinstance(o, ServerTrouble)]
    assert lost == [], "inline retries should have covered a short restart"
    counts = h.counts()
    assert set(counts) == {address(n) for n in range(1, 41)}
    # A message whose final reply was lost in the drop may arrive twice
    # (in flight at the crash), never more, and only those in flight.
    assert max(counts.values()) <= 2
    assert sum(counts.values()) - 40 <= 2  # two connections: at most one in flight each


async def test_issue_over_a_pipelining_server_with_refusals(
    database_url: str, db: Database, picky_smtp: SmtpServer
) -> None:
    settings = make_settings(database_url, picky_smtp.target, smtp_connections=3)
    h = handler(picky_smtp)
    await add_subscribers(db, 120)
    for n in (40, 41, 77):
        h.rcpt_reply[address(n)] = "550 5.1.1 No such user"
    h.data_reply_for[address(90)] = "554 5.7.1 Message refused"
    issue_id = await start_issue(db, settings)

    await drain(settings, db)

    assert await status_counts(db, issue_id) == {"sent": 116, "failed": 4}
    counts = h.counts()
    assert counts == {address(n): 1 for n in range(1, 121) if n not in (40, 41, 77, 90)}
    # Unknown users are hard bounces, suppressed at once; 5.7.1 is about the message.
    inactive = await db.pool.fetch("SELECT email FROM subscribers WHERE status <> 'active'")
    assert {r["email"] for r in inactive} == {address(n) for n in (40, 41, 77)}


async def test_a_server_that_stops_answering_times_out_as_server_trouble() -> None:
    """Greets, answers EHLO, then says nothing: the reply timer fires, no hang."""
    lines: list[bytes] = []
    finished = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mute ESMTP\r\n")
        while line := await reader.readline():
            lines.append(line)
            if line.upper().startswith((b"EHLO", b"HELO")):
                writer.write(b"250-mute\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
        writer.close()
        await writer.wait_closed()
        finished.set()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = SmtpConnection(SmtpTarget(host="127.0.0.1", port=port), timeout=0.3)
    try:
        with pytest.raises(ServerTrouble, match="TimeoutError"):
            await conn.send("a@example.org", "b@example.org", message_for(1))
        assert not conn.connected
        assert any(line.startswith(b"MAIL FROM:<a@example.org>") for line in lines)
    finally:
        await conn.close()
        await asyncio.wait_for(finished.wait(), 5)
        server.close()
        await server.wait_closed()
