"""Signup throughput and latency against a running server, beside GET /healthz.

    .venv/bin/python bench/signup.py [--seconds 10] [--connections 50]

Starts `newsletter serve` (one process, default signup limits) on a fresh database — the server in
$NEWSLETTER_TEST_DATABASE_URL if set, else an embedded PostgreSQL — and loads
it with wrk (installed with apt-get when missing). Each POST /subscribe uses a
new address, so every request does the full work: validation, limit counters,
subscriber upsert, consent evidence and the queued confirmation mail.
The reference is the same server answering GET /healthz at the same
concurrency; the goal (issue 23) is signup >= 40% of that rate with a p99 at
most 4x healthz's p99, both from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile

import asyncpg
from common import SECRET, ServerDatabase, wait_for_health

from tests.conftest import free_port
from tests.support.processes import serve_env

LUA_REPORT = """
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d bad=%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end
"""

LUA_SIGNUP = """
local counter = 0
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads .. "-" .. os.time())
  thread:set("threads_seen", threads)
end
request = function()
  counter = counter + 1
  local body = "email=bench-" .. tid .. "-" .. counter ..
    "%40example.com&name=%EA%B9%80%ED%8F%AC%EC%8B%9C%EB%AF%BC&consent=on"
  -- Residents come from many addresses: rotate X-Forwarded-For (trusted from
  -- 127.0.0.1) so the per-IP limit stays at its real default, not disabled.
  local ip = "10." .. threads_seen .. "." .. (math.floor(counter / 250) % 250) .. "." ..
    (counter % 250)
  return wrk.format("POST", "/subscribe",
    {["Content-Type"] = "application/x-www-form-urlencoded", ["X-Forwarded-For"] = ip}, body)
end
"""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found; installing it with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("could not install wrk")
    return found


def run_wrk(wrk: str, url: str, script: str, seconds: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script + LUA_REPORT)
    try:
        result = subprocess.run(
            [
                wrk,
                "-t2",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "5s",
                "-s",
                handle.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(handle.name)
    match = re.search(
        r"RESULT requests=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+) bad=(\d+)",
        result.stdout,
    )
    if not match:
        raise SystemExit("unexpected wrk output:\n" + result.stdout + result.stderr)
    requests, duration, p50, p99, bad = (int(x) for x in match.groups())
    return {
        "rate": requests / (duration / 1e6),
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "requests": requests,
        "bad": bad,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    wrk = ensure_wrk()

    database = ServerDatabase()
    database_url = database.url

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
        env=serve_env(database_url, SECRET_KEY=SECRET),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base)
        # Warm both paths (connection pool, prepared statements) before measuring.
        run_wrk(wrk, base + "/healthz", "", 2, args.connections)
        run_wrk(wrk, base + "/subscribe", LUA_SIGNUP, 2, args.connections)
        health = run_wrk(wrk, base + "/healthz", "", args.seconds, args.connections)
        signup = run_wrk(wrk, base + "/subscribe", LUA_SIGNUP, args.seconds, args.connections)
    finally:
        server.terminate()
        server.wait(timeout=30)

    rows = asyncio.run(_count(database_url))
    database.drop()

    ratio = signup["rate"] / health["rate"]
    print(
        f"\nPOST /subscribe vs GET /healthz — {args.connections} connections, "
        f"{args.seconds}s each, one server process, {os.cpu_count()} cores shared with wrk"
    )
    print(f"{'':18}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    for label, figures in (("GET /healthz", health), ("POST /subscribe", signup)):
        print(
            f"{label:18}{figures['rate']:>10.0f}{figures['p50_ms']:>10.1f}"
            f"{figures['p99_ms']:>10.1f}{figures['bad']:>10.0f}"
        )
    p99_times = signup["p99_ms"] / health["p99_ms"]
    print(
        f"signup / healthz ratio: {ratio:.2f} (goal >= 0.40); "
        f"signup p99 {signup['p99_ms']:.1f} ms = {p99_times:.1f}x healthz's (goal <= 4x)"
    )
    print(f"subscribers stored: {rows[0]}, confirmation mails queued: {rows[1]}")
    ok = ratio >= 0.40 and p99_times <= 4 and signup["bad"] == 0
    print("goals met" if ok else "GOALS NOT MET")
    return 0 if ok else 1


async def _count(url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(url)
    try:
        subscribers = await conn.fetchval("SELECT count(*) FROM subscribers")
        queued = await conn.fetchval("SELECT count(*) FROM outbox WHERE kind = 'confirm'")
        return int(subscribers), int(queued)
    finally:
        await conn.close()


if __name__ == "__main__":
    raise SystemExit(main())
