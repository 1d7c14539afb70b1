"""`newsletter dev` as a newcomer runs it: a real process, the embedded PostgreSQL,
the flags, a busy port, the log a person reads, and the CLI pointed at it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port


@pytest.fixture
def dev_dir() -> Iterator[Path]:
    # Inside the checkout, like `.dev` itself: the embedded server's system user
    # must be able to reach its data directory (pytest's tmp dirs are private).
    directory = ROOT / ".dev" / f"test-dev-{uuid.uuid4().hex[:8]}"
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def dev_env(dev_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_DEV_DIR=str(dev_dir), NO_COLOR="1")
    env.pop("FORCE_COLOR", None)
    return env


def newsletter(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def wait_until_healthy(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, "newsletter dev exited early"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("newsletter dev never answered /healthz")


def test_dev_on_chosen_ports_and_the_cli_finds_it(dev_dir: Path) -> None:
    port, smtp_port = free_port(), free_port()
    env = dev_env(dev_dir)  # no database URL: the embedded PostgreSQL, as for a newcomer
    command = ["dev", "--port", str(port), "--smtp-port", str(smtp_port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_healthy(process, port)
        base = f"http://127.0.0.1:{port}"

        # The CLI reaches this dev setup without a URL copied from the banner.
        created = newsletter("--dev", "create-api-key", "--role", "ops", "--name", "me", env=env)
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        stats = httpx.get(f"{base}/api/v1/stats", headers={"Authorization": f"Bearer {key}"})
        assert stats.status_code == 200, stats.text

        signup = httpx.post(
            f"{base}/subscribe", data={"email": "hong@example.com", "consent": "on"}
        )
        assert signup.status_code == 200
        for _ in range(100):  # the dev worker sends it to the capture server on SMTP_PORT
            if "구독 확인" in httpx.get(f"{base}/dev/outbox").text:
                break
            time.sleep(0.1)
        assert "구독 확인" in httpx.get(f"{base}/dev/outbox").text

        status = newsletter("--dev", "status", env=env)
        assert status.returncode == 0, status.stderr
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err

    assert f"subscribe page    {base}/subscribe" in out
    assert f"capture SMTP      127.0.0.1:{smtp_port}" in out
    assert "--dev" in out and "Log times are KST" in out

    # What the person watching the terminal reads: short lines, no JSON, no initdb dump.
    lines = err.strip().splitlines()
    assert lines, "dev logs its requests"
    assert not [line for line in lines if line.lstrip().startswith("{")], err
    assert "initdb" not in err and "Success. You can now start" not in err
    assert "pg_ctl" not in err
    assert "\x1b[" not in err  # NO_COLOR
    stamp = r"^\d\d:\d\d:\d\d "
    assert re.search(stamp + r"web +POST /subscribe 200$", err, re.MULTILINE), err
    assert re.search(stamp + r"web +GET /healthz 200$", err, re.MULTILINE), err
    assert re.search(
        stamp + r"mail +captured .*구독 확인.* → h\*\*\*@example\.com$", err, re.MULTILINE
    ), err
    assert all(len(line) < 160 for line in lines), err

    # Stopped: the connection file is gone and the CLI says so in one line.
    assert not (dev_dir / "server.env").exists()
    after = newsletter("--dev", "status", env=env)
    assert after.returncode == 2
    assert after.stderr.strip().count("\n") == 0
    assert "no dev server is running" in after.stderr and "make dev" in after.stderr


@pytest.mark.parametrize("busy", ["web", "smtp"])
def test_a_busy_port_stops_dev_with_one_line(busy: str, dev_dir: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        taken_port = taken.getsockname()[1]
        port, smtp_port = (taken_port, free_port()) if busy == "web" else (free_port(), taken_port)
        result = newsletter(
            "dev", "--port", str(port), "--smtp-port", str(smtp_port), env=dev_env(dev_dir)
        )
    assert result.returncode != 0
    assert result.stdout == ""  # no banner, no demo key pointing at someone else's server
    [line] = result.stderr.strip().splitlines()
    assert f"port {taken_port} " in line and "already in use" in line
    assert ("--port" if busy == "web" else "--smtp-port") in line
    assert not (dev_dir / "pg").exists()  # nothing was started


def test_dev_flag_without_a_dev_server_says_what_to_do(dev_dir: Path) -> None:
    result = newsletter(
        "--dev", "create-api-key", "--role", "ops", "--name", "x", env=dev_env(dev_dir)
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "no dev server is running" in line and "make dev" in line


def test_make_dev_passes_the_ports_on() -> None:
    planned = subprocess.run(
        ["make", "-n", "dev", "PORT=8001", "SMTP_PORT=2526"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "newsletter dev --port 8001 --smtp-port 2526" in planned.stdout
