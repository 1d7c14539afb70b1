"""``newsletter dev``: the whole service on a laptop, in one process.

Both ports are taken first, so a busy one stops it with one line before
anything starts. Then embedded PostgreSQL (data in ``.dev/pg``), a capture SMTP
server (mail in ``.dev/mail``, listed at ``/dev/outbox``), migrations, demo
news, a demo editor key, a demo console account (admin role, a new password
at each start), ``.dev/server.env`` for ``newsletter --dev``, and the web app
and a worker side by side until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from litestar import Litestar

from newsletter.app import create_app
from newsletter.core.clock import city_zone
from newsletter.core.db import Database, migrate
from newsletter.core.settings import PREFIX, Settings, SmtpTarget
from newsletter.delivery.worker import Worker
from newsletter.dev import connection, outbox
from newsletter.dev.capture import start_capture_server
from newsletter.dev.embedded import start_embedded_postgres
from newsletter.ops.apikeys import create_key
from newsletter.ops.audit import CLI_ACTOR
from newsletter.ops.users import create_user, generate_password, hash_password
from newsletter.web.http import server as web_server

DEMO_NEWS = [
    (
        "김포골드라인 혼잡도 개선 대책 발표",
        "출퇴근 시간 김포골드라인 혼잡 완화를 위해 증차와 버스 대체 노선을 운영합니다.",
        "https://www.gimpo.go.kr/news/demo-1",
        "교통",
    ),
    (
        "한강신도시 수변공원 가을 음악회 개최",
        "11월 둘째 주 토요일, 라베니체 수변공원에서 시민 음악회가 열립니다.",
        "https://www.gimpo.go.kr/news/demo-2",
        "문화",
    ),
    (
        "김포금쌀 직거래 장터 운영 안내",
        "시청 광장에서 김포금쌀과 지역 농산물 직거래 장터를 운영합니다.",
        "https://www.gimpo.go.kr/news/demo-3",
        "경제",
    ),
]


DEMO_EDITOR = "editor@gimpo.go.kr"


async def _demo_editor(db: Database) -> str:
    """A demo editor account with a fresh password, printed in the banner."""
    password = generate_password()
    async with db.transaction() as conn:
        existing = await conn.fetchrow(db.queries.user_by_email, DEMO_EDITOR)
        if existing is None:
            await create_user(
                conn,
                CLI_ACTOR,
                email=DEMO_EDITOR,
                name="데모 편집자",
                role="admin",
                password=password,
            )
        else:
            await conn.execute(
                db.queries.set_user_password, existing["id"], await hash_password(password), False
            )
    return password


async def _load_demo(db: Database) -> str:
    async with db.transaction() as conn:
        if not await conn.fetchval(db.queries.count_news_items):
            now = datetime.now(UTC)
            for index, (title, summary, link, category) in enumerate(DEMO_NEWS):
                await conn.execute(
                    db.queries.insert_demo_news_item,
                    title,
                    summary,
                    link,
                    category,
                    now - timedelta(days=index),
                )
        await conn.execute(db.queries.revoke_api_keys_named, "dev editor")
        _, key = await create_key(conn, role="editor", name="dev editor")
    return key


def create_dev_app(settings: Settings, db: Database) -> Litestar:
    """The production app plus the captured-mail pages (``/dev/outbox``)."""
    return create_app(settings, db, extra_routes=outbox.ROUTES)


class PortUnavailable(Exception):
    """One line for the person who typed ``make dev``: which port, and what to do."""


def _unavailable(what: str, host: str, port: int, flag: str, exc: OSError) -> PortUnavailable:
    if exc.errno == errno.EADDRINUSE:
        return PortUnavailable(
            f"newsletter: {what} port {port} on {host} is already in use; pick another with {flag}"
        )
    return PortUnavailable(f"newsletter: cannot listen on {host}:{port} ({what}): {exc.strerror}")


def listen(host: str, port: int) -> socket.socket:
    """The web server's socket, bound now so that a busy port fails before any output."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise _unavailable("web", host, port, "--port (make dev PORT=…)", exc) from None


def start_capture(settings: Settings, smtp_port: int) -> Any:
    try:
        return start_capture_server(settings.dev_dir / "mail", port=smtp_port)
    except OSError as exc:
        flag = "--smtp-port (make dev SMTP_PORT=…)"
        raise _unavailable("capture SMTP", "127.0.0.1", smtp_port, flag, exc) from None


def banner(
    settings: Settings, *, database_url: str, smtp_port: int, key: str, console_login: str = ""
) -> str:
    base = settings.base_url
    zone = datetime.now(city_zone(settings)).tzname()
    return (
        "\n김포시 뉴스레터 — development server\n"
        f"  subscribe page    {base}/subscribe\n"
        + (f"  editors' console  {base}/admin  ({console_login})\n" if console_login else "")
        + f"  captured mail     {base}/dev/outbox\n"
        f"  API docs          {base}/api/docs\n"
        f"  health            {base}/healthz\n"
        f"  capture SMTP      127.0.0.1:{smtp_port}\n"
        f"  database          {database_url}\n"
        f"  demo editor key   {key}\n"
        "  CLI on this setup .venv/bin/newsletter --dev status   (or any other command)\n"
        f"Log times are {zone}. Press Ctrl-C to stop.\n"
    )


async def run_dev(settings: Settings, *, host: str, port: int, smtp_port: int) -> int:
    settings.dev_dir.mkdir(parents=True, exist_ok=True)
    try:
        web_socket = listen(host, port)
        try:
            capture = start_capture(settings, smtp_port)
        except PortUnavailable:
            web_socket.close()
            raise
    except PortUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        return await _serve(settings, web_socket, host=host, port=port, smtp_port=smtp_port)
    finally:
        capture.stop()
        web_socket.close()


async def _serve(
    settings: Settings, web_socket: socket.socket, *, host: str, port: int, smtp_port: int
) -> int:
    pg = None
    database_url = settings.database_url
    if database_url is None:
        pg = start_embedded_postgres(settings.dev_dir / "pg")
        database_url = pg.get_uri()
    smtp = SmtpTarget(host="127.0.0.1", port=smtp_port)
    settings = settings.replace(
        database_url=database_url,
        smtp=smtp,
        base_url=settings.base_url
        if settings.base_url != "http://127.0.0.1:8000"
        else f"http://{host}:{port}",
    )
    try:
        await migrate(database_url)
        db = await Database.connect(database_url)
        try:
            key = await _load_demo(db)
            password = await _demo_editor(db)
            server = uvicorn.Server(
                web_server.config(create_dev_app(settings, db), settings, host=host, port=port)
            )
            stop = asyncio.Event()
            worker = asyncio.create_task(Worker(settings, db).run(stop))
            reach = {
                f"{PREFIX}DATABASE_URL": database_url,
                f"{PREFIX}SMTP_URL": f"smtp://{smtp.host}:{smtp.port}",
                f"{PREFIX}BASE_URL": settings.base_url,
                # Commands must sign links like us (the file is the owner's only).
                f"{PREFIX}SECRET_KEY": settings.secret_key,
            }
            connection.write(settings.dev_dir, reach)
            print(
                banner(
                    settings,
                    database_url=database_url,
                    smtp_port=smtp_port,
                    key=key,
                    console_login=f"{DEMO_EDITOR} / {password}",
                )
            )
            sys.stdout.flush()
            try:
                await server.serve(sockets=[web_socket])
            finally:
                connection.remove(settings.dev_dir)
                stop.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
        finally:
            await db.close()
    finally:
        if pg is not None:
            with contextlib.suppress(Exception):
                pg.cleanup()
    return 0
