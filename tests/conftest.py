"""Shared fixtures: a real PostgreSQL (one fresh database per test, cloned from
a migrated template) and real SMTP servers (aiosmtpd) running in-process."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from litestar import Litestar

from newsletter.app import create_app
from newsletter.core.db import Database, migrate
from newsletter.core.settings import Settings, SmtpTarget
from newsletter.delivery.worker import Worker

ROOT = Path(__file__).resolve().parent.parent
# Random-looking, so it passes the key-strength check like a real one must.
TEST_SECRET_KEY = "t3St-Kq8vW2xLr9ZpN4cYb7HfJ6dMs1aGe5U"
RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """The server under test: $NEWSLETTER_TEST_DATABASE_URL, else an embedded one."""
    url = os.environ.get("NEWSLETTER_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from newsletter.dev.embedded import start_embedded_postgres

    server = start_embedded_postgres(ROOT / ".dev" / "test-pg")
    yield server.get_uri()


async def admin_execute(url: str, *statements: str) -> None:
    """Statements for the server itself (CREATE/DROP DATABASE), one connection."""
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_database(pg_admin_url: str) -> Iterator[str]:
    """A database migrated once per run; each test clones it (fast, isolated)."""
    name = f"nl_tpl_{RUN_ID}"
    asyncio.run(admin_execute(pg_admin_url, f'CREATE DATABASE "{name}"'))
    asyncio.run(migrate(with_database(pg_admin_url, name)))
    yield name
    asyncio.run(admin_execute(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def database_url(pg_admin_url: str, template_database: str) -> AsyncIterator[str]:
    name = f"nl_t_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    await admin_execute(pg_admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield with_database(pg_admin_url, name)
    await admin_execute(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.connect(database_url, min_size=1, max_size=5)
    yield database
    await database.close()


# --- SMTP -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class CapturedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class RecordingHandler:
    """Keeps every message; ``reply`` lets a test make the server refuse mail."""

    messages: list[CapturedMail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rcpt_reply: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_reply.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        with self.lock:
            self.messages.append(
                CapturedMail(
                    str(envelope.mail_from),
                    list(envelope.rcpt_tos),
                    envelope.original_content or b"",
                )
            )
        return "250 Message accepted"

    def to(self, address: str) -> list[CapturedMail]:
        with self.lock:
            return [m for m in self.messages if address.lower() in (r.lower() for r in m.rcpt_tos)]


@dataclass
class SmtpServer:
    port: int
    handler: RecordingHandler
    controller: Controller | None = None

    @property
    def target(self) -> SmtpTarget:
        return SmtpTarget(host="127.0.0.1", port=self.port)

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(port=free_port(), handler=RecordingHandler())
    server.start()
    yield server
    server.stop()


# --- application ------------------------------------------------------------


def make_settings(database_url: str, smtp: SmtpTarget, **overrides: Any) -> Settings:
    env = {
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
        "NEWSLETTER_BASE_URL": "https://newsletter.gimpo.go.kr",
        "NEWSLETTER_SMTP_URL": f"smtp://{smtp.host}:{smtp.port}",
        "NEWSLETTER_RATE_PER_SECOND": "1000",
        # Tests post the signup form as scripts do, without the proof-of-work
        # answer; only the tests of that rule keep the smaller limit.
        "NEWSLETTER_SIGNUP_LIMIT_WITHOUT_CHALLENGE_PER_IP_PER_HOUR": "20",
    }
    return Settings.from_env(env).replace(**overrides)


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpServer) -> Settings:
    return make_settings(database_url, smtp_server.target)


@pytest.fixture
def app(settings: Settings, db: Database) -> Litestar:
    return create_app(settings, db)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP against the real app in this event loop (the pool lives here too)."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport, base_url="https://newsletter.gimpo.go.kr"
    ) as http:
        yield http


async def drain(settings: Settings, db: Database, *, rounds: int = 20) -> int:
    """Run a worker until it finds nothing due; return how many rows it handled."""
    worker = Worker(settings, db)
    handled = 0
    try:
        for _ in range(rounds):
            claimed = await worker.run_once()
            if not claimed:
                break
            handled += claimed
    finally:
        await worker.smtp.close()
    return handled


async def bearer(db: Database, role: str = "editor", name: str | None = None) -> dict[str, str]:
    """Authorization headers for a fresh API key of ``role``."""
    from newsletter.ops.apikeys import create_key

    async with db.transaction() as conn:
        _, key = await create_key(conn, role=role, name=name or f"test {role}")
    return {"Authorization": f"Bearer {key}"}
