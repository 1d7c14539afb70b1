"""Delivery throughput: one issue to N subscribers into Postfix's smtp-sink.

Reference, measured in the same run on the same sink: Postfix's smtp-source
sending the same count and size at the same concurrency over reused
connections (``-d -s 10``). Our figure is the whole path: real
``newsletter worker`` processes claiming from PostgreSQL, the rate limiter
(set high: "off"), send-time checks, personalising each message, SMTP, and
recording outcomes.

    .venv/bin/python bench/delivery.py                  # 20k: 1 and 2 workers, 100k RSS
    .venv/bin/python bench/delivery.py --counts 20000 --workers 1
    .venv/bin/python bench/delivery.py --counts 20000 --workers 1 --dkim   # every mail signed

Needs PostgreSQL (NEWSLETTER_BENCH_DATABASE_URL, default the local server)
and Postfix's smtp-sink/smtp-source (installed with apt-get if missing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from common import add_subscribers, fresh_database, worker_env

from newsletter.core.db import Database
from newsletter.core.dkim import signer_for
from newsletter.core.settings import Settings
from newsletter.delivery.message import IssueMessage, Recipient
from newsletter.editorial import issues
from newsletter.ops.audit import Actor
from tests.conftest import free_port
from tests.support.dkim import session_key
from tests.support.processes import start_workers

DATABASE = "nl_bench_delivery"
CONNECTIONS = 10
ITEMS = 2  # news items per issue: ≈20 KB per mail with the MJML layout
PARAGRAPH = (
    "김포시는 시민 여러분의 안전과 편의를 위해 한강 야간 축제 기간 동안 임시 셔틀버스를 "
    "운행합니다. 자세한 운행 시간과 정류장 위치는 시 누리집에서 확인하실 수 있습니다. "
)


def ensure_postfix_tools() -> None:
    if shutil.which("smtp-sink") and shutil.which("smtp-source"):
        return
    print("installing postfix (for smtp-sink and smtp-source) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-q", "postfix"], check=True, env=env)


def start_sink(port: int) -> subprocess.Popen[bytes]:
    sink = subprocess.Popen(
        ["smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return sink
        time.sleep(0.05)
    raise RuntimeError("smtp-sink did not start")


def reference(port: int, count: int, size: int) -> float:
    """smtp-source: same count and size, 10 sessions, connections reused."""
    started = time.perf_counter()
    subprocess.run(
        [
            "smtp-source", "-s", str(CONNECTIONS), "-l", str(size), "-m", str(count), "-d",
            "-f", "a@example.org", "-t", "b@example.org", f"127.0.0.1:{port}",
        ],
        check=True,
    )  # fmt: skip
    return count / (time.perf_counter() - started)


def dkim_env() -> dict[str, str]:
    """A fresh 2048-bit signing key, as the settings take it."""
    return {"DKIM_SELECTOR": "bench", "DKIM_PRIVATE_KEY": session_key().private_pem}


def bench_env(url: str, port: int, extra: dict[str, str]) -> dict[str, str]:
    """The workers' environment: rate limit "off", 10 connections, batches of 500."""
    return worker_env(
        url,
        port,
        RATE_PER_SECOND="1000000",
        SMTP_CONNECTIONS=str(CONNECTIONS),
        BATCH_SIZE="500",
        BOUNCE_ADDRESS="bounce@gimpo.go.kr",
        **extra,
    )


