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
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter.core.db import Database, migrate
from newsletter.core.settings import Settings
from newsletter.editorial import issues
from newsletter.ops.audit import Actor

ADMIN_URL = os.environ.get(
    "NEWSLETTER_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SECRET = "bench-Qz7vR2kLp9XwN4tB6yHc3mJ8"
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def worker_env(url: str, port: int, rate: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        {
            "NEWSLETTER_DATABASE_URL": url,
            "NEWSLETTER_SECRET_KEY": SECRET,
            "NEWSLETTER_BASE_URL": "https://newsletter.gimpo.go.kr",
            "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{port}",
            "NEWSLETTER_RATE_PER_SECOND": str(rate),
            "NEWSLETTER_SMTP_CONNECTIONS": "4",
            "NEWSLETTER_BATCH_SIZE": str(BATCH),
        }
    )
    return env


async def fresh_database(count: int) -> str:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    url = with_database(ADMIN_URL, DATABASE)
    await migrate(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO subscribers (email, name, status, confirmed_at, last_consent_at)"
            " SELECT 'r' || g || '@example.com', '김포시민', 'active', now(), now()"
            " FROM generate_series(1, $1) g",
            count,
        )
    finally:
        await conn.close()
    return url


async def start_issue(db: Database, settings: Settings) -> int:
    item = await db.pool.fetchval(
        "INSERT INTO news_items (title, summary, body) VALUES ($1, $2, $3) RETURNING id",
        "한강 야간 축제 개최",
        "김포 한강 야간 축제가 열립니다.",
        "<p>시민 여러분을 초대합니다.</p>",
    )
    row = await issues.create(
        db,
        Actor(name="bench", role="editor"),
        issues.IssueFields("11월 소식", "안녕하세요.", [item]),
    )
    async with db.transaction() as conn:
        await issues.start_issue(conn, row["id"], settings)
    issue_id: int = row["id"]
    return issue_id


def peak_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best = start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def run_case(
    count: int, rate: float, kill_after: float | None, lease_only: bool
) -> dict[str, Any]:
    url = await fresh_database(count)
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    env = worker_env(url, port, rate)
    settings = Settings.from_env(env)
    db = await Database.connect(url, min_size=1, max_size=3)
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 - started once, never awaited
            [sys.executable, "-m", "newsletter", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 60  # both up, liveness locks taken
        while await db.pool.fetchval("SELECT count(lock_key) FROM workers") < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start")
            await asyncio.sleep(0.05)
        issue_id = await start_issue(db, settings)
        started = time.monotonic()
        killed = False
        while True:
            if kill_after is not None and not killed and time.monotonic() - started >= kill_after:
                victim = procs[0]
                if lease_only:  # the others cannot see that it died: lease expiry only
                    await db.pool.execute(
                        "UPDATE workers SET lock_key = NULL WHERE pid = $1", victim.pid
                    )
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                killed = True
            status = await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", issue_id)
            if status == "sent":
                break
            await asyncio.sleep(0.05)
        total = time.monotonic() - started
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
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
        "peak": peak_window([t for t, _ in arrivals]),
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
