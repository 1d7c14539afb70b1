"""How the apps are served: uvicorn, with read timeouts slow clients cannot outwait.

uvicorn closes an idle keep-alive connection, but it waits for ever for a
client that connects and sends nothing, dribbles its request headers a byte at
a time, or stops half-way through a body: a few hundred such connections (one
laptop can hold them) would use up the server's sockets. :class:`GuardedHttp`
adds the two timeouts nginx has:

- the request line and headers must arrive within ``HTTP_HEADER_TIMEOUT_SECONDS``
  of the connection opening (or of the previous response, on a kept-alive one);
- a body may not pause longer than ``HTTP_BODY_TIMEOUT_SECONDS`` between two
  reads. Time when we are not reading (the app is still busy with what it
  has) does not count: the wait is ours, not the client's.

Either way the client gets ``408 Request Timeout`` if it sent anything, and
the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from newsletter.core.settings import Settings

_TIMEOUT_BODY = b'{"error": "request_timeout", "detail": "the request arrived too slowly"}'
TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _TIMEOUT_BODY
)


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol plus header and body read timeouts."""

    header_timeout = 10.0
    body_timeout = 15.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._seen_bytes = False  # of the request being read, for a 408 or a bare close
        self._reading_body = False

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._reading_body and self.flow.read_paused:
            # We stopped reading (the app has not consumed what it has): not
            # the client's delay. Look again later.
            self._arm(self.body_timeout)
            return
        responding = self.cycle is not None and self.cycle.response_started
        if self._seen_bytes and not responding:
            self.transport.write(TIMEOUT_RESPONSE)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data:
            self._seen_bytes = True
            if self._reading_body:
                self._arm(self.body_timeout)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a pipelined request: its own header deadline
            self._arm(self.header_timeout)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        has_body = any(
            (name == b"content-length" and value.strip() not in (b"", b"0"))
            or (name == b"transfer-encoding" and b"chunked" in value.lower())
            for name, value in self.headers
        )
        if has_body:
            self._reading_body = True
            self._arm(self.body_timeout)

    def on_message_complete(self) -> None:
        self._reading_body = False
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._reading_body = False
        self._seen_bytes = False
        super().on_response_complete()
        if not self.transport.is_closing():
            # The next request's headers are due within the header timeout;
            # uvicorn's keep-alive timer closes an idle connection sooner.
            self._arm(self.header_timeout + self.timeout_keep_alive)


def guarded_protocol(settings: Settings) -> type[GuardedHttp]:
    """:class:`GuardedHttp` with this installation's timeouts."""
    return type(
        "GuardedHttp",
        (GuardedHttp,),
        {
            "header_timeout": settings.http_header_timeout_seconds,
            "body_timeout": settings.http_body_timeout_seconds,
        },
    )


def config(app: Any, settings: Settings, *, host: str, port: int, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration every server of ours uses."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(settings),
        log_config=None,
        server_header=False,
        **options,
    )


class CompanionServer(uvicorn.Server):
    """A second server in the same process (the internal metrics port): it
    leaves the signals to the main server, which stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
