"""`newsletter create-user`, `disable-user`, `enable-user`, `reset-password`,
`list-users` as an operator runs them: a real process, a real database."""

from __future__ import annotations

import asyncio
import sys

from newsletter.core.db import Database
from newsletter.ops.users import verify_login
from tests.conftest import ROOT
from tests.ops.test_status_cli import cli_env


async def run(database_url: str, *args: str, stdin: bytes | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "newsletter",
        *args,
        cwd=ROOT,
        env=cli_env(database_url),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def test_create_user_with_a_generated_password_printed_once(
    database_url: str, db: Database
) -> None:
    code, output = await run(
        database_url, "create-user", "Hong@Gimpo.go.kr", "--role", "editor", "--name", "홍길동"
    )
    assert code == 0, output
    password = output.strip().splitlines()[-1]
    assert len(password) >= 20
    row = await db.pool.fetchrow("SELECT * FROM users")
    assert row is not None
    assert row["role"] == "editor" and row["name"] == "홍길동"
    assert row["password_hash"].startswith("$argon2id$")
    assert password not in row["password_hash"]
    assert row["must_change_password"]  # they choose their own at the first login
    async with db.pool.acquire() as conn:
        assert await verify_login(conn, "hong@gimpo.go.kr", password) is not None
        assert await verify_login(conn, "hong@gimpo.go.kr", "wrong") is None
    again, output = await run(
        database_url, "create-user", "hong@gimpo.go.kr", "--role", "ops", "--name", "또"
    )
    assert again == 2 and "already exists" in output
    audit = await db.pool.fetchval("SELECT actor FROM audit_log WHERE action = 'user.create'")
    assert audit == "cli"


async def test_password_from_stdin_disable_enable_and_reset(
    database_url: str, db: Database
) -> None:
    code, output = await run(
        database_url,
        "create-user",
        "ops@gimpo.go.kr",
        "--role",
        "ops",
        "--name",
        "박운영",
        "--password-stdin",
        "--require-totp",
        stdin=b"a long enough passphrase\n",
    )
    assert code == 0, output
    assert "a long enough passphrase" not in output
    short, output = await run(
        database_url,
        "create-user",
        "x@gimpo.go.kr",
        "--role",
        "ops",
        "--name",
        "짧음",
        "--password-stdin",
        stdin=b"short\n",
    )
    assert short == 2 and "at least 12 characters" in output
    async with db.pool.acquire() as conn:
        assert await verify_login(conn, "ops@gimpo.go.kr", "a long enough passphrase") is not None
    assert await db.pool.fetchval("SELECT totp_required FROM users WHERE email = 'ops@gimpo.go.kr'")

    code, output = await run(database_url, "disable-user", "ops@gimpo.go.kr")
    assert code == 0, output
    async with db.pool.acquire() as conn:
        assert await verify_login(conn, "ops@gimpo.go.kr", "a long enough passphrase") is None
    code, output = await run(database_url, "list-users")
    assert "disabled" in output and "ops@gimpo.go.kr" in output
    code, _ = await run(database_url, "enable-user", "ops@gimpo.go.kr")
    assert code == 0

    code, output = await run(database_url, "reset-password", "ops@gimpo.go.kr")
    assert code == 0, output
    fresh = output.strip().splitlines()[-1]
    async with db.pool.acquire() as conn:
        assert await verify_login(conn, "ops@gimpo.go.kr", "a long enough passphrase") is None
        user = await verify_login(conn, "ops@gimpo.go.kr", fresh)
        assert user is not None and user.must_change_password
    code, output = await run(database_url, "disable-user", "nobody@gimpo.go.kr")
    assert code == 2 and "no account nobody@gimpo.go.kr" in output
