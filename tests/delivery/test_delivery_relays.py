"""Sending through relays that throttle like production ones: push-back lowers
the one global rate (AIMD, in PostgreSQL), a connection limit shrinks the
pool, a relay refusing every connection opens its circuit breaker, and a
second relay in SMTP_URL delivers while the first is in trouble.

Real PostgreSQL and real aiosmtpd servers; the servers count what they saw
(connections opened and refused, refusals of mail), so the tests assert
counts, never timings."""

from __future__ import annotations

import asyncio
import html
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from rich.console import Console

from newsletter.core.db import Database
from newsletter.core.settings import Settings, SettingsError, SmtpTarget
from newsletter.delivery.ratelimit import RateLimiter
from newsletter.ops import metrics
from newsletter.ops.status_view import run_status
from tests.conftest import SmtpServer, bearer, free_port, make_settings
from tests.support.console import login, make_user
from tests.support.delivery import (
    TimedHandler,
    add_subscribers,
    assert_each_got_one,
    fast_worker,
    issue_status,
    running,
    start_issue,
    status_counts,
    wait_for_status,
)

TOO_MUCH_MAIL = "450 4.7.1 Error: too much mail from 127.0.0.1"
TOO_MANY_CONNECTIONS = "421 4.7.0 Error: too many connections from 127.0.0.1"


@dataclass
class ThrottlingHandler(TimedHandler):
    """Throttles like Postfix's anvil: at most ``per_window`` MAIL commands per
    ``window`` seconds (fixed windows, refused ones counted too), at most
    ``max_connections`` at once (more are greeted with 421 and closed)."""

    per_window: int | None = None
    window: float = 1.0
    max_connections: int | None = None
    refusal: str = TOO_MANY_CONNECTIONS  # the greeting of a connection over the limit
    opened: int = 0
    refused_connections: int = 0
    active: int = 0
    mail_refusals: int = 0
    peak: int = 0
    _window_start: float = 0.0
    _window_count: int = 0
    _counter: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self._counter:
            now = time.monotonic()
            if now - self._window_start >= self.window:
                self._window_start, self._window_count = now, 0
            self._window_count += 1
            over = self.per_window is not None and self._window_count > self.per_window
            if over:
                self.mail_refusals += 1
        if over:
            return TOO_MUCH_MAIL
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    def connected(self) -> bool:
        """A connection arrived: True if it is one too many."""
        with self._counter:
            self.opened += 1
            self.active += 1
            over = self.max_connections is not None and self.active > self.max_connections
            if over:
                self.refused_connections += 1
            else:
                self.peak = max(self.peak, self.active)
            return over

    def disconnected(self) -> None:
        with self._counter:
            self.active -= 1


class CountingSMTP(SMTP):
    too_many = False
    greeted = False

    def connection_made(self, transport: Any) -> None:
        handler = self.event_handler
        assert isinstance(handler, ThrottlingHandler)
        self.too_many = handler.connected()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        handler = self.event_handler
        assert isinstance(handler, ThrottlingHandler)
        handler.disconnected()
        super().connection_lost(error)

    async def push(self, status: Any) -> None:
        if not self.greeted:
            self.greeted = True
            if self.too_many:
                await super().push(self.event_handler.refusal)
                assert self.transport is not None
                self.transport.close()
                return
        await super().push(status)


class CountingController(Controller):
    def factory(self) -> SMTP:
        return CountingSMTP(self.handler, **self.SMTP_kwargs)