async def start_big_issue(db: Database, settings: Settings) -> tuple[int, int, float]:
    """An issue of a few news items (~20 KB per mail); returns (id, bytes, snapshot s)."""
    ids = []
    for n in range(ITEMS):
        body = f"<p>{PARAGRAPH}</p>"
        ids.append(
            await db.pool.fetchval(
                "INSERT INTO news_items (title, summary, body, link) VALUES ($1, $2, $3, $4)"
                " RETURNING id",
                f"김포시 소식 {n + 1}: 한강 야간 축제 셔틀버스 운행 안내",
                PARAGRAPH,
                body,
                f"https://www.gimpo.go.kr/news/{n + 1}",
            )
        )
    editor = Actor(name="bench", role="editor")
    row = await issues.create(
        db, editor, issues.IssueFields("11월 김포시 소식", "안녕하세요.", ids)
    )
    started = time.perf_counter()
    async with db.transaction() as conn:
        await issues.start_issue(conn, row["id"], settings)
    snapshot = time.perf_counter() - started
    issue = await db.pool.fetchrow(
        "SELECT subject, rendered_html, rendered_text FROM issues WHERE id = $1", row["id"]
    )
    assert issue is not None
    message = IssueMessage(
        settings,
        issue_id=row["id"],
        subject=issue["subject"],
        html_body=issue["rendered_html"],
        text_body=issue["rendered_text"],
        signer=signer_for(settings),
    )
    sample = message.render(
        Recipient(1, 1, "0123456789abcdef", "r1@example.com", "김포시민1"), "MQ.abcdefghijklmnop"
    )
    return row["id"], len(sample), snapshot


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends_cpu(database: str) -> float:
    """CPU used so far by the PostgreSQL backends serving ``database`` (this machine)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"postgres: ") and f" {database} ".encode() in cmdline:
                total += cpu_seconds(int(entry.name))
    return total


def rss_kb(pid: int, field: str = "VmHWM") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def run_workers(
    env: dict[str, str],
    workers: int,
    issue_id: int,
    db: Database,
    profile: Path | None = None,
) -> dict[str, float]:
    started = time.perf_counter()
    running = start_workers(env, workers)
    procs = running.processes
    spies = [  # py-spy attached to each worker, stopped with SIGINT when the issue is sent
        subprocess.Popen(  # noqa: ASYNC220 - started once, never awaited
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                str(profile.with_name(f"{profile.name}.w{n}.txt")),
                "-p",
                str(p.pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n, p in enumerate(procs)
        if profile is not None
    ]
    peak = 0
    startup_cpu: float | None = None  # CPU spent before the first claim (imports, connects)
    startup_db_cpu = 0.0
    try:
        while True:
            status = await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", issue_id)
            peak = max([peak, *(rss_kb(p.pid) for p in procs)])
            if startup_cpu is None and await db.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM deliveries WHERE issue_id = $1"
                " AND status <> 'queued')",
                issue_id,
            ):
                startup_cpu = sum(cpu_seconds(p.pid) for p in procs)
                startup_db_cpu = backends_cpu(DATABASE)
            if status == "sent":
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited early")
            await asyncio.sleep(0.1)
        total = time.perf_counter() - started
        cpu = sum(cpu_seconds(p.pid) for p in procs) - (startup_cpu or 0.0)
        db_cpu = backends_cpu(DATABASE) - startup_db_cpu
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(timeout=30)
        running.stop()
    span = await db.pool.fetchrow(
        "SELECT count(*) AS n, extract(epoch FROM max(sent_at) - min(sent_at)) AS s"
        " FROM deliveries WHERE issue_id = $1 AND status = 'sent'",
        issue_id,
    )
    assert span is not None
    return {
        "sent": float(span["n"]),
        "total": total,
        "steady_rate": float(span["n"]) / max(float(span["s"] or 0.0), 1e-9),
        "rate": float(span["n"]) / total,
        "peak_rss_mb": peak / 1024,
        "cpu_us_per_msg": cpu / max(float(span["n"]), 1.0) * 1e6,
        "db_cpu_us_per_msg": db_cpu / max(float(span["n"]), 1.0) * 1e6,
    }


async def measure(
    count: int, workers: int, port: int, extra: dict[str, str], profile: Path | None = None
) -> tuple[dict[str, float], int]:
    url = await fresh_database(DATABASE)
    await add_subscribers(url, count, numbered_names=True)
    env = bench_env(url, port, extra)
    settings = Settings.from_env(env)
    db = await Database.connect(url, min_size=1, max_size=3)
    try:
        issue_id, size, snapshot = await start_big_issue(db, settings)
        result = await run_workers(env, workers, issue_id, db, profile)
        result["snapshot_s"] = snapshot
    finally:
        await db.close()
    return result, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counts", type=int, nargs="+", default=[20000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rss-count", type=int, default=100000, help="0 to skip")
    parser.add_argument(
        "--profile",
        type=Path,
        help="attach py-spy to each worker; raw stacks go to PROFILE.w<n>.txt",
    )
    parser.add_argument("--repeat", type=int, default=1, help="run each case this often")
    parser.add_argument("--dkim", action="store_true", help="sign every mail (a fresh key)")
    args = parser.parse_args()
    extra = dkim_env() if args.dkim else {}
    ensure_postfix_tools()
    port = free_port()
    sink = start_sink(port)
    results = []
    try:
        runs = [(c, w) for _ in range(args.repeat) for c in args.counts for w in args.workers]
        if args.rss_count:
            runs.append((args.rss_count, 1))
        for count, workers in runs:
            profile = args.profile and args.profile.with_name(
                f"{args.profile.name}-{count}x{workers}"
            )
            result, size = asyncio.run(measure(count, workers, port, extra, profile))
            # The reference runs right after each case (same sink, same count
            # and size), so both see about the same load from the rest of the box.
            result["reference"] = reference(port, count, size)
            results.append((count, workers, size, result))
    finally:
        sink.terminate()
        sink.wait()
    signed = ", DKIM-signed (7-bit)" if args.dkim else ""
    print(f"\nmessage size ≈ {results[0][2] / 1024:.1f} KB (text + html, personalised{signed})")
    print(f"reference: smtp-source -d -s {CONNECTIONS} right after each case, same sink")
    print(
        f"{'recipients':>10} {'workers':>7} {'total s':>8} {'msg/s':>8} {'steady':>8}"
        f" {'ref msg/s':>9} {'ratio':>6} {'CPU µs/msg':>10} {'PG µs/msg':>9} {'peak RSS MB':>11}"
        f" {'snapshot s':>10}"
    )
    for count, workers, _size, r in results:
        print(
            f"{count:>10,} {workers:>7} {r['total']:>8.1f} {r['rate']:>8,.0f}"
            f" {r['steady_rate']:>8,.0f} {r['reference']:>9,.0f} {r['rate'] / r['reference']:>6.2f}"
            f" {r['cpu_us_per_msg']:>10.0f} {r['db_cpu_us_per_msg']:>9.0f}"
            f" {r['peak_rss_mb']:>11.0f} {r['snapshot_s']:>10.2f}"
        )


if __name__ == "__main__":
    main()
