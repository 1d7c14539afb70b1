"""Real web servers on loopback addresses, standing for the sites an issue
links to: pages that answer, that are gone, that redirect (also into the
city's internal network), that are slow, that refuse HEAD, and images that
are images or are not."""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


def png(width: int = 640, height: int = 360) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 160)).save(buffer, "PNG")
    return buffer.getvalue()


PNG = png()
PAGE = "<!doctype html><title>김포시</title><p>시정 소식</p>".encode()


class _Site(BaseHTTPRequestHandler):
    delay = 0.0  # seconds before every answer (a slow host)
    requests: list[tuple[str, str, float]]  # (method, path, when), set per server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        self.requests.append((self.command, self.path, time.monotonic()))
        if self.delay:
            time.sleep(self.delay)
        path = self.path.split("?")[0]
        if path.startswith("/redirect/"):
            left = int(path.rsplit("/", 1)[1])
            self._send(302, location="/ok" if left <= 1 else f"/redirect/{left - 1}")
        elif path == "/loop":
            self._send(302, location="/loop")
        elif path == "/to-internal":
            self._send(302, location="http://10.1.2.3/intranet")
        elif path == "/missing":
            self._send(404, b"not here", head=head)
        elif path == "/members":
            self._send(403, b"login first", head=head)
        elif path == "/no-head" and head:
            self._send(405)
        elif path.endswith(".png") and "not-image" not in path:
            self._send(200, PNG, "image/png", head=head)
        else:
            self._send(200, PAGE, "text/html; charset=utf-8", head=head)

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain",
        *,
        location: str | None = None,
        head: bool = False,
    ) -> None:
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A checker that gave up (its time ran out) closed the connection
        while a slow answer was still being written: expected, not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@dataclass
class Website:
    host: str
    port: int
    requests: list[tuple[str, str, float]]

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"


@contextmanager
def website(host: str = "127.0.0.1", delay: float = 0.0) -> Iterator[Website]:
    requests: list[tuple[str, str, float]] = []
    handler = type("Site", (_Site,), {"delay": delay, "requests": requests})
    server = _QuietServer((host, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Website(host, server.server_address[1], requests)
    finally:
        server.shutdown()
        server.server_close()