@dataclass
class ThrottlingRelay(SmtpServer):
    def start(self) -> None:
        self.controller = CountingController(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def throttle(self) -> ThrottlingHandler:
        assert isinstance(self.handler, ThrottlingHandler)
        return self.handler

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


def throttling_relay(**options: Any) -> ThrottlingRelay:
    server = ThrottlingRelay(
        port=free_port(), handler=ThrottlingHandler(pipelining=True, **options)
    )
    server.start()
    return server


@pytest.fixture
def relays() -> Iterator[list[ThrottlingRelay]]:
    started: list[ThrottlingRelay] = []
    yield started
    for server in started:
        server.stop()


def relay_settings(database_url: str, *servers: ThrottlingRelay, **overrides: Any) -> Settings:
    settings = make_settings(database_url, servers[0].target, **overrides)
    return settings.replace(smtp_relays=tuple(s.target for s in servers))


async def nobody_harmed(db: Database, issue_id: int) -> None:
    """Push-back is our pace: no attempt used, nobody failed, bounced or suppressed."""
    assert (
        await db.pool.fetchval("SELECT max(attempts) FROM deliveries WHERE issue_id = $1", issue_id)
        <= 1
    )
    assert await db.pool.fetchval("SELECT count(*) FROM bounce_events") == 0
    assert (
        await db.pool.fetchval(
            "SELECT count(*) FROM subscribers WHERE status <> 'active' OR soft_bounces > 0"
        )
        == 0
    )


# --- push-back lowers the one global rate --------------------------------------


async def test_too_much_mail_lowers_the_shared_rate_and_everyone_gets_it(
    database_url: str,
    db: Database,
    client: httpx.AsyncClient,
    relays: list[ThrottlingRelay],
) -> None:
    relay = throttling_relay(per_window=15, window=1.0)
    relays.append(relay)
    settings = relay_settings(database_url, relay, smtp_connections=3, max_attempts=2)
    await add_subscribers(db, 60)
    issue_id = await start_issue(db, settings)

    async with running(fast_worker(settings, db, "one"), fast_worker(settings, db, "two")):
        await wait_for_status(db, issue_id, "sent", timeout=60)

    assert relay.throttle.mail_refusals > 0, "the relay never pushed back: nothing was tested"
    assert_each_got_one(relay.throttle, 60)
    assert await status_counts(db, issue_id) == {"sent": 60}
    await nobody_harmed(db, issue_id)

    # The learned rate went down and ops can read why, in the API ...
    headers = await bearer(db, "ops")
    answer = (await client.get(f"/api/v1/issues/{issue_id}/stats", headers=headers)).json()
    assert answer["effective_rate_per_second"] < settings.rate_per_second
    assert "relay pushed back: 450" in answer["effective_rate_reason"]
    assert "too much mail" in answer["effective_rate_reason"]
    [seen] = answer["relays"]
    assert seen["relay"] == f"127.0.0.1:{relay.port}"
    assert seen["sent"] == 60 and seen["pushed_back"] > 0

    # ... in /metrics (every worker's figures from the database) ...
    exposition = (await client.get("/metrics", headers=headers)).text
    assert (
        f'newsletter_relay_results_total{{relay="127.0.0.1:{relay.port}",result="sent"}} 60.0'
        in (exposition)
    )
    assert "newsletter_global_rate_lowered 1.0" in exposition

    # ... on the console's ops page ...
    ops = await make_user(db, "ops")
    await login(client, ops.email)
    page = html.unescape((await client.get("/admin/ops")).text)
    assert "메일 서버와 발송 속도" in page
    assert "메일 서버가 속도를 늦추라고 해서 낮춤" in page
    assert "relay pushed back: 450 4.7.1 Error: too much mail" in page
    assert f'data-relay="127.0.0.1:{relay.port}" data-state="closed"' in page

    # ... and in `newsletter status`.
    out = io.StringIO()
    await run_status(
        settings,
        database_url,
        issue_id=issue_id,
        console=Console(file=out, width=200, no_color=True),
    )
    text = out.getvalue()
    assert "메일 서버가 속도를 늦추라고 해서 낮춤" in text
    assert "450 4.7.1 Error: too much mail" in text
    assert f"127.0.0.1:{relay.port}" in text

    # A relay since taken out of SMTP_URL (nobody reports it any more) drops
    # out of sight within the hour, and out of the table after a week.
    await db.pool.execute(
        "INSERT INTO relay_health (relay, sent, updated_at)"
        " VALUES ('old-relay:25', 5, now() - interval '2 hours'),"
        " ('older-relay:25', 5, now() - interval '8 days')"
    )
    answer = (await client.get(f"/api/v1/issues/{issue_id}/stats", headers=headers)).json()
    assert [r["relay"] for r in answer["relays"]] == [f"127.0.0.1:{relay.port}"]
    await fast_worker(settings, db, "pruner").chores.prune_dead_workers()
    left = await db.pool.fetch("SELECT relay FROM relay_health ORDER BY relay")
    assert [r["relay"] for r in left] == [f"127.0.0.1:{relay.port}", "old-relay:25"]


async def test_push_back_from_many_workers_at_once_halves_the_rate_once_then_it_climbs(
    db: Database,
) -> None:
    limiters = [RateLimiter(db, per_second=100.0) for _ in range(4)]
    for limiter in limiters:
        await limiter.take(1)
    for limiter in limiters:  # all four saw the same push-back episode
        limiter.pushed_back("450 4.7.1 too much mail")
    await asyncio.gather(*(limiter.try_take(1) for limiter in limiters))
    row = await db.pool.fetchrow("SELECT learned_rate, learned_reason FROM rate_buckets")
    assert row is not None
    assert row["learned_rate"] == 50.0, "one episode, one halving, however many workers"
    assert row["learned_reason"] == "450 4.7.1 too much mail"

    # Mail accepted after the episode raises it again, and never past the ceiling.
    await db.pool.execute("UPDATE rate_buckets SET decreased_at = now() - interval '5 s'")
    limiters[0].accepted(10)
    await limiters[0].try_take(1)
    raised = await db.pool.fetchval("SELECT learned_rate FROM rate_buckets")
    assert 50.0 < raised <= 60.0  # 5 % of the ceiling per second of success, 2 s at most
    await db.pool.execute(
        "UPDATE rate_buckets SET learned_rate = 99.9, raised_at = now() - interval '5 s'"
    )
    limiters[1].accepted(1)
    await limiters[1].try_take(1)
    assert await db.pool.fetchval("SELECT learned_rate FROM rate_buckets") is None
    assert limiters[1].rate == 100.0 and limiters[1].reason is None


# --- a connection limit shrinks the pool ----------------------------------------


async def test_connection_limit_shrinks_the_pools_instead_of_reconnecting(
    database_url: str, db: Database, relays: list[ThrottlingRelay]
) -> None:
    relay = throttling_relay(max_connections=2)
    relays.append(relay)
    checked = relay.throttle.opened  # the controller's own check when it started
    settings = relay_settings(
        database_url, relay, smtp_connections=6, max_attempts=2, batch_size=20
    )
    await add_subscribers(db, 150)
    issue_id = await start_issue(db, settings)

    async with running(fast_worker(settings, db, "one"), fast_worker(settings, db, "two")):
        await wait_for_status(db, issue_id, "sent", timeout=60)

    assert_each_got_one(relay.throttle, 150)
    assert await status_counts(db, issue_id) == {"sent": 150}
    await nobody_harmed(db, issue_id)
    assert relay.throttle.peak <= 2
    # Two pools of six would open 12 connections at once and reconnect in a loop;
    # opening one at a time, each finds the limit after one refusal.
    assert relay.throttle.refused_connections >= 1, "the limit was never met: nothing was tested"
    # A worker left without a place probes now and then (backoff) until the
    # other one's connections go idle.
    opened, refused = relay.throttle.opened - checked, relay.throttle.refused_connections
    assert opened <= 3 * 2 + 4, (opened, refused)


# --- a relay-wide outage opens the circuit breaker -------------------------------


async def test_outage_costs_a_few_connects_not_one_per_message(
    database_url: str, db: Database, relays: list[ThrottlingRelay]
) -> None:
    # Greets everyone with 421 and hangs up: down, not merely full.
    relay = throttling_relay(max_connections=0, refusal="421 4.3.2 Service not available")
    relays.append(relay)
    settings = relay_settings(database_url, relay, smtp_connections=5, max_attempts=2)
    await add_subscribers(db, 100)
    issue_id = await start_issue(db, settings)
    worker = fast_worker(settings, db, "one")

    async with running(worker):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # every delivery has met the outage once
            waiting = await db.pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE issue_id = $1 AND last_error IS NULL",
                issue_id,
            )
            if waiting == 0:
                break
            await asyncio.sleep(0.05)
        assert waiting == 0
        assert await issue_status(db, issue_id) == "sending"
        assert "failed" not in await status_counts(db, issue_id)

    # 100 messages, 5 connections: a few connects and one probe at a time.
    assert 1 <= relay.throttle.opened <= 20, relay.throttle.opened
    await nobody_harmed(db, issue_id)
    state = await db.pool.fetchval("SELECT state FROM relay_health")
    assert state in ("open", "half-open")


