"""`newsletter status [--watch]` as an operator runs it: a real process, real database."""

from __future__ import annotations

import asyncio
import os
import re
import sys

from newsletter.core.db import Database
from tests.conftest import ROOT
from tests.support.ops_seed import seed_issue


def cli_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE_URL=database_url,
        NEWSLETTER_SECRET_KEY="test-secret-key-0123456789",
        NEWSLETTER_RATE_PER_SECOND="20",
        COLUMNS="110",
        NO_COLOR="1",
    )
    return env


async def run_cli(database_url: str, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "newsletter",
        *args,
        cwd=ROOT,
        env=cli_env(database_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def test_status_explains_a_send_in_plain_words(database_url: str, db: Database) -> None:
    seeded = await seed_issue(db, queued=40, sending=2, sent=50, failed=5, bounced=1, retrying=2)
    code, output = await run_cli(database_url, "status")
    assert code == 0, output
    assert "시정 소식 11월호" in output
    assert f"issue id {seeded.issue_id}" in output
    assert "56.0 %" in output and "56 of 100 handled" in output  # sent + failed + bounced
    assert "accepted by the mail servers" in output
    assert "5 failed, 1 bounced back later" in output
    assert "limit 20/s" in output
    assert "Time left" in output
    assert re.search(r"done near \d\d:\d\d:\d\d KST", output)
    assert re.search(r"Started +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d KST", output)
    assert "refused for good" in output  # 550 explained, not just a number
    assert "temporary refusal; retried automatically" in output  # the 451 rows
    assert "none alive" in output  # no worker heartbeat: said loudly


async def test_status_without_any_issue(database_url: str) -> None:
    code, output = await run_cli(database_url, "status")
    assert code == 0
    assert "No issue has started sending yet." in output


async def test_unknown_issue_is_a_clear_error(database_url: str) -> None:
    code, output = await run_cli(database_url, "status", "--issue", "424242")
    assert code == 2
    assert "no issue 424242" in output


async def test_watch_follows_the_send_to_the_end(database_url: str, db: Database) -> None:
    seeded = await seed_issue(db, queued=30, sent=10)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "newsletter",
        "status",
        "--watch",
        "--interval",
        "0.2",
        cwd=ROOT,
        env=cli_env(database_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readuntil(b"handled"), 30)
    assert b"10 of 40" in first
    # The workers finish the send while the view is open.
    await db.pool.execute(
        "UPDATE deliveries SET status = 'sent', sent_at = now(), smtp_code = 250 "
        "WHERE issue_id = $1",
        seeded.issue_id,
    )
    await db.pool.execute(
        "UPDATE issues SET status = 'sent', finished_at = now() WHERE id = $1", seeded.issue_id
    )
    rest, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    final = rest.decode().rsplit("Newsletter", 1)[-1]
    assert "finished" in final
    assert "100.0 %" in final and "40 of 40 handled" in final
