"""A pool of SMTP connections sending concurrently, each reused for many messages.

The worker puts :class:`Job` s on a small queue; each connection takes the
next one, renders it (the connection knows whether 8BITMIME is on offer),
sends it and reports the outcome through the job's callbacks. The queue is
kept short on purpose: a message is checked (subscriber still active, issue
still sending) just before it is queued, so a short queue (about one check's
worth of messages, a few milliseconds at full speed) keeps that check close
to the moment the message is handed to SMTP.

Server trouble (drop, refusal, timeout, 421) does not fail the message: the
connection waits with exponential backoff and jitter and tries again on a
fresh connection, a few times, before handing the job back for later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from newsletter.core.settings import SmtpTarget
from newsletter.delivery.smtp import (
    Ahead,
    PermanentError,
    RelayRefused,
    Reply,
    SendError,
    ServerTrouble,
    SmtpConnection,
)
from newsletter.ops import metrics

log = logging.getLogger("newsletter.pool")

INLINE_RETRIES = 5  # reconnect attempts per job before it goes back to the queue
REFUSAL_LOG_SECONDS = 60.0  # a refusing relay is logged as an error this often, not per try


@dataclass(eq=False)
class Job:
    """One message: who to, how to render it, and where to report."""

    key: int
    sender: str
    recipient: str
    render: Callable[[bool], tuple[bytes, bool]]  # (server has 8BITMIME) → (bytes, uses 8bit)
    on_sent: Callable[[Job, Reply], None]
    on_error: Callable[[Job, SendError], None]
    on_released: Callable[[Job], None]
    rendered: tuple[bool, bytes, bool] | None = None  # (8BITMIME offered, bytes, uses 8bit)

    def prepared(self, eight_bit_mime: bool) -> tuple[bytes, bool]:
        """Rendered once per connection kind (a pipelined job is sized before it is sent)."""
        if self.rendered is None or self.rendered[0] != eight_bit_mime:
            data, eight_bit = self.render(eight_bit_mime)
            self.rendered = (eight_bit_mime, data, eight_bit)
        return self.rendered[1], self.rendered[2]


class SmtpPool:
    def __init__(
        self,
        target: SmtpTarget,
        size: int,
        *,
        stop: asyncio.Event | None = None,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        timeout: float = 60.0,
        queue_size: int = 0,
    ) -> None:
        self.target = target
        self.connections = [SmtpConnection(target, timeout=timeout) for _ in range(size)]
        # At least room for each connection's next job, so the next envelope
        # can travel with the current content (see SmtpConnection.send).
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max(2 * size, queue_size))
        self.stop = stop or asyncio.Event()
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._tasks: list[asyncio.Task[None]] = []
        self._refusal_logged_at = -REFUSAL_LOG_SECONDS

    def _ensure_started(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(conn), name=f"smtp-{i}")
                for i, conn in enumerate(self.connections)
            ]

    async def submit(self, job: Job) -> None:
        self._ensure_started()
        await self.queue.put(job)

    async def drain(self) -> None:
        """Wait until every submitted job has an outcome."""
        if self._tasks:
            await self.queue.join()

    async def _run(self, conn: SmtpConnection) -> None:
        held: Job | None = None  # taken from the queue already; goes next on this connection
        while True:
            job = held if held is not None else await self.queue.get()
            held = None
            try:
                if conn.pipelining and not self.queue.empty():
                    held = self.queue.get_nowait()
                await self._deliver(conn, job, held)
            except Exception:  # a bug must not kill the connection task
                log.exception("unexpected error sending job %s", job.key)
                job.on_released(job)
            finally:
                self.queue.task_done()

    def _ahead(self, conn: SmtpConnection, job: Job | None) -> Ahead | None:
        if job is None or not conn.pipelining:
            return None
        try:
            data, eight_bit = job.prepared(conn.eight_bit_mime)
        except Exception:  # its own turn reports the error
            return None
        return Ahead(job.sender, job.recipient, len(data), eight_bit)

    async def _deliver(self, conn: SmtpConnection, job: Job, then: Job | None = None) -> None:
        troubles = 0
        while True:
            started = time.perf_counter()  # connect included: that is what a message waits
            try:
                await conn.connect()
                data, eight_bit = job.prepared(conn.eight_bit_mime)
                reply = await conn.send(
                    job.sender,
                    job.recipient,
                    data,
                    eight_bit=eight_bit,
                    then=self._ahead(conn, then),
                )
            except ServerTrouble as exc:
                refused = isinstance(exc, RelayRefused)
                outcome = "refused" if refused else "transient"
                metrics.smtp_observed(time.perf_counter() - started, outcome)
                if refused:
                    self._report_refusal(exc)
                troubles += 1
                if troubles > INLINE_RETRIES or self.stop.is_set():
                    job.on_error(job, exc)
                    return
                delay = min(self.backoff_cap, self.backoff_base * 2 ** (troubles - 1))
                delay *= random.uniform(0.5, 1.0)
                log.info("smtp trouble (%s); retry in %.1fs", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
                continue
            except SendError as exc:
                outcome = "permanent" if isinstance(exc, PermanentError) else "transient"
                metrics.smtp_observed(time.perf_counter() - started, outcome)
                job.on_error(job, exc)
                return
            metrics.smtp_observed(time.perf_counter() - started, "ok")
            job.on_sent(job, reply)
            return

    def _report_refusal(self, exc: ServerTrouble) -> None:
        """Loud, but once a minute: every connection of every worker hits the same wall."""
        now = time.monotonic()
        if now - self._refusal_logged_at >= REFUSAL_LOG_SECONDS:
            self._refusal_logged_at = now
            log.error(
                "SMTP relay %s:%s refuses us before any recipient (%s); mail is deferred, "
                "nobody is bounced -- check SMTP_URL credentials and the relay's access rules",
                self.target.host,
                self.target.port,
                exc,
            )

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for conn in self.connections:
            with contextlib.suppress(Exception):
                await conn.close()
