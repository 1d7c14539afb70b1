"""A pool of SMTP connections sending concurrently, each reused for many messages.

The worker puts :class:`Job` s on a small queue; each connection takes the
next one, renders it (the connection knows whether 8BITMIME is on offer),
sends it and reports the outcome through the job's callbacks. The queue is
kept short on purpose: a message is checked (subscriber still active, issue
still sending) just before it is queued, so a short queue (about one check's
worth of messages, a few milliseconds at full speed) keeps that check close
to the moment the message is handed to SMTP.

Which relay a connection uses, how many connections a relay gets and when a
relay in trouble is tried again is :mod:`.relays`' business: connections
open one at a time per relay, a ``421 too many connections`` shrinks the
pool instead of being retried, and a relay that refuses every connection
opens its circuit breaker (one probe at a time) while the next relay in
``SMTP_URL`` delivers.

What happens to a message the relay did not take:

- push-back in a transaction (:class:`~.smtp.PushBack`: 421, 4.7.x, too much
  mail, greylisting): reported to the job's ``on_error`` at once, never
  retried inline on the same relay, and told to the rate limiter
  (:class:`Pace`), which lowers the global rate; the worker puts the mail
  back in the queue without counting an attempt;
- no relay takes a connection now: the job waits (no connect beyond what the
  circuit breakers allow) for up to ``hold_seconds`` of the pool being
  without any connection (longer while the relay says it is only full:
  other workers hold its connections); after that they go back at once
  through ``on_error`` as server trouble (deferred, no attempt counted), so a long
  outage costs neither attempts nor a connect per message. A connection
  idle for :data:`IDLE_SECONDS` is closed (the last one after
  :data:`LAST_IDLE_SECONDS`), so the relay's connections go to the workers
  that have mail;
- our connection is over the relay's budget while others still deliver: the
  job goes back on the pool's queue for them, and this connection waits
  until the budget grows;
- other server trouble (drop, timeout): retried a few times on a fresh
  connection with exponential backoff and jitter, then handed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from newsletter.core.settings import SmtpTarget
from newsletter.delivery.relays import SLOW_CONNECT_SECONDS, Relay, Relays
from newsletter.delivery.smtp import (
    Ahead,
    PermanentError,
    PushBack,
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
IDLE_SECONDS = 1.0  # an idle connection is closed after this ...
LAST_IDLE_SECONDS = 30.0  # ... the pool's last one after this
HOLD_BACKOFFS = 10  # without any connection this many backoffs, jobs go back instead of waiting
FULL_HOLDS = 6  # ... times this when the relay is only full (too many connections)


class Pace(Protocol):
    """Who hears how the relays take our pace (the rate limiter)."""

    def accepted(self, count: int = 1) -> None: ...

    def pushed_back(self, reason: str) -> None: ...


class _NoPace:
    def accepted(self, count: int = 1) -> None:
        pass

    def pushed_back(self, reason: str) -> None:
        pass


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
        relays: SmtpTarget | Sequence[SmtpTarget],
        size: int,
        *,
        stop: asyncio.Event | None = None,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        timeout: float = 60.0,
        queue_size: int = 0,
        pace: Pace | None = None,
        probe_base: float | None = None,
        hold_seconds: float | None = None,
    ) -> None:
        targets = [relays] if isinstance(relays, SmtpTarget) else list(relays)
        self.relays = Relays(
            targets,
            size,
            probe_base=probe_base if probe_base is not None else max(backoff_base, 0.01),
        )
        self.connections = [SmtpConnection(targets[0], timeout=timeout) for _ in range(size)]
        self._relay_of: list[Relay | None] = [None] * size
        # At least room for each connection's next job, so the next envelope
        # can travel with the current content (see SmtpConnection.send).
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max(2 * size, queue_size))
        self.stop = stop or asyncio.Event()
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        # Ten reconnect backoffs, 10 s by default (tests shorten the backoff).
        self.hold_seconds = HOLD_BACKOFFS * backoff_base if hold_seconds is None else hold_seconds
        self.pace: Pace = pace or _NoPace()
        self._tasks: list[asyncio.Task[None]] = []
        self._refusal_logged_at = -REFUSAL_LOG_SECONDS
        self._stalled_since: float | None = None  # no connection anywhere since then
        self._last_refusal: SendError | None = None  # what the relays said when they last refused

    def _ensure_started(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._run(slot), name=f"smtp-{slot}")
                for slot in range(len(self.connections))
            ]

    async def submit(self, job: Job) -> None:
        self._ensure_started()
        await self.queue.put(job)

    async def drain(self) -> None:
        """Wait until every submitted job has an outcome."""
        if self._tasks:
            await self.queue.join()

    async def _run(self, slot: int) -> None:
        conn = self.connections[slot]
        held: Job | None = None  # taken from the queue already; goes next on this connection
        while True:
            if held is None:
                await self._wait_for_room(slot)
                job = await self._next_job(slot)
            else:
                job, held = held, None
            try:
                if conn.pipelining and conn.connected and not self.queue.empty():
                    held = self.queue.get_nowait()
                if not await self._deliver(slot, job, held) and held is not None:
                    # This connection gave its job to the others: the next one too.
                    await self.queue.put(held)
                    held = None
            except Exception:  # a bug must not kill the connection task
                log.exception("unexpected error sending job %s", job.key)
                job.on_released(job)
            finally:
                self.queue.task_done()

    async def _next_job(self, slot: int) -> Job:
        """The next job; a connection idle for IDLE_SECONDS is closed meanwhile,
        so the relay's connections go to the workers that have mail."""
        conn = self.connections[slot]
        if conn.connected:
            # The last connection stays longer: the next batch needs no connect.
            idle = IDLE_SECONDS if self._live() > 1 else LAST_IDLE_SECONDS
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(self.queue.get(), idle)
            await conn.close()
            self._live()
        return await self.queue.get()

    async def _wait_for_room(self, slot: int) -> None:
        """A connection the relays have no budget for waits while others deliver."""
        while (
            not self.connections[slot].connected
            and not self.relays.connectable()
            and self._live() > 0
        ):
            self.relays.changed.clear()
            wait = min(1.0, max(0.01, self.relays.next_retry_in()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.relays.changed.wait(), wait)

    def _live(self) -> int:
        """Connections open now; the relays stop counting those that were lost."""
        live = 0
        for slot, conn in enumerate(self.connections):
            relay = self._relay_of[slot]
            if relay is None:
                continue
            if conn.connected:
                live += 1
            else:
                self._relay_of[slot] = None
                self.relays.released(relay)
        return live

    def _ahead(self, conn: SmtpConnection, job: Job | None) -> Ahead | None:
        if job is None or not conn.pipelining:
            return None
        try:
            data, eight_bit = job.prepared(conn.eight_bit_mime)
        except Exception:  # its own turn reports the error
            return None
        return Ahead(job.sender, job.recipient, len(data), eight_bit)

    async def _connect(self, slot: int) -> Relay | SendError | None:
        """This slot's connection, open on the best relay that takes it.

        Else the last connect error, or None when no relay may be tried now.
        """
        conn = self.connections[slot]
        relay = self._relay_of[slot]
        if relay is not None:
            if conn.connected and not self.relays.better_than(relay):
                return relay
            await conn.close()  # dropped, or an earlier relay is back: move to it
            self._relay_of[slot] = None
            self.relays.released(relay)
        last: SendError | None = None
        tried: set[Relay] = set()
        while (relay := self.relays.candidate(tried)) is not None:
            tried.add(relay)
            # One connect at a time per relay (its limit shows); behind a
            # connect that waits long for its greeting, try the next relay.
            if not await self._acquire(relay, tried):
                continue
            try:
                if self.stop.is_set():
                    return None  # the job goes back (_hold), no connect begun
                if not self.relays.begin(relay):
                    continue  # its budget or circuit changed while we waited
                conn.target = relay.target
                relay.connecting_since = time.monotonic()
                if not await self._connect_unless_stopped(conn):
                    # Asked to stop while a silent relay kept us waiting for
                    # its greeting (up to the connect timeout): give up now.
                    self.relays.released(relay)
                    return None
            except PushBack as exc:
                self.relays.too_many_connections(relay, str(exc))
                last = self._last_refusal = exc
                continue
            except ServerTrouble as exc:
                self.relays.connect_failed(relay, str(exc))
                if isinstance(exc, RelayRefused):
                    self._report_refusal(relay, exc)
                last = self._last_refusal = exc
                continue
            finally:
                relay.connecting_since = None
                relay.lock.release()
            self.relays.connected(relay)
            self._relay_of[slot] = relay
            self._stalled_since = None
            return relay
        return last or self._last_refusal

    async def _acquire(self, relay: Relay, tried: set[Relay]) -> bool:
        """Take ``relay``'s connect lock; False (not taken) if another slot's
        connect there has held it for SLOW_CONNECT_SECONDS and another relay
        may be tried instead."""
        try:
            await asyncio.wait_for(relay.lock.acquire(), SLOW_CONNECT_SECONDS)
        except TimeoutError:
            if self.relays.candidate(tried) is not None:
                return False
            await relay.lock.acquire()  # nowhere else to go: wait our turn
        return True

    async def _connect_unless_stopped(self, conn: SmtpConnection) -> bool:
        """``conn.connect()``, abandoned (False) if a stop request comes first."""
        connecting = asyncio.ensure_future(conn.connect())
        stopping = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not connecting.done():
                connecting.cancel()
                with contextlib.suppress(asyncio.CancelledError, SendError):
                    await connecting
                await conn.close()
        if connecting.cancelled():
            return False
        connecting.result()  # its SendError, if it failed
        return True

    async def _deliver(self, slot: int, job: Job, then: Job | None = None) -> bool:
        """Send ``job``; False if it was given to the other connections instead."""
        conn = self.connections[slot]
        troubles = 0
        while True:
            started = time.perf_counter()  # connect included: that is what a message waits
            relay = await self._connect(slot)
            if not isinstance(relay, Relay):
                if self.stop.is_set():
                    job.on_released(job)  # not handed to SMTP: back to the queue
                    return True
                if self._live() > 0:
                    await self.queue.put(job)  # others deliver; this one is over budget
                    return False
                if not await self._hold(job, relay):
                    return True
                continue
            try:
                data, eight_bit = job.prepared(conn.eight_bit_mime)
                reply = await conn.send(
                    job.sender,
                    job.recipient,
                    data,
                    eight_bit=eight_bit,
                    then=self._ahead(conn, then),
                )
            except PushBack as exc:
                # Our pace, not the message: back to the queue at once, for the
                # (now lower) global rate; no inline retry on the same relay.
                metrics.smtp_observed(time.perf_counter() - started, "transient")
                self.relays.message_pushed_back(relay, str(exc))
                self.pace.pushed_back(str(exc))
                job.on_error(job, exc)
                # This connection rests before its next message: while the relay
                # keeps refusing, each connection asks about once a pause, not at
                # the full rate (a relay counts our errors and hangs up on them).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.backoff_base)
                return True
            except ServerTrouble as exc:
                metrics.smtp_observed(time.perf_counter() - started, "transient")
                self.relays.message_failed(relay)
                troubles += 1
                if troubles > INLINE_RETRIES or self.stop.is_set():
                    job.on_error(job, exc)
                    return True
                delay = min(self.backoff_cap, self.backoff_base * 2 ** (troubles - 1))
                delay *= random.uniform(0.5, 1.0)
                log.info("smtp trouble on %s (%s); retry in %.1fs", relay.name, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
                continue
            except SendError as exc:
                outcome = "permanent" if isinstance(exc, PermanentError) else "transient"
                metrics.smtp_observed(time.perf_counter() - started, outcome)
                self.relays.message_failed(relay)
                job.on_error(job, exc)
                return True
            metrics.smtp_observed(time.perf_counter() - started, "ok")
            self.relays.delivered(relay)
            self.pace.accepted()
            job.on_sent(job, reply)
            return True

    async def _hold(self, job: Job, error: SendError | None) -> bool:
        """No relay takes a connection from us: wait for the next probe (True), or
        hand the job back (False).

        Jobs wait while the pool has been without any connection for less
        than ``hold_seconds``, after that they go back at once as server
        trouble. A relay that says it has too many connections (other
        workers hold them) is up, only full: its jobs wait
        :data:`FULL_HOLDS` times longer, while the mail of the workers that
        hold the connections goes out and frees them.
        """
        now = time.monotonic()
        if self._stalled_since is None:
            self._stalled_since = now
        if self.stop.is_set():
            job.on_released(job)
            return False
        stalled = now - self._stalled_since
        full = isinstance(error, PushBack) and error.reply.relay_full
        hold = self.hold_seconds * (FULL_HOLDS if full else 1)
        if stalled >= hold:
            reason = str(error) if error is not None else "no relay takes connections now"
            refused = isinstance(error, RelayRefused)
            metrics.smtp_observed(0.0, "refused" if refused else "transient")
            # Server trouble, even for a 421: the mail waits its deferral instead
            # of coming straight back to a relay that has no room for us.
            trouble = error if type(error) in (ServerTrouble, RelayRefused) else None
            job.on_error(job, trouble or ServerTrouble(None, reason, stage="connect"))
            return False
        wait = min(max(0.01, self.relays.next_retry_in()), hold - stalled)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), wait)
        return True

    def _report_refusal(self, relay: Relay, exc: ServerTrouble) -> None:
        """Loud, but once a minute: every connection of every worker hits the same wall."""
        now = time.monotonic()
        if now - self._refusal_logged_at >= REFUSAL_LOG_SECONDS:
            self._refusal_logged_at = now
            log.error(
                "SMTP relay %s refuses us before any recipient (%s); mail is deferred, "
                "nobody is bounced -- check SMTP_URL credentials and the relay's access rules",
                relay.name,
                exc,
            )

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for slot, conn in enumerate(self.connections):
            with contextlib.suppress(Exception):
                await conn.close()
            relay, self._relay_of[slot] = self._relay_of[slot], None
            if relay is not None:
                self.relays.released(relay)
