"""SMTP transport: reusable connections that pipeline each transaction.

aiosmtplib opens each connection and does the negotiation (greeting, EHLO,
STARTTLS, AUTH). Its client then needs four round trips per message (MAIL,
RCPT, DATA, content) and runs two regular expressions over every message,
which caps it near 950 msg/s on this machine class. So once the session is
ready we take over the transport with a tiny reply reader and, when the
server offers PIPELINING (RFC 2920), send each message's content and final
dot together with the next message's MAIL+RCPT+DATA: one write and about one
round trip per message, no per-message regex (message.py hands over CRLF,
dot-stuffed bytes).

Failures are sorted for the worker, by what ``core/replies.py`` reads in the
reply (each error carries it as ``.reply``; its text, and so the error's,
has addresses masked):
- :class:`ServerTrouble`: connection refused or dropped, timeouts, 421. The
  server, not the recipient, has a problem; retry on a fresh connection and
  never count it against the recipient.
- :class:`RelayRefused` (a kind of server trouble): the relay said no before
  any recipient was named -- 5xx to the greeting, EHLO, STARTTLS or AUTH
  (535). That is our configuration or the relay's, never the recipient's:
  no bounce, no attempt counted, mail waits until the relay takes it.
- :class:`PushBack` (a kind of server trouble): the relay asks us to slow
  down -- 421, an enhanced status 4.7.x, "too many connections / too much
  mail", greylisting. The mail goes back to the queue for the (lowered)
  global rate; never an attempt, never a bounce.
- :class:`TransientError`: any other 4xx. Retry later, counted as an attempt.
- :class:`PermanentError`: 5xx to RCPT or DATA. The address goes to the
  bounce policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple, cast

import aiosmtplib

from newsletter.core import replies
from newsletter.core.settings import SmtpTarget

log = logging.getLogger("newsletter.smtp")


class Reply(NamedTuple):
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class Ahead(NamedTuple):
    """The message a connection will send next, announced to pipeline its envelope."""

    sender: str
    recipient: str
    size: int  # len() of the prepared bytes (CRLF, dot-stuffed) handed to send()
    eight_bit: bool


class SendError(Exception):
    """A failed send. ``detail`` is masked (core/replies.py): the exception's
    text is what the queues, the relay's health and the logs keep."""

    def __init__(self, code: int | None, detail: str, *, stage: str = "") -> None:
        self.reply = replies.parse(code, detail)
        super().__init__(f"{code or '---'} {self.reply.text}")
        self.code = code
        self.detail = self.reply.text
        self.stage = stage


class TransientError(SendError):
    """Try again later: a 4xx reply about this message or recipient."""


class ServerTrouble(TransientError):
    """The connection, not the recipient: refused, dropped, timed out, 421."""


class RelayRefused(ServerTrouble):
    """A 5xx before any recipient: greeting, EHLO, STARTTLS or AUTH refused.

    Nothing a recipient did; usually wrong credentials or a relay that does
    not accept us (yet). Ops must hear of it (the pool logs it as an error).
    """


class PushBack(ServerTrouble):
    """The relay asks us to slow down: 421, 4.7.x, too many connections or mail, greylisting.

    Not a fault of the recipient nor of the relay: our pace. The sender should
    lower its rate (and its connections) and send the mail again soon.
    """


class PermanentError(SendError):
    """Never retry: a 5xx reply to RCPT or DATA."""


_SESSION_STEPS: dict[type[Exception], str] = {
    aiosmtplib.SMTPConnectResponseError: "the connection (greeting)",
    aiosmtplib.SMTPHeloError: "EHLO",
    aiosmtplib.SMTPAuthenticationError: "AUTH",
}


def _error_for(reply: Reply, stage: str) -> SendError:
    # Masked before it is cut, so no piece of an address is left at the cut.
    parsed = replies.parse(reply.code, reply.text.replace("\n", " "))
    text = parsed.text[:500]
    if reply.code < 200:
        return ServerTrouble(reply.code, text, stage=stage)
    # Push-back must never use up the recipient's attempts or end an issue
    # early: it is treated like a 421.
    if parsed.pushes_back:
        return PushBack(reply.code, text, stage=stage)
    if 500 <= reply.code < 600 and stage in ("rcpt", "data"):
        return PermanentError(reply.code, text, stage=stage)
    # A 4xx anywhere, or a 5xx to MAIL FROM (our sender, not the recipient).
    return TransientError(reply.code, text, stage=stage)


