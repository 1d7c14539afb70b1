"""`newsletter status [--watch]` as an operator runs it: a real process, real database."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid

from newsletter.core.db import Database
from tests.conftest import ROOT, TEST_SECRET_KEY, admin_execute, with_database
from tests.support.ops_seed import seed_issue


def cli_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE_URL=database_url,
        NEWSLETTER_SECRET_KEY=TEST_SECRET_KEY,
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
    assert "발송 중" in output  # the state in the console's Korean word
    assert "56.0 %" in output and "100통 중 56통 처리" in output  # sent + failed + bounced
    assert "받는 쪽 메일 서버가 받아 감" in output
    assert "실패 5통, 나중에 반송 1통" in output
    assert "한도 20통/초" in output
    assert re.search(r"완료 예상 \d\d:\d\d:\d\d KST", output)
    assert re.search(r"시작 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d KST", output)
    assert "없는 메일 주소" in output  # 550 explained, not just a number
    assert "일시적인 거절 — 자동으로 다시 보냅니다" in output  # the 451 rows
    assert "시도" in output and "다시 보낸" in output  # what the attempts figure counts
    assert "살아 있는 작업자 없음" in output  # no worker heartbeat: said loudly


async def test_status_without_any_issue(database_url: str) -> None:
    code, output = await run_cli(database_url, "status")
    assert code == 0
    assert "아직 발송을 시작한 호가 없습니다." in output


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
    first = await asyncio.wait_for(process.stdout.readuntil("처리".encode()), 30)
    assert "40통 중 10통".encode() in first
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
    final = rest.decode().rsplit("뉴스레터", 1)[-1]
    assert "발송 완료" in final
    assert "100.0 %" in final and "40통 중 40통 처리" in final


async def test_an_idle_worker_is_called_alive_not_sending(database_url: str, db: Database) -> None:
    seeded = await seed_issue(db, sent=10)
    await db.pool.execute(
        "UPDATE issues SET status = 'sent', finished_at = now() WHERE id = $1", seeded.issue_id
    )
    await db.pool.execute("INSERT INTO workers (worker_id, host, pid) VALUES ('vm:1', 'vm', 1)")
    code, output = await run_cli(database_url, "status")
    assert code == 0, output
    assert "발송 완료" in output
    assert "살아 있는 작업자 1개" in output
    assert "개 발송 중" not in output


async def test_a_database_nobody_migrated_is_a_clear_error(pg_admin_url: str) -> None:
    name = f"nl_unmigrated_{uuid.uuid4().hex[:8]}"
    await admin_execute(pg_admin_url, f'CREATE DATABASE "{name}"')
    try:
        code, output = await run_cli(with_database(pg_admin_url, name), "status")
    finally:
        await admin_execute(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert code == 2
    assert "run 'newsletter migrate' first" in output
    assert "Traceback" not in output