# --- several relays ----------------------------------------------------------------


async def test_second_relay_delivers_while_the_first_refuses_then_the_first_again(
    database_url: str, db: Database, relays: list[ThrottlingRelay]
) -> None:
    first, second = throttling_relay(), throttling_relay()
    relays.extend([first, second])
    first.stop()  # refuses at connect: nobody listens
    checked = first.throttle.opened  # the controller's own check when it started
    settings = relay_settings(database_url, first, second, smtp_connections=3)
    assert [r.port for r in settings.smtp_relays] == [first.port, second.port]
    await add_subscribers(db, 40)
    issue_id = await start_issue(db, settings)

    async with running(fast_worker(settings, db, "one")):
        await wait_for_status(db, issue_id, "sent", timeout=60)
        assert_each_got_one(second.throttle, 40)
        assert first.throttle.opened == checked

        first.start()  # recovered: its circuit's next probe finds it
        await add_subscribers(db, 40, prefix="s")
        later = await start_issue(db, settings, title="12월 김포시 소식")
        await wait_for_status(db, later, "sent", timeout=60)

    assert await status_counts(db, issue_id) == {"sent": 40}
    assert await status_counts(db, later) == {"sent": 80}
    assert first.throttle.opened > checked
    assert len(first.throttle.messages) > 0, "the first relay was not used again"
    delivered = len(first.throttle.messages) + len(second.throttle.messages)
    assert delivered == 40 + 80
    health = {
        r["relay"]: r for r in await db.pool.fetch("SELECT * FROM relay_health ORDER BY relay")
    }
    assert health[f"127.0.0.1:{first.port}"]["refused"] >= 1
    assert health[f"127.0.0.1:{first.port}"]["state"] == "closed"
    assert health[f"127.0.0.1:{second.port}"]["sent"] >= 40
    exposition = metrics.process_exposition().decode()
    assert (
        f'newsletter_relay_connections_total{{outcome="refused",relay="127.0.0.1:{first.port}"}}'
        in (exposition)
    )


