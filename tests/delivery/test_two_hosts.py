"""Workers on two hosts sharing one PostgreSQL, one of them cut off mid-send.

Two network namespaces stand for two machines: each runs one real
``newsletter worker`` and reaches the database (the test's own, forwarded to
the hosts' network) and the SMTP sink only over its veth link. They send one
issue under one global rate; then one host's link goes down, as a pulled
cable would take it. What the city would notice: every resident still gets
the issue (the other host takes the cut host's mail over once its lease runs
out), few get it twice, and the relay never sees more than the one global
rate, counted at the sink over any sliding second.

The cut host's database session stays open on the server's side (socat, like
a server whose TCP keepalive has not yet given up on a vanished client, sees
no reason to end it): the takeover must come from the lease, not from the
server noticing a dead connection.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from newsletter.core.db import Database
from newsletter.core.settings import SmtpTarget
from newsletter.delivery.ratelimit import BURST_FRACTION
from tests.conftest import free_port, make_settings
from tests.support.delivery import (
    TimedHandler,
    add_subscribers,
    assert_nobody_skipped,
    max_per_window,
    start_issue,
    status_counts,
    wait_for_status,
)
from tests.support.hosts import Hosts, NamespacesUnavailable, PortForward, hosts_on_a_bridge
from tests.support.processes import start_workers, worker_env

MAILS = 300
RATE = 50.0
LEASE_SECONDS = 3.0
BATCH_SIZE = 40
FLUSH_GROUP = BATCH_SIZE // 4  # the worker records outcomes this many at a time, or sooner
CUT_AFTER = 100  # mails at the sink before one host is cut off


@dataclass
class HostsSink(TimedHandler):
    """Also records which host each message came from."""

    senders: list[tuple[float, str]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if reply.startswith("250"):
            peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
            with self.lock:
                self.senders.append((time.monotonic(), str(peer)))
        return reply

    def from_host(self, address: str, since: float = 0.0) -> int:
        with self.lock:
            return sum(1 for at, peer in self.senders if peer == address and at >= since)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    try:
        with hosts_on_a_bridge(2) as made:
            yield made
    except NamespacesUnavailable as exc:
        pytest.skip(f"needs network namespaces: {exc}")


@pytest.fixture
def hosts_database_url(database_url: str, hosts: Hosts) -> Iterator[str]:
    """The test's database as the hosts reach it: the server listens on
    loopback only, so socat forwards the hosts' network to it."""
    parts = urlsplit(database_url)
    if parts.hostname:
        target = f"TCP:{parts.hostname}:{parts.port or 5432}"
    else:  # the embedded server: a Unix socket in the directory given as ?host=
        directory = parse_qs(parts.query)["host"][0]
        target = f"UNIX-CONNECT:{directory}/.s.PGSQL.{parts.port or 5432}"
    forward = PortForward(hosts.gateway, free_port(), target)
    forward.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex((hosts.gateway, forward.listen_port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("socat did not listen")
            time.sleep(0.05)
        user = parts.username or "postgres"
        yield f"postgresql://{user}@{hosts.gateway}:{forward.listen_port}{parts.path}"
    finally:
        forward.stop()


@pytest.fixture
def sink(hosts: Hosts) -> Iterator[tuple[HostsSink, int]]:
    """An SMTP sink on the hosts' network (this machine's bridge address)."""
    handler = HostsSink()
    port = free_port()
    controller = Controller(handler, hostname=hosts.gateway, port=port)
    controller.start()
    yield handler, port
    controller.stop()


async def wait_for_arrivals(handler: HostsSink, count: int, hosts: Hosts) -> None:
    deadline = time.monotonic() + 30
    while len(handler.senders) < count or not all(
        handler.from_host(hosts.address(n)) for n in range(2)
    ):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"only {len(handler.senders)} mails at the sink after 30 s, "
                f"{[handler.from_host(hosts.address(n)) for n in range(2)]} from each host"
            )
        await asyncio.sleep(0.02)


async def test_two_hosts_share_one_rate_and_one_finishes_when_the_other_is_cut_off(
    database_url: str,
    db: Database,
    hosts: Hosts,
    hosts_database_url: str,
    sink: tuple[HostsSink, int],
) -> None:
    handler, sink_port = sink
    smtp = SmtpTarget(hosts.gateway, sink_port)
    settings = make_settings(database_url, smtp, rate_per_second=RATE)
    await add_subscribers(db, MAILS)
    issue_id = await start_issue(db, settings)
    env = worker_env(
        hosts_database_url, smtp, RATE_PER_SECOND=f"{RATE:g}", BATCH_SIZE=str(BATCH_SIZE)
    )
    workers = start_workers(
        env, 2, lease_seconds=LEASE_SECONDS, prefixes=[hosts.prefix(0), hosts.prefix(1)]
    )
    try:
        await wait_for_arrivals(handler, CUT_AFTER, hosts)
        hosts.cut(0)
        cut_at = time.monotonic()
        cut_worker = f"{socket.gethostname()}:{workers.processes[0].pid}"
        held = await db.pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE status = 'sending' AND worker = $1",
            cut_worker,
        )
        await wait_for_status(db, issue_id, "sent", timeout=45)
        assert not workers.exited(), f"a worker exited:\n{workers.log_of(workers.exited()[0])}"
    finally:
        workers.kill(0)  # it cannot hear a SIGTERM's outcome over a dead link
        workers.stop()

    assert held > 0, "the cut host held no mail: the takeover was not exercised"
    assert await status_counts(db, issue_id) == {"sent": MAILS}
    # Duplicates: sent by the cut host but never recorded, the outcomes it had
    # not yet written and what was on the wire when the link went.
    assert_nobody_skipped(handler, MAILS, duplicates_at_most=FLUSH_GROUP, what="one flush group")
    assert handler.from_host(hosts.address(0), since=cut_at + 0.5) == 0, "the cut host sent on"
    assert handler.from_host(hosts.address(1), since=cut_at) > 0
    burst = max(1.0, RATE * BURST_FRACTION)
    peak = max_per_window(handler.arrivals)
    assert peak <= RATE * 1.05 + burst, f"{peak} mails in one second at {RATE:g}/s"
