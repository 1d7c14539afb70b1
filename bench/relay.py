"""One issue through a real Postfix relay that throttles us like a provider's.

A private Postfix instance (tests/support/postfix.py; the Debian package is
installed if missing) allows each client 4 sessions (``421 4.7.0 too many
connections``) and 100 messages per 10 s (``450 4.7.1 too much mail``) and
relays to an aiosmtpd sink in this process. Real ``newsletter worker``
processes, with RATE_PER_SECOND=1000 and the default SMTP_CONNECTIONS, send
one issue to N subscribers through it.

Reference: the relay's ideal time, N ÷ its rate (300 mails at 10/s: 30 s).
The goal: delivered within 2 × ideal + 30 s, sessions opened ≤ 3 × the relay's
session limit plus one per push-back episode (a run of refusals with no
message accepted in between, read from the relay's log), nothing failed,
nobody suppressed. Exits 1 when the goal is missed.

    .venv/bin/python bench/relay.py                      # 300 mails, 2 workers
    .venv/bin/python bench/relay.py --mails 600 --give-up-after 300

Needs PostgreSQL (NEWSLETTER_BENCH_DATABASE_URL, default the local server)
and root (Postfix's private instance, apt-get install postfix).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass

from common import drop_database, fresh_database, worker_env

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from tests.conftest import SmtpServer, free_port
from tests.support.delivery import TimedHandler, add_subscribers, start_issue
from tests.support.postfix import PostfixUnavailable, RelayCounts, RelayLimits, private_postfix
from tests.support.processes import start_workers

DATABASE = "nl_bench_relay"
LIMITS = RelayLimits(connections=4, messages=100, per_seconds=10)


@dataclass
class Outcome:
    mails: int
    seconds: float  # from starting the workers to the issue's 'sent' (or giving up)
    finished: bool
    delivered: int
    failed: int
    suppressed: int
    max_attempts: int
    received: int  # distinct recipients at the sink
    duplicates: int
    relay: RelayCounts
    per_window: list[int]  # mails at the sink in each relay window (10 s) since the start
    worker_logs: list[str]


async def run(mails: int, workers: int, rate: str, give_up_after: float) -> Outcome:
    handler = TimedHandler()
    sink = SmtpServer(port=free_port(), handler=handler)
    sink.start()
    url = await fresh_database(DATABASE)
    db = await Database.connect(url, min_size=1, max_size=3)
    try:
        with private_postfix(sink.port, LIMITS) as relay:
            env = worker_env(
                url, relay.port, RATE_PER_SECOND=rate, BOUNCE_ADDRESS="bounce@gimpo.go.kr"
            )
            settings = Settings.from_env(env)
            await add_subscribers(db, mails)
            issue_id = await start_issue(db, settings)
            started = time.perf_counter()
            started_monotonic = time.monotonic()
            procs = start_workers(env, workers)
            finished = False
            try:
                while time.perf_counter() - started < give_up_after:
                    status = await db.pool.fetchval(
                        "SELECT status FROM issues WHERE id = $1", issue_id
                    )
                    if status == "sent":
                        finished = True
                        break
                    if procs.exited():
                        n = procs.exited()[0]
                        raise RuntimeError(f"worker {n} exited early:\n{procs.log_of(n)}")
                    await asyncio.sleep(0.1)
                seconds = time.perf_counter() - started
            finally:
                procs.stop()
                logs = [procs.log_of(n, tail=3000) for n in range(workers)]
            deadline = time.monotonic() + 10  # the relay hands on what it accepted
            while time.monotonic() < deadline:
                seen = relay.counts()
                if seen.relayed >= seen.accepted:
                    break
                await asyncio.sleep(0.1)
            seen = relay.counts()
        row = await db.pool.fetchrow(
            """
            SELECT count(*) FILTER (WHERE status = 'sent') AS delivered,
                   count(*) FILTER (WHERE status IN ('failed', 'bounced')) AS failed,
                   coalesce(max(attempts) FILTER (WHERE status = 'sent'), 0) AS max_attempts
            FROM deliveries WHERE issue_id = $1
            """,
            issue_id,
        )
        assert row is not None
        suppressed = await db.pool.fetchval(
            "SELECT (SELECT count(*) FROM suppressions)"
            " + (SELECT count(*) FROM subscribers WHERE status <> 'active')"
        )
    finally:
        await db.close()
        sink.stop()
        await drop_database(DATABASE)
    counts = handler.counts()
    window = LIMITS.per_seconds
    per_window = [0] * (int(seconds // window) + 1)
    for arrival in handler.arrivals:
        slot = int((arrival - started_monotonic) // window)
        if 0 <= slot < len(per_window):
            per_window[slot] += 1
    return Outcome(
        mails=mails,
        seconds=seconds,
        finished=finished,
        delivered=row["delivered"],
        failed=row["failed"],
        suppressed=suppressed,
        max_attempts=row["max_attempts"],
        received=len(counts),
        duplicates=sum(n - 1 for n in counts.values()),
        relay=seen,
        per_window=per_window,
        worker_logs=logs,
    )


def report(outcome: Outcome, workers: int, rate: str) -> bool:
    ideal = LIMITS.ideal_seconds(outcome.mails)
    time_goal = 2 * ideal + 30
    seen = outcome.relay
    session_goal = 3 * LIMITS.connections + seen.episodes
    print(
        f"\nrelay: Postfix, {LIMITS.connections} sessions per client, {LIMITS.messages} mails"
        f" per {LIMITS.per_seconds} s ({LIMITS.rate:g}/s); {workers} workers,"
        f" RATE_PER_SECOND={rate}, default SMTP_CONNECTIONS"
    )
    state = "sent" if outcome.finished else "NOT sent, gave up"
    print(
        f"mails {outcome.mails}: delivered {outcome.delivered}, failed {outcome.failed},"
        f" suppressed {outcome.suppressed}; at the sink {outcome.received} recipients,"
        f" {outcome.duplicates} duplicates; attempts per sent mail at most {outcome.max_attempts}"
    )
    print(
        f"time {outcome.seconds:.1f} s ({state}); relay's ideal {ideal:.0f} s;"
        f" ratio {outcome.seconds / ideal:.2f}× ideal (goal ≤ {time_goal:.0f} s,"
        f" {time_goal / ideal:.1f}×)"
    )
    print(
        f"sessions opened {seen.connections} (refused {seen.refused_connections}),"
        f" mails refused {seen.refused_mail}, push-back episodes {seen.episodes};"
        f" goal ≤ {session_goal} sessions (3 × {LIMITS.connections} + {seen.episodes})"
    )
    misses = [
        miss
        for miss, failed in (
            ("not all delivered", not outcome.finished or outcome.delivered < outcome.mails),
            (f"slower than {time_goal:.0f} s", outcome.seconds > time_goal),
            ("sessions over budget", seen.connections > session_goal),
            ("failed mail", outcome.failed > 0),
            ("suppressed subscribers", outcome.suppressed > 0),
        )
        if failed
    ]
    print(
        f"mails at the sink per {LIMITS.per_seconds} s (the relay lets {LIMITS.messages}):"
        f" {' '.join(str(n) for n in outcome.per_window)}"
    )
    print("goal: " + ("met" if not misses else "MISSED (" + "; ".join(misses) + ")"))
    return not misses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mails", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", default="1000", help="NEWSLETTER_RATE_PER_SECOND (1000)")
    parser.add_argument("--logs", action="store_true", help="print the workers' last log lines")
    parser.add_argument(
        "--give-up-after", type=float, default=180.0, help="seconds (180: twice the goal)"
    )
    args = parser.parse_args()
    try:
        outcome = asyncio.run(run(args.mails, args.workers, args.rate, args.give_up_after))
    except PostfixUnavailable as exc:
        raise SystemExit(f"bench/relay.py needs a real Postfix: {exc}") from None
    if args.logs:
        for n, log in enumerate(outcome.worker_logs):
            print(f"--- worker {n} (last lines) ---\n{log}")
    sys.exit(0 if report(outcome, args.workers, args.rate) else 1)


if __name__ == "__main__":
    main()
