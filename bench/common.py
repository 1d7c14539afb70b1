"""What the benches share: a fresh database per run, subscribers in bulk, and
the environment of the ``newsletter worker`` processes they start.

A bench runs as a script (``.venv/bin/python bench/x.py``), so this directory
is on ``sys.path`` and ``from common import …`` finds this module. Importing it
puts the repository's root there too, for ``newsletter`` and for the pieces
the benches take from ``tests.support`` (worker processes, SMTP sinks, issues).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter.core.db import migrate
from newsletter.core.settings import SmtpTarget
from tests.conftest import admin_execute, with_database
from tests.support import processes

ADMIN_URL = os.environ.get(
    "NEWSLETTER_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SECRET = "bench-Qz7vR2kLp9XwN4tB6yHc3mJ8"


async def fresh_database(name: str, admin_url: str = ADMIN_URL) -> str:
    """Database ``name`` on the server, created anew (one left by an earlier
    run is dropped) and migrated; its URL."""
    await admin_execute(
        admin_url,
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        f'CREATE DATABASE "{name}"',
    )
    url = with_database(admin_url, name)
    await migrate(url)
    return url


async def drop_database(name: str, admin_url: str = ADMIN_URL) -> None:
    await admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class ServerDatabase:
    """A fresh, migrated database for a bench that starts ``newsletter serve``:
    on the server of $NEWSLETTER_TEST_DATABASE_URL if set, else on an embedded
    PostgreSQL (a newcomer's laptop). :meth:`drop` removes it (and stops the
    embedded server)."""

    def __init__(self) -> None:
        admin_url = os.environ.get("NEWSLETTER_TEST_DATABASE_URL")
        self.embedded: Any = None
        if admin_url is None:
            from newsletter.dev.embedded import start_embedded_postgres

            self.embedded = start_embedded_postgres(ROOT / ".dev" / "bench-pg")
            admin_url = self.embedded.get_uri()
        self.admin_url: str = admin_url
        self.name = f"nl_bench_{uuid.uuid4().hex[:8]}"
        self.url = asyncio.run(fresh_database(self.name, admin_url))

    def drop(self) -> None:
        asyncio.run(drop_database(self.name, self.admin_url))
        if self.embedded is not None:
            self.embedded.cleanup()


def wait_for_health(base: str, tries: int = 100) -> None:
    """Until ``base``/healthz answers (a server just started), at most ``tries`` × 0.1 s."""
    for _ in range(tries):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1).close()  # noqa: S310
            return
        except OSError:
            time.sleep(0.1)


async def add_subscribers(url: str, count: int, *, numbered_names: bool = False) -> None:
    """``count`` active subscribers r1@example.com, r2@example.com … in one
    statement, each named 김포시민 (김포시민1, 김포시민2 … with ``numbered_names``).
    Unlike the tests' helper the numbers are not padded: a bench may add
    100,000 and more."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO subscribers (email, name, status, confirmed_at, last_consent_at)
            SELECT 'r' || g || '@example.com', '김포시민' || CASE WHEN $2 THEN g::text ELSE '' END,
                   'active', now(), now()
            FROM generate_series(1, $1) g
            """,
            count,
            numbered_names,
        )
    finally:
        await conn.close()


def worker_env(database_url: str, smtp_port: int, **settings: str) -> dict[str, str]:
    """The environment of a bench's ``newsletter worker``: this process's
    environment without any ``NEWSLETTER_`` variable, then the bench's secret,
    the city's public address, the SMTP server on 127.0.0.1:``smtp_port`` and
    ``NEWSLETTER_<name>`` for each of ``settings``."""
    return processes.worker_env(
        database_url, SmtpTarget("127.0.0.1", smtp_port), SECRET_KEY=SECRET, **settings
    )