class _ReplyReader(asyncio.Protocol):
    """Parses every reply the server sends, in order, including pipelined ones."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.replies: deque[Reply] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.wanted = 0
        self.lost: Exception | None = None
        self.lines: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        # Whole lines only; a partial line waits in the buffer. One split per
        # packet (a pipelined packet carries several replies).
        if self.buffer:
            data = bytes(self.buffer) + data
            self.buffer.clear()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            self.buffer += data[end:]
        for line in data[:end].split(b"\n")[:-1]:
            line = line.rstrip(b"\r")
            if line[3:4] == b"-":  # continuation of a multi-line reply
                self.lines.append(line)
                continue
            code = int(line[:3]) if line[:3].isdigit() else 0
            if self.lines:
                self.lines.append(line)
                text = "\n".join(x[4:].decode("utf-8", "replace") for x in self.lines)
                self.lines = []
            else:
                text = line[4:].decode("utf-8", "replace")
            self.replies.append(Reply(code, text))
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionResetError("connection closed by server")
        self._wake()

    def eof_received(self) -> bool:
        self.lost = ConnectionResetError("connection closed by server")
        self._wake()
        return False

    def _wake(self) -> None:
        waiter = self.waiter
        ready = len(self.replies) >= self.wanted or self.lost is not None
        if waiter is not None and not waiter.done() and ready:
            waiter.set_result(None)

    async def read(self, count: int, timeout: float) -> list[Reply]:  # noqa: ASYNC109
        if len(self.replies) < count and self.lost is None:
            self.wanted = count
            loop = asyncio.get_running_loop()
            waiter = self.waiter = loop.create_future()
            # A bare timer rather than asyncio.timeout(): this runs once per
            # message and the context manager costs several times more.
            timer = loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self.waiter = None
        if len(self.replies) < count:
            raise ConnectionResetError(f"connection lost: {self.lost}")
        return [self.replies.popleft() for _ in range(count)]


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no reply from the SMTP server in time"))


@dataclass
class SmtpConnection:
    """One reusable connection; reconnects lazily after a drop or a 421."""

    target: SmtpTarget
    timeout: float = 60.0  # each reply of a transaction
    # Each step of greeting, EHLO, STARTTLS and AUTH: a relay that has not
    # said hello by then is treated as down (the next relay, if any, is tried).
    connect_timeout: float = 15.0
    local_hostname: str | None = None
    _transport: asyncio.Transport | None = None
    _reader: _ReplyReader | None = None
    pipelining: bool = False
    eight_bit_mime: bool = False
    max_size: int | None = None
    sent_on_connection: int = field(default=0)
    writes: int = 0  # groups written (a pipelined message costs one)
    _opened: bytes | None = None  # envelope sent ahead, replies not yet read
    _dirty: bool = False  # a refused transaction is open: RSET first

    @property
    def connected(self) -> bool:
        return (
            self._transport is not None
            and not self._transport.is_closing()
            and self._reader is not None
            and self._reader.lost is None
        )

    async def connect(self) -> None:
        if self.connected:
            return
        await self.close()
        client = aiosmtplib.SMTP(
            hostname=self.target.host,
            port=self.target.port,
            use_tls=self.target.use_tls,
            start_tls=self.target.starttls if self.target.starttls else False,
            timeout=self.connect_timeout,
            local_hostname=self.local_hostname,
            username=self.target.username if self.target.password else None,
            password=self.target.password,
        )
        try:
            await client.connect()
            # connect() did STARTTLS and AUTH when the URL asks for them.
            if client.last_ehlo_response is None:
                await client.ehlo()
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            # No recipient has been named yet, so no reply here is a bounce:
            # a 550 greeting or a 535 AUTH would otherwise fail and suppress
            # every address the worker tried.
            cls: type[ServerTrouble] = ServerTrouble
            if exc.code >= 500:
                cls = RelayRefused
            elif replies.parse(exc.code, exc.message).pushes_back:
                cls = PushBack  # "421 4.7.0 too many connections" at the greeting
            step = _SESSION_STEPS.get(type(exc), "session set-up")
            raise cls(exc.code, f"relay refused {step}: {exc.message}", stage="connect") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()
            # A bare SMTPException is a mismatch, not a blip: no STARTTLS or
            # no AUTH mechanism on offer although SMTP_URL asks for them.
            cls = RelayRefused if type(exc) is aiosmtplib.SMTPException else ServerTrouble
            raise cls(None, f"connect: {type(exc).__name__}: {exc}", stage="connect") from exc
        except BaseException:  # cancelled (a stop request): leave no socket behind
            client.close()
            raise
        self.pipelining = client.supports_extension("pipelining")
        self.eight_bit_mime = client.supports_extension("8bitmime")
        size = client.esmtp_extensions.get("size", "")
        self.max_size = int(size) if size.isdigit() and int(size) > 0 else None
        # uvloop's transports are not asyncio.Transport subclasses but speak
        # the same interface, set_protocol included.
        transport = cast(asyncio.Transport | None, client.transport)
        if transport is None or transport.is_closing():
            raise ServerTrouble(None, "connect: connection closed during negotiation")
        reader = _ReplyReader()
        transport.set_protocol(reader)
        self._transport, self._reader = transport, reader
        self._opened, self._dirty = None, False
        self.sent_on_connection = 0

    async def _exchange(self, data: bytes, replies: int) -> list[Reply]:
        assert self._transport is not None and self._reader is not None
        try:
            self._transport.write(data)
            self.writes += 1
            return await self._reader.read(replies, self.timeout)
        except (OSError, TimeoutError, RuntimeError) as exc:
            await self.close()
            raise ServerTrouble(None, f"{type(exc).__name__}: {exc}") from exc

    def envelope(self, sender: str, recipient: str, size: int, eight_bit: bool) -> bytes:
        """MAIL, RCPT and DATA for one message (``size``: its prepared length)."""
        if any(c in sender + recipient for c in "\r\n<>"):
            raise PermanentError(None, f"unusable address {recipient!r}", stage="rcpt")
        body_option = b" BODY=8BITMIME" if eight_bit and self.eight_bit_mime else b""
        size_option = b" SIZE=%d" % (size + 3) if self.max_size is not None else b""
        return b"MAIL FROM:<%s>%s%s\r\nRCPT TO:<%s>\r\nDATA\r\n" % (
            sender.encode(),
            body_option,
            size_option,
            recipient.encode(),
        )

    async def send(
        self,
        sender: str,
        recipient: str,
        message: bytes,
        *,
        eight_bit: bool = False,
        then: Ahead | None = None,
    ) -> Reply:
        """Hand one prepared message (CRLF, dot-stuffed) to the server.

        ``then`` names the message this connection sends next: with
        PIPELINING its MAIL, RCPT and DATA go out in the same write as this
        message's content and final dot (RFC 2920 allows DATA to end a group
        and the next transaction to follow the dot), so a message costs one
        round trip. Its replies stay unread until ``send`` is called for it,
        so each message is answered by exactly its own replies; a failure of
        this message does not touch the next one's transaction.
        """
        await self.connect()
        envelope = self.envelope(sender, recipient, len(message), eight_bit)
        if not message.endswith(b"\r\n"):
            message += b"\r\n"
        if self._opened is not None and self._opened != envelope:
            # Another message's envelope is open (a caller skipped it): start clean.
            await self.close()
            await self.connect()
        if self._opened == envelope:
            self._opened = None
            mail_reply, rcpt_reply, data_reply = await self._read(3)
        elif self.pipelining:
            prefix, extra = (b"RSET\r\n", 1) if self._dirty else (b"", 0)
            replies = await self._exchange(prefix + envelope, 3 + extra)
            if extra:
                await self._check_reset(replies[0])
            mail_reply, rcpt_reply, data_reply = replies[extra:]
        else:
            if self._dirty:
                await self._check_reset((await self._exchange(b"RSET\r\n", 1))[0])
            mail, rcpt, data = envelope.splitlines(keepends=True)
            [mail_reply] = await self._exchange(mail, 1)
            rcpt_reply = data_reply = Reply(0, "not sent")
            if mail_reply.code // 100 == 2:
                [rcpt_reply] = await self._exchange(rcpt, 1)
                if rcpt_reply.code // 100 == 2:
                    [data_reply] = await self._exchange(data, 1)
        for reply, stage in ((mail_reply, "mail"), (rcpt_reply, "rcpt"), (data_reply, "data")):
            if reply.code // 100 != 2 and not (stage == "data" and reply.code == 354):
                await self._abort(data_reply)
                raise _error_for(reply, stage)
        ahead = b""
        if then is not None and self.pipelining:
            with contextlib.suppress(PermanentError):  # its own send() reports it
                ahead = self.envelope(then.sender, then.recipient, then.size, then.eight_bit)
        [final] = await self._exchange(message + b".\r\n" + ahead, 1)
        self._opened = ahead or None
        if final.code // 100 != 2:
            if final.code == 421:
                await self.close()
            raise _error_for(final, "data")
        self.sent_on_connection += 1
        return final

    async def _read(self, replies: int) -> list[Reply]:
        assert self._reader is not None
        try:
            return await self._reader.read(replies, self.timeout)
        except (OSError, TimeoutError, RuntimeError) as exc:
            await self.close()
            raise ServerTrouble(None, f"{type(exc).__name__}: {exc}") from exc

    async def _check_reset(self, reply: Reply) -> None:
        if reply.code // 100 != 2:
            await self.close()
            raise ServerTrouble(reply.code, f"RSET refused: {reply.text}", stage="rset")
        self._dirty = False

    async def _abort(self, data_reply: Reply) -> None:
        """After a refused transaction: the next group starts with RSET.

        A server answers DATA with 503/554 when no recipient was accepted
        (RFC 2920); one that says 354 anyway gets an empty message ended at
        once, and its reply is ignored.
        """
        self._dirty = True
        if data_reply.code == 354 and self.connected:
            with contextlib.suppress(ServerTrouble):
                await self._exchange(b".\r\n", 1)

    async def close(self) -> None:
        transport, reader = self._transport, self._reader
        self._transport = self._reader = None
        self._opened, self._dirty = None, False
        if transport is None or transport.is_closing():
            return
        try:
            if reader is not None and reader.lost is None:
                transport.write(b"QUIT\r\n")
                with contextlib.suppress(Exception):
                    await reader.read(1, 2.0)
        finally:
            transport.close()
