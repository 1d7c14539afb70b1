"""SMTP transport over aiosmtplib, with failures sorted into transient and permanent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiosmtplib

from newsletter.settings import SmtpTarget


class SendError(Exception):
    def __init__(self, code: int | None, detail: str) -> None:
        super().__init__(f"{code or '---'} {detail}")
        self.code = code
        self.detail = detail


class TransientError(SendError):
    """Try again later: 4xx replies, dropped or refused connections, timeouts."""


class PermanentError(SendError):
    """Never retry: a 5xx reply to RCPT or DATA."""


def classify(exc: BaseException) -> SendError:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [e.code for e in exc.recipients]
        code = codes[0] if codes else None
        text = "; ".join(e.message for e in exc.recipients)
        return (PermanentError if code and 500 <= code < 600 else TransientError)(code, text)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        cls = PermanentError if 500 <= exc.code < 600 else TransientError
        return cls(exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPException | OSError | asyncio.TimeoutError):
        return TransientError(None, f"{type(exc).__name__}: {exc}")
    raise exc


@dataclass
class SmtpConnection:
    """One reusable connection; reconnects lazily after a drop."""

    target: SmtpTarget
    timeout: float = 30.0
    _client: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        client = aiosmtplib.SMTP(
            hostname=self.target.host,
            port=self.target.port,
            use_tls=self.target.use_tls,
            start_tls=self.target.starttls if self.target.starttls else False,
            timeout=self.timeout,
        )
        await client.connect()
        if self.target.username and self.target.password:
            await client.login(self.target.username, self.target.password)
        self._client = client
        return client

    async def send(self, sender: str, recipient: str, message: bytes) -> tuple[int, str]:
        """Hand one message to the server; returns the DATA reply."""
        try:
            client = await self._connected()
            errors, reply = await client.sendmail(sender, [recipient], message)
        except Exception as exc:
            await self.close()
            raise classify(exc) from exc
        if errors:
            code, text = next(iter(errors.values()))
            cls = PermanentError if 500 <= code < 600 else TransientError
            raise cls(code, text)
        return 250, reply

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if client.is_connected:
                await client.quit()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            client.close()
