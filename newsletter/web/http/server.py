"""How the apps are served: uvicorn, with limits slow or greedy clients cannot outwait.

uvicorn closes an idle keep-alive connection, but it waits for ever for a
client that connects and sends nothing, dribbles its request a byte at a
time, or stops half-way through a body; and it keeps whatever request
headers arrive, however many and however long. A few hundred such
connections (one laptop can hold them) would use up the server's sockets or
its memory. :class:`GuardedHttp` adds the limits nginx has:

- the request line and headers must arrive within ``HTTP_HEADER_TIMEOUT_SECONDS``
  of the connection opening (or of the previous response, on a kept-alive one);
- a body may not pause longer than ``HTTP_BODY_TIMEOUT_SECONDS`` between two
  reads. Time when we are not reading (the app is still busy with what it
  has) does not count: the wait is ours, not the client's;
- the whole request, line to last body byte, must arrive within
  ``HTTP_REQUEST_TIMEOUT_SECONDS``, so a body trickling in just fast enough
  to beat the pause limit still ends (our own pauses again do not count);

  each of these answers ``408 Request Timeout`` if the client sent anything,
  and closes the connection;
- the request line and headers together may not exceed
  ``HTTP_HEADER_MAX_BYTES``, nor the headers number more than
  ``HTTP_HEADER_MAX_COUNT``: ``431``, before more of them is kept;
- one client address holds at most ``HTTP_CONNECTIONS_PER_CLIENT``
  connections; the next is answered ``429`` at its first bytes. Connections
  from ``TRUSTED_PROXIES`` are not counted: a proxy carries many clients and
  bounds them itself (nginx's ``limit_conn``).

The refusals (431, 429) are written, then the connection stops reading and
closes a moment later, so a client still sending can read why.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections import Counter
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from newsletter.core.settings import Settings

LINGER_SECONDS = 1.0  # after a refusal, for the client to read it before we close
PAUSED_RECHECK_SECONDS = 1.0  # while we are not reading, the request's clock waits


def answer(status: HTTPStatus, code: str, detail: str) -> bytes:
    """A whole HTTP answer in our JSON error shape, for refusals made before
    (or instead of) the app."""
    body = json.dumps({"error": code, "detail": detail}).encode()
    return (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body


TIMEOUT_RESPONSE = answer(
    HTTPStatus.REQUEST_TIMEOUT, "request_timeout", "the request arrived too slowly"
)
HEADERS_TOO_LARGE = answer(
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
    "headers_too_large",
    "the request line and headers are too long or too many",
)
TOO_MANY_CONNECTIONS = answer(
    HTTPStatus.TOO_MANY_REQUESTS,
    "too_many_connections",
    "this address holds too many connections at once; close some and try again",
)


class _TooManyHeaders(Exception):
    """Raised from the parser's header callback to stop it at once."""


