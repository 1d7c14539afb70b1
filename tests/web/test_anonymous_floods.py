"""Floods a security review sent to a real `newsletter serve` (uvicorn, real
sockets, PostgreSQL): huge forms, slow bodies, many connections from one
address and huge headers. Each attacker gets its 4xx, and `/healthz` keeps
answering while the attack runs (it once waited 8-12 s, or was refused).

The figures each attack leaves (the slowest `/healthz` during it, the
server's memory before and after) are printed for the report: run with
``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import psutil

from newsletter.core.db import Database
from tests.conftest import bearer
from tests.support.console import login, make_user, page_csrf
from tests.support.processes import Served, serving

T = TypeVar("T")
PROMPT = 2.0  # seconds: /healthz answers in milliseconds; the floods held it 8-12 s
FORM = {"content-type": "application/x-www-form-urlencoded"}
TEN_MB_OF_FIELDS = b"a&" * (5 * 1024 * 1024)


@dataclass
class Probe:
    """/healthz asked every 0.1 s while an attack runs: how long each took."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def slowest(self) -> float:
        return max(self.latencies, default=0.0)


@asynccontextmanager
async def probing(served: Served, source: str = "127.0.0.1") -> AsyncIterator[Probe]:
    """Probe /healthz from ``source`` (a loopback address of its own where the
    attack uses up 127.0.0.1's share of connections)."""
    probe = Probe()
    stop = asyncio.Event()
    # A new connection each time: a kept one would not notice a full server.
    transport = httpx.AsyncHTTPTransport(
        local_address=source, limits=httpx.Limits(max_keepalive_connections=0)
    )

    async def run() -> None:
        async with httpx.AsyncClient(
            base_url=served.base_url, transport=transport, timeout=30
        ) as http:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    answer = await http.get("/healthz")
                    if answer.status_code != 200:
                        probe.failures.append(f"{answer.status_code}")
                except httpx.HTTPError as exc:
                    probe.failures.append(repr(exc))
                probe.latencies.append(time.monotonic() - started)
                await asyncio.sleep(0.1)

    task = asyncio.create_task(run())
    try:
        yield probe
    finally:
        stop.set()
        await task


def rss(served: Served) -> int:
    return int(psutil.Process(served.process.pid).memory_info().rss)


def report(name: str, probe: Probe, before: int, after: int) -> None:
    print(  # the figures for the report (pytest -s)
        f"\n{name}: /healthz slowest {probe.slowest * 1000:.0f} ms over "
        f"{len(probe.latencies)} probes; server RSS {before / 2**20:.0f} MB -> "
        f"{after / 2**20:.0f} MB"
    )


async def within(seconds: float, work: Awaitable[T]) -> T:
    async with asyncio.timeout(seconds):
        return await work


# --- 24.1: forms --------------------------------------------------------------------


async def test_an_anonymous_form_flood_is_refused_unread(database_url: str, db: Database) -> None:
    async with serving(database_url) as served:
        before = rss(served)
        async with (
            probing(served) as probe,
            httpx.AsyncClient(base_url=served.base_url, timeout=60) as http,
        ):
            answers = await within(
                60,
                asyncio.gather(
                    *(
                        http.post(path, content=TEN_MB_OF_FIELDS, headers=FORM)
                        for path in ("/admin/news", "/admin/news", "/admin/issues", "/admin/login")
                    )
                ),
            )
            # With the login page's cookie (anyone can have one) the login
            # form is read, within its own small size.
            await http.get("/admin/login")
            with_nonce = await within(
                60, http.post("/admin/login", content=TEN_MB_OF_FIELDS, headers=FORM)
            )
            await asyncio.sleep(0.5)
        after = rss(served)
    report("anonymous 5 x 10 MB forms", probe, before, after)
    # The login form too: without the cookie its login page sets, nobody asks.
    assert [a.status_code for a in answers] == [403, 403, 403, 403]
    assert "CSRF" in answers[0].text
    assert with_nonce.status_code == 413
    assert probe.failures == [] and probe.slowest < PROMPT, probe


async def test_a_logged_in_form_flood_is_bounded(database_url: str, db: Database) -> None:
    """Someone with a session gets their form read, within bounds: too many
    fields is a 413 before parsing, a large field is parsed off the loop."""
    editor = await make_user(db, "editor")
    async with serving(database_url) as served:
        async with httpx.AsyncClient(base_url=served.base_url, timeout=60) as http:
            await login(http, editor.email)
            csrf = await page_csrf(http, "/admin/news/new")
            before = rss(served)
            async with probing(served) as probe:
                many = await within(
                    60,
                    asyncio.gather(
                        *(
                            http.post(
                                "/admin/news",
                                content=b"csrf_token=" + csrf.encode() + b"&" + TEN_MB_OF_FIELDS,
                                headers=FORM,
                            )
                            for _ in range(3)
                        )
                    ),
                )
                long_title = await within(
                    60,
                    http.post(
                        "/admin/news",
                        content=b"csrf_token="
                        + csrf.encode()
                        + b"&title="
                        + b"%EA%B0%80" * 900_000,
                        headers=FORM,
                    ),
                )
            after = rss(served)
        async with httpx.AsyncClient(base_url=served.base_url) as http:
            too_many_fields = await http.post(
                "/subscribe", content=b"consent=on&" + b"a&" * 4000, headers=FORM
            )
    report("logged-in 3 x 10 MB forms + 2.7 MB field", probe, before, after)
    assert [a.status_code for a in many] == [413, 413, 413], [a.text[:200] for a in many]
    assert "보낸 내용이 허용된 크기를 넘었습니다" in many[0].text
    assert long_title.status_code == 422, long_title.text[:300]  # read, and refused as too long
    assert too_many_fields.status_code == 413, too_many_fields.text[:200]
    assert probe.failures == [] and probe.slowest < PROMPT, probe