async def test_stop_request_is_not_held_up_by_a_relay_that_never_greets(
    database_url: str, db: Database
) -> None:
    """A relay that takes the TCP connection and says nothing (hung, or a
    middlebox) would keep a connect waiting for the whole SMTP timeout, a
    minute; SIGTERM must still end the worker at once and give its batch back."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # never a greeting

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = make_settings(database_url, SmtpTarget("127.0.0.1", port), rate_per_second=50.0)
    await add_subscribers(db, 20)
    issue_id = await start_issue(db, settings)
    worker = fast_worker(settings, db, "one")
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(20):
            while not held or await status_counts(db, issue_id) != {"sending": 20}:
                await asyncio.sleep(0.05)
        worker.stop.set()
        async with asyncio.timeout(20):  # the relay would hold the connect for 60 s
            await task
    finally:
        worker.stop.set()
        await task
        for writer in held:
            writer.close()
        server.close()
    assert len(held) == 1, "one connect at a time to a relay"
    assert await status_counts(db, issue_id) == {"queued": 20}
    assert await db.pool.fetchval("SELECT max(attempts) FROM deliveries") == 0


async def test_the_next_relay_delivers_while_the_first_never_greets(
    database_url: str, db: Database, relays: list[ThrottlingRelay]
) -> None:
    """A first relay that takes the TCP connection and never says hello: the
    one connect waiting for it (and the one message it was opened for) must
    not hold every other connection back until its timeout; they go to the
    second relay after a short wait, and that message follows once the hung
    connect gives up."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    hung = SmtpTarget("127.0.0.1", server.sockets[0].getsockname()[1])
    second = throttling_relay()
    relays.append(second)
    settings = make_settings(database_url, hung, smtp_connections=3, rate_per_second=200.0)
    settings = settings.replace(smtp_relays=(hung, second.target))
    await add_subscribers(db, 30)
    issue_id = await start_issue(db, settings)
    try:
        async with running(fast_worker(settings, db, "one")):
            # Well inside the 15 s the hung connect may wait for its greeting.
            async with asyncio.timeout(10):
                while len(second.throttle.counts()) < 29:
                    await asyncio.sleep(0.05)
            assert len(held) == 1
            await wait_for_status(db, issue_id, "sent", timeout=40)
    finally:
        for writer in held:
            writer.close()
        server.close()
    assert_each_got_one(second.throttle, 30)
    assert len(held) == 1, "one connect at a time to the hung relay"
    await nobody_harmed(db, issue_id)


def test_smtp_url_lists_relays_in_order_and_refuses_a_bad_list() -> None:
    env = {
        "NEWSLETTER_DATABASE_URL": "postgresql://x/y",
        "NEWSLETTER_SECRET_KEY": "t3St-Kq8vW2xLr9ZpN4cYb7HfJ6dMs1aGe5U",
        "NEWSLETTER_SMTP_URL": "smtp://a.example:25, smtp://u:p@b.example:587?starttls=1",
    }
    settings = Settings.from_env(env)
    assert settings.smtp_relays == (
        SmtpTarget("a.example", 25),
        SmtpTarget("b.example", 587, "u", "p", starttls=True),
    )
    assert settings.smtp == settings.smtp_relays[0]
    for bad in ("smtp://a:25,,smtp://b:25", "smtp://a:25,smtp://a:25", " , "):
        with pytest.raises(SettingsError, match="NEWSLETTER_SMTP_URL"):
            Settings.from_env({**env, "NEWSLETTER_SMTP_URL": bad})