def proxy_matcher(trusted_proxies: str) -> Callable[[str], bool]:
    """Whether a peer address is one of ``TRUSTED_PROXIES`` (IPs, networks or ``*``)."""
    entries = [entry.strip() for entry in trusted_proxies.split(",") if entry.strip()]
    if "*" in entries:
        return lambda _host: True
    networks = [ipaddress.ip_network(entry, strict=False) for entry in entries]

    def trusted(host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.strip("[]").split("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
        return any(address in network for network in networks)

    return trusted


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the time, size and per-address limits above."""

    header_timeout = 10.0
    body_timeout = 15.0
    request_timeout = 120.0
    header_max_bytes = 32 * 1024
    header_max_count = 100
    connections_per_client = 64
    # Connections held per client address, shared by one server's protocols
    # (guarded_protocol gives each server a class, and so a counter, of its own).
    held: ClassVar[Counter[str]] = Counter()

    @staticmethod
    def is_trusted_proxy(host: str) -> bool:
        return False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._request_deadline: asyncio.TimerHandle | None = None
        self._seen_bytes = False  # of the request being read, for a 408 or a bare close
        self._reading_body = False
        self._in_head = True  # reading a request line and headers (or waiting for one)
        self._head_bytes = 0
        self._header_count = 0
        self._counted_as: str | None = None  # the address this connection counts against
        self._over_limit = False  # the address already holds its share of connections
        self._refused = False  # answered and closing: nothing more is read

    # --- timers ----------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _disarm_request(self) -> None:
        if self._request_deadline is not None:
            self._request_deadline.cancel()
            self._request_deadline = None

    def _answering(self) -> bool:
        """The app has begun its answer to the request being read."""
        return not self._in_head and self.cycle is not None and self.cycle.response_started

    def _time_out(self) -> None:
        if self._seen_bytes and not self._answering():
            self.transport.write(TIMEOUT_RESPONSE)
        self.transport.close()

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._reading_body and self.flow.read_paused:
            # We stopped reading (the app has not consumed what it has): not
            # the client's delay. Look again later.
            self._arm(self.body_timeout)
            return
        self._time_out()

    def _request_expired(self) -> None:
        self._request_deadline = None
        if self.transport.is_closing() or self._refused:
            return
        if self.flow.read_paused:
            # Our backlog, not the client's slowness: the deadline moves on.
            self._request_deadline = self.loop.call_later(
                PAUSED_RECHECK_SECONDS, self._request_expired
            )
            return
        self._disarm()
        self._time_out()

    # --- refusals --------------------------------------------------------------------

    def _refuse(self, response: bytes) -> None:
        """Answer, stop reading and close shortly (nginx's lingering close): a
        client that is still sending reads the answer instead of a reset."""
        self._refused = True
        self._disarm()
        self._disarm_request()
        self._unset_keepalive_if_required()
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.transport.pause_reading()
        self._deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers 400 to any error raised inside the parser, our
        # header count among them.
        if self._header_count > self.header_max_count:
            self._refuse(HEADERS_TOO_LARGE)
            return
        super().send_400_response(msg)

    # --- the connection --------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        host = self.client[0] if self.client else None
        if host is not None and not self.is_trusted_proxy(host):
            if self.held[host] >= self.connections_per_client:
                self._over_limit = True
            else:
                self.held[host] += 1
                self._counted_as = host
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_request()
        if self._counted_as is not None:
            self.held[self._counted_as] -= 1
            if self.held[self._counted_as] <= 0:
                del self.held[self._counted_as]
            self._counted_as = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or not data:
            return
        if self._over_limit:
            self._refuse(TOO_MANY_CONNECTIONS)
            return
        self._seen_bytes = True
        if self._reading_body:
            self._arm(self.body_timeout)
        if self._in_head:
            room = self.header_max_bytes - self._head_bytes
            if len(data) > room:
                # Feed what the limit allows: if the head ends within it, the
                # rest is body (or the next request); if not, it is too large.
                if room > 0:
                    self._head_bytes += room
                    super().data_received(data[:room])
                if self._in_head and not self.transport.is_closing() and not self._refused:
                    self._refuse(HEADERS_TOO_LARGE)
                    return
                data = data[room:]
            else:
                self._head_bytes += len(data)
        if data and not self._refused and not self.transport.is_closing():
            super().data_received(data)

    # --- parser callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0
        if self._deadline is None:  # a pipelined request: its own header deadline
            self._arm(self.header_timeout)
        self._disarm_request()
        self._request_deadline = self.loop.call_later(self.request_timeout, self._request_expired)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.header_max_count:
            raise _TooManyHeaders
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_head = False
        self._head_bytes = 0
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
        self._in_head = True
        self._disarm()
        self._disarm_request()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._reading_body = False
        self._seen_bytes = False
        super().on_response_complete()
        if not self.transport.is_closing() and not self._refused:
            # The next request's headers are due within the header timeout;
            # uvicorn's keep-alive timer closes an idle connection sooner.
            self._arm(self.header_timeout + self.timeout_keep_alive)


def guarded_protocol(settings: Settings) -> type[GuardedHttp]:
    """:class:`GuardedHttp` with this installation's limits, and a connection
    count of its own."""
    return type(
        "GuardedHttp",
        (GuardedHttp,),
        {
            "header_timeout": settings.http_header_timeout_seconds,
            "body_timeout": settings.http_body_timeout_seconds,
            "request_timeout": settings.http_request_timeout_seconds,
            "header_max_bytes": settings.http_header_max_bytes,
            "header_max_count": settings.http_header_max_count,
            "connections_per_client": settings.http_connections_per_client,
            "held": Counter(),
            "is_trusted_proxy": staticmethod(proxy_matcher(settings.trusted_proxies)),
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
