"""Crash recovery: two workers share a rate-limited send, one is SIGKILLed.

Real ``newsletter worker`` processes (default lease, 60 s) send one issue to
N recipients at RATE/s into an aiosmtpd sink in this process that records
every arrival (time, recipient). After KILL_AFTER seconds one worker gets
SIGKILL. Printed per case: the time from the issue's start to every
delivery recorded, against the ideal N/rate (ratio), duplicates (copies
beyond the first per recipient), and the busiest sliding 1-s window against
the rate. Reference cases in the same run: the same send with no kill, and
(``--lease-only``) the kill with the dead worker's liveness lock hidden from
the others (its ``workers.lock_key`` cleared just before the kill), which is
how it went before: its rows wait for the lease.

Goal: killed case within N/rate + 15 s, duplicates ≤ one flush group
(batch/4), peak ≤ rate + 5 %.

    .venv/bin/python bench/crash.py                  # 1,500 at 100/s, kill after 4 s
    .venv/bin/python bench/crash.py --lease-only     # plus the lease-only reference (~80 s)

Needs PostgreSQL (NEWSLETTER_BENCH_DATABASE_URL, default the local server).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from common import add_subscribers, fresh_database, worker_env

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from tests.conftest import free_port
from tests.support.delivery import max_per_window, start_issue
from tests.support.processes import start_workers

DATABASE = "nl_bench_crash"
BATCH = 200


@dataclass
class Sink:
    """Accepts everything; remembers when each recipient's copy arrived."""

    arrivals: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        now = time.monotonic()
        with self.lock:
            self.arrivals.extend((now, rcpt.lower()) for rcpt in envelope.rcpt_tos)
        return "250 OK"


async def run_case(
    count: int, rate: float, kill_after: float | None, lease_only: bool
) -> dict[str, Any]:
    url = await fresh_database(DATABASE)
    await add_subscribers(url, count)
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    env = worker_env(
        url,
        port,
        RATE_PER_SECOND=str(rate),
        SMTP_CONNECTIONS="4",
        BATCH_SIZE=str(BATCH),
    )
    settings = Settings.from_env(env)
    db = await Database.connect(url, min_size=1, max_size=3)
    workers = start_workers(env, 2)
    try:
        deadline = time.monotonic() + 60  # both up, liveness locks taken
        while await db.pool.fetchval("SELECT count(lock_key) FROM workers") < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start")
            await asyncio.sleep(0.05)
        issue_id = await start_issue(db, settings, title="11월 소식")
        started = time.monotonic()
        killed = False
        while True:
            if kill_after is not None and not killed and time.monotonic() - started >= kill_after:
                if lease_only:  # the others cannot see that it died: lease expiry only
                    await db.pool.execute(
                        "UPDATE workers SET lock_key = NULL WHERE pid = $1",
                        workers.processes[0].pid,
                    )
                workers.kill(0)
                killed = True
            status = await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", issue_id)
            if status == "sent":
                break
            await asyncio.sleep(0.05)
        total = time.monotonic() - started
    finally:
        workers.stop()
        await db.close()
        controller.stop()
    with sink.lock:
        arrivals = list(sink.arrivals)
    copies: dict[str, int] = {}
    for _, rcpt in arrivals:
        copies[rcpt] = copies.get(rcpt, 0) + 1
    return {
        "total": total,
        "ideal": count / rate,
        "recipients": len(copies),
        "duplicates": sum(n - 1 for n in copies.values()),
        "peak": max_per_window([t for t, _ in arrivals]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--kill-after", type=float, default=4.0)
    parser.add_argument(
        "--lease-only", action="store_true", help="also the old way: rows wait for the lease"
    )
    args = parser.parse_args()
    cases: list[tuple[str, float | None, bool]] = [
        ("no kill (reference)", None, False),
        (f"SIGKILL after {args.kill_after:g} s", args.kill_after, False),
    ]
    if args.lease_only:
        cases.append((f"SIGKILL after {args.kill_after:g} s, lease only", args.kill_after, True))
    print(
        f"{args.count:,} recipients, 2 workers, {args.rate:g}/s, lease 60 s, batch {BATCH}\n"
        f"{'case':<36} {'total s':>7} {'ideal s':>7} {'ratio':>6} {'vs ref':>6}"
        f" {'dupl.':>5} {'peak/1s':>7} {'peak/rate':>9} {'got all':>7}",
        flush=True,
    )
    reference: float | None = None
    for name, kill_after, lease_only in cases:
        r = asyncio.run(run_case(args.count, args.rate, kill_after, lease_only))
        reference = reference or r["total"]
        print(
            f"{name:<36} {r['total']:7.1f} {r['ideal']:7.1f} {r['total'] / r['ideal']:6.2f}"
            f" {r['total'] / reference:6.2f} {r['duplicates']:5d} {r['peak']:7d}"
            f" {r['peak'] / args.rate:9.2f} {'yes' if r['recipients'] == args.count else 'NO':>7}",
            flush=True,
        )


if __name__ == "__main__":
    main()