async def test_streamed_uploads_are_bounded_in_parts(database_url: str, db: Database) -> None:
    """The roster upload streams its file, but its parts are counted and
    their headers bounded like any form's fields."""
    headers = {**await bearer(db, "admin"), "content-type": "multipart/form-data; boundary=XYZ"}
    parts = b"".join(
        b'--XYZ\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % n for n in range(5000)
    )
    long_header = b'--XYZ\r\nContent-Disposition: form-data; name="' + b"n" * 1_000_000
    async with (
        serving(database_url) as served,
        httpx.AsyncClient(base_url=served.base_url, timeout=60) as http,
        probing(served) as probe,
    ):
        answers = [
            await http.post(
                "/api/v1/subscribers/import?mode=invite",
                content=body + b"\r\n--XYZ--\r\n",
                headers=headers,
            )
            for body in (parts, long_header)
        ]
    for answer in answers:
        assert answer.status_code == 400, answer.text[:200]
        assert "malformed multipart body" in answer.json()["detail"]
    assert "at most 1000 parts" in answers[0].text
    assert probe.failures == [] and probe.slowest < PROMPT, probe


# --- 24.3: slow bodies, many connections ----------------------------------------------


def _read_until_closed(sock: socket.socket, limit: float = 15.0) -> bytes:
    sock.settimeout(limit)
    received = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def _trickled_body(port: int, started: asyncio.Event | None = None) -> tuple[bytes, float]:
    """A body one byte every 0.5 s: each pause within the body timeout, so
    only a limit on the whole request ends it."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /subscribe HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
        )
        began = time.monotonic()
        sock.settimeout(0.5)
        for _ in range(100):  # 50 s at most: far beyond the limit under test
            try:
                sock.send(b"a")
                if sock.recv(4096, socket.MSG_PEEK):
                    break  # the server answered
            except TimeoutError:
                continue
            except OSError:
                break
        answer = _read_until_closed(sock)
        return answer, time.monotonic() - began


def _one_more_connection(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return _read_until_closed(sock, 5)


async def test_slow_bodies_and_too_many_connections_end(database_url: str) -> None:
    settings = {
        "HTTP_REQUEST_TIMEOUT_SECONDS": "3",
        "HTTP_BODY_TIMEOUT_SECONDS": "1",
        "HTTP_CONNECTIONS_PER_CLIENT": "4",
        # The tests' own address is not a proxy here, so it is counted.
        "TRUSTED_PROXIES": "192.0.2.1",
    }
    async with serving(database_url, **settings) as served:
        before = rss(served)
        async with probing(served, source="127.0.0.2") as probe:
            trickles = [
                asyncio.create_task(asyncio.to_thread(_trickled_body, served.port))
                for _ in range(4)
            ]
            await asyncio.sleep(1.0)  # all four connected and trickling
            refused = await asyncio.to_thread(_one_more_connection, served.port)
            held = await within(30, asyncio.gather(*trickles))
            freed = await asyncio.to_thread(_one_more_connection, served.port)
        after = rss(served)
    report("4 trickled bodies + a fifth connection", probe, before, after)
    assert refused.startswith(b"HTTP/1.1 429"), refused[:200]
    assert b"too_many_connections" in refused
    for answer, lasted in held:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert lasted < 8, lasted  # the whole-request limit (3 s), not the 50 s trickle
    assert freed.startswith(b"HTTP/1.1 200"), freed[:200]  # the address's share came back
    assert probe.failures == [] and probe.slowest < PROMPT, probe


# --- 24.8: headers --------------------------------------------------------------------


def _endless_cookie(port: int, limit: int = 16 * 1024 * 1024) -> tuple[bytes, int]:
    """A Cookie header sent 64 kB at a time until the server answers (or 16 MB)."""
    chunk = b"a" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: nl_session=")
        sock.settimeout(0.2)
        while sent < limit:
            try:
                if sock.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                    break
            except (BlockingIOError, TimeoutError):
                pass  # nothing yet
            except OSError:
                break
            try:
                sent += sock.send(chunk)
            except TimeoutError:
                continue  # our send buffer is full: the server stopped reading
            except OSError:
                break
        return _read_until_closed(sock, 5), sent


def _many_headers(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        headers = b"".join(b"X-Many-%d: 1\r\n" % n for n in range(500))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        return _read_until_closed(sock, 5)


async def test_huge_and_countless_headers_are_a_431(database_url: str) -> None:
    async with serving(database_url) as served:
        before = rss(served)
        async with probing(served) as probe:
            huge = await within(
                60,
                asyncio.gather(
                    *(asyncio.to_thread(_endless_cookie, served.port) for _ in range(8))
                ),
            )
            many = await asyncio.to_thread(_many_headers, served.port)
        after = rss(served)
        async with httpx.AsyncClient(base_url=served.base_url) as http:
            normal = await http.get("/healthz", headers={"Cookie": "a=" + "b" * 4000})
    report("8 x 16 MB Cookie headers", probe, before, after)
    for answer, sent in huge:
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert b"headers_too_large" in answer
        assert sent < 16 * 1024 * 1024  # stopped long before the client gave up
    assert many.startswith(b"HTTP/1.1 431"), many[:200]
    assert normal.status_code == 200  # ordinary headers still pass
    assert after - before < 100 * 2**20, (before, after)
    assert probe.failures == [] and probe.slowest < PROMPT, probe
