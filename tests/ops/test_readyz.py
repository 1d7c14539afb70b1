"""/readyz says 503 with reasons when the database is gone, migrations are missing,
or an issue is sending with no live worker; and comes back to 200 on its own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from litestar import Litestar

from newsletter.app import create_app
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from tests.conftest import free_port
from tests.support.ops_seed import make_issue


class TcpProxy:
    """Forwards a local port to PostgreSQL; stopping it is 'the database went away'
    for every pooled connection at once, and starting it again brings it back."""

    def __init__(self, target_host: str, target_port: int, unix_socket: str | None = None) -> None:
        self.target = (target_host, target_port)
        self.unix_socket = unix_socket  # the embedded server listens on a socket only
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in list(self.writers):
            writer.close()
        self.writers.clear()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.unix_socket is not None:
                up_reader, up_writer = await asyncio.open_unix_connection(self.unix_socket)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers.discard(writer)
        self.writers.discard(up_writer)


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(database_url)
    socket_dir = parse_qs(parts.query).get("host", [None])[0]
    if parts.hostname is None and socket_dir:  # the embedded server: Unix socket only
        tcp = TcpProxy("", 0, unix_socket=f"{socket_dir}/.s.PGSQL.{parts.port or 5432}")
    else:
        tcp = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await tcp.start()
    yield tcp
    await tcp.stop()


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "host"])
    return urlunsplit(
        parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host, query=query)
    )


async def ready(app: Litestar) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://ops") as http:
        return await http.get("/readyz")


async def test_readyz_follows_the_database_down_and_back(
    proxy: TcpProxy, database_url: str, settings: Settings
) -> None:
    database = await Database.connect(through(database_url, proxy.port), min_size=1, max_size=2)
    app = create_app(settings, database)
    try:
        first = await ready(app)
        assert first.status_code == 200, first.text
        assert first.json() == {"status": "ok", "problems": []}

        await proxy.stop()  # the database "stops": pooled connections die, new ones fail
        down = await ready(app)
        assert down.status_code == 503
        body = down.json()
        assert body["status"] == "unavailable"
        assert any(p.startswith("database unreachable") for p in body["problems"])
        health = await app_get(app, "/healthz")
        assert health.status_code == 200  # the process itself is fine

        await proxy.start()
        for _ in range(20):  # the pool reconnects on its own
            back = await ready(app)
            if back.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert back.status_code == 200, back.text
    finally:
        await proxy.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(database.pool.close(), 2)


async def app_get(app: Litestar, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://ops") as http:
        return await http.get(path)


async def test_readyz_wants_a_worker_while_an_issue_is_sending(
    client: httpx.AsyncClient, db: Database
) -> None:
    assert (await client.get("/readyz")).status_code == 200  # nothing sending: no worker needed
    issue_id = await make_issue(db, status="sending")
    stuck = await client.get("/readyz")
    assert stuck.status_code == 503
    [problem] = stuck.json()["problems"]
    assert f"issue {issue_id} is sending" in problem and "no worker ever seen" in problem

    await db.pool.execute(
        "INSERT INTO workers (worker_id, host, pid, last_seen_at) "
        "VALUES ('old:1', 'old', 1, now() - interval '5 minutes')"
    )
    stale = await client.get("/readyz")
    assert stale.status_code == 503
    assert "last heartbeat" in stale.json()["problems"][0]

    await db.pool.execute("INSERT INTO workers (worker_id, host, pid) VALUES ('live:2', 'live', 2)")
    assert (await client.get("/readyz")).status_code == 200


async def test_readyz_names_pending_migrations(client: httpx.AsyncClient, db: Database) -> None:
    await db.pool.execute("DELETE FROM schema_migrations WHERE version = '0006'")
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == ["migrations not applied: 0006_ops"]
