"""``newsletter serve`` as a real process on a free port, for the tests that
need a real HTTP server (timeouts, ports, load beside another request), and
``newsletter worker`` processes for the tests and benches of real delivery."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import IO

import httpx

from newsletter.core.settings import SmtpTarget
from tests.conftest import ROOT, TEST_SECRET_KEY, SmtpServer, free_port


@dataclass(frozen=True)
class Served:
    base_url: str
    port: int
    process: subprocess.Popen[bytes]


def serve_env(database_url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_DATABASE_URL=database_url, NEWSLETTER_SECRET_KEY=TEST_SECRET_KEY)
    env.update({f"NEWSLETTER_{name}": value for name, value in settings.items()})
    return env


def worker_env(database_url: str, smtp: SmtpTarget, **settings: str) -> dict[str, str]:
    """:func:`serve_env` for ``newsletter worker``: the city's public address
    and ``smtp`` as the relay; ``settings`` may override either."""
    return serve_env(
        database_url,
        **{
            "BASE_URL": "https://newsletter.gimpo.go.kr",
            "SMTP_URL": f"smtp://{smtp.host}:{smtp.port}",
            **settings,
        },
    )


async def wait_until_up(url: str, deadline: float = 30.0) -> None:
    start = time.monotonic()
    async with httpx.AsyncClient() as http:
        while True:
            try:
                await http.get(url)
                return
            except httpx.TransportError:
                if time.monotonic() - start > deadline:
                    raise
                await asyncio.sleep(0.1)


@asynccontextmanager
async def serving(database_url: str, *args: str, **settings: str) -> AsyncIterator[Served]:
    """``newsletter serve`` with ``NEWSLETTER_<name>=value`` for each setting;
    ``BASE_URL`` is the server's own address unless given. Its log goes to a
    temporary file (a pipe nobody reads would fill and stall the server) and
    is shown if it does not start."""
    port = free_port()
    settings.setdefault("BASE_URL", f"http://127.0.0.1:{port}")
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(port), *args],
        env=serve_env(database_url, **settings),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        try:
            await wait_until_up(f"http://127.0.0.1:{port}/healthz")
        except httpx.TransportError:
            process.kill()
            process.wait(timeout=10)
            log.seek(0)
            raise AssertionError(f"newsletter serve did not start: {log.read().decode()}") from None
        yield Served(f"http://127.0.0.1:{port}", port, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        log.close()


@dataclass
class WorkerProcesses:
    """``newsletter worker`` processes, each logging to a temporary file."""

    processes: list[subprocess.Popen[bytes]]
    logs: list[IO[bytes]]
    kept: list[str] | None = None  # what they logged, once stopped

    def exited(self) -> list[int]:
        return [n for n, p in enumerate(self.processes) if p.poll() is not None]

    def log_of(self, n: int, tail: int = 4000) -> str:
        if self.kept is not None:
            return self.kept[n][-tail:]
        log = self.logs[n]
        log.seek(0)
        return log.read().decode(errors="replace")[-tail:]

    def kill(self, n: int) -> None:
        process = self.processes[n]
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM each (finish in flight, give the rest back), SIGKILL what lingers."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self.kept is None:
            self.kept = [self.log_of(n, tail=1_000_000) for n in range(len(self.logs))]
        for log in self.logs:
            log.close()


def start_workers(
    env: dict[str, str],
    count: int,
    *,
    lease_seconds: float | None = None,
    prefixes: list[list[str]] | None = None,
) -> WorkerProcesses:
    """``count`` real ``newsletter worker`` processes with ``env`` (see
    :func:`worker_env`). ``prefixes[n]`` runs worker n under another command,
    e.g. ``["ip", "netns", "exec", "h1"]``."""
    args = [sys.executable, "-m", "newsletter", "worker"]
    if lease_seconds is not None:
        args += ["--lease-seconds", str(lease_seconds)]
    processes = []
    logs: list[IO[bytes]] = []
    for n in range(count):
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        logs.append(log)
        prefix = prefixes[n] if prefixes else []
        processes.append(
            subprocess.Popen(
                [*prefix, *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log
            )
        )
    return WorkerProcesses(processes, logs)


async def spawn_worker(env: dict[str, str], lease_seconds: float = 2) -> asyncio.subprocess.Process:
    """One ``newsletter worker`` (output dropped), for a test that signals it itself."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "newsletter",
        "worker",
        "--lease-seconds",
        str(lease_seconds),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def wait_for_messages(server: SmtpServer, count: int, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while len(server.handler.messages) < count:
            await asyncio.sleep(0.02)


async def kill_after(process: asyncio.subprocess.Process, server: SmtpServer, count: int) -> None:
    """SIGKILL the worker once ``count`` mails reached the server (or waiting failed)."""
    try:
        await wait_for_messages(server, count)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
