"""Slow clients cannot hold connections: a real `newsletter serve` closes
connections whose request headers or body do not arrive in time."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx

from tests.support.processes import serving

TIMEOUTS = {"HTTP_HEADER_TIMEOUT_SECONDS": "1", "HTTP_BODY_TIMEOUT_SECONDS": "1"}


def _read_until_closed(sock: socket.socket, limit: float = 6.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes; and how long that took."""
    sock.settimeout(limit)
    started = time.monotonic()
    received = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return received, time.monotonic() - started
        received += chunk


def _silent(port: int) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        return _read_until_closed(sock)


def _dribbled_headers(port: int) -> tuple[bytes, float]:
    """A byte of the request line every 0.3 s: each within any idle timeout."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(0.3)
        started = time.monotonic()
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa":
            try:
                sock.send(bytes([byte]))
                if sock.recv(4096, socket.MSG_PEEK):
                    break  # the server answered
            except TimeoutError:
                continue
            except OSError:
                break
        answer, _ = _read_until_closed(sock)
        return answer, time.monotonic() - started


def _stalled_body(port: int) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /subscribe HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
            b"email=a%40"
        )
        return _read_until_closed(sock)


def _steady_body(port: int) -> bytes:
    """A body in pieces, each pause under the body timeout, 3 s in all: allowed."""
    body = b"email=steady%40example.com&consent=on&name=" + b"a" * 7
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /subscribe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        for start in range(0, len(body), 10):
            sock.sendall(body[start : start + 10])
            time.sleep(0.5)
        answer, _ = _read_until_closed(sock)
        return answer


async def test_connections_that_send_too_slowly_are_closed(database_url: str) -> None:
    async with serving(database_url, **TIMEOUTS) as served:
        nothing, waited = await asyncio.to_thread(_silent, served.port)
        assert nothing == b"" and waited < 3.5

        answer, waited = await asyncio.to_thread(_dribbled_headers, served.port)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert b'"error": "request_timeout"' in answer and waited < 4

        answer, waited = await asyncio.to_thread(_stalled_body, served.port)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert waited < 3.5

        steady = await asyncio.to_thread(_steady_body, served.port)
        assert steady.startswith(b"HTTP/1.1 200"), steady[:200]

        async with httpx.AsyncClient(base_url=served.base_url) as http:
            assert (await http.get("/healthz")).status_code == 200  # and it still serves
