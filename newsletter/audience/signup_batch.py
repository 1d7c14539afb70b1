"""Signups arriving together share one statement and one commit.

Under load the public form's cost is mostly per statement (round trip, planning,
the synchronous commit), not per row. So concurrent signups queue here and
run the ``sign_up`` query in batches, then each caller is answered — only
after that commit, so nothing is acknowledged early. With no concurrency a
batch is one signup: no waiting is added.

A few batches may run at once (:data:`IN_FLIGHT`), on their own connections:
while one waits for its commit (an fsync) or for a busy CPU, the next is
already executing. With one statement at a time the web process, the database
and the disk took turns, and on a busy machine each turn also waited for a
core, so neither the process nor the database came near a core's worth of work.

Batches that run at the same time share no limit bucket: a signup whose IP
bucket or address is in a running statement waits for that statement's commit,
so the statement it joins counts every earlier hit and the per-IP, per-/64 and
per-address limits stay exact within a process. The same address twice never
shares a statement either (ON CONFLICT cannot touch a row twice); the later one
waits for the next batch and gets the same answer a lone signup would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping, Sequence
from typing import Any, NamedTuple

from newsletter.core.appstate import close_kept, kept
from newsletter.core.db import Database
from newsletter.core.errors import DomainError
from newsletter.core.i18n import N_

log = logging.getLogger("newsletter.signup")

MAX_BATCH = 256  # bounds one statement's size and lock time
# Statements at once per process. Two keep the database busy while the web
# process reads the next requests; more only shrinks the batches, and each
# statement has a fixed cost (about a millisecond of the database's CPU).
IN_FLIGHT = 2
STATE_KEY = "signup_batcher"


class Unavailable(DomainError):
    """The service is shutting down; the signup was not taken (try again)."""

    code = "unavailable"
    status = 503


STOPPED = N_("서비스가 잠시 중단되었습니다. 잠시 후 다시 시도해 주세요.")


class Signup(NamedTuple):
    """One validated signup, as the ``sign_up`` query takes it (field order =
    parameter order)."""

    ip_bucket: str
    ip_limit: int
    email_hash: str
    email: str
    name: str | None
    source: str | None
    email_bucket: str  # one mailbox, by keyed hash (ip_bucket: one client)
    address_limit: int
    ip: str | None
    user_agent: str | None
    consent_version: str
    language: str


async def run(db: Database, signups: Sequence[Signup]) -> list[bool]:
    """One statement for all ``signups`` (distinct addresses); ip_ok for each."""
    columns = [list(column) for column in zip(*signups, strict=True)] if signups else []
    rows = await db.fetch("sign_up", *columns)
    return [row[0] for row in rows]


_Waiting = tuple[Signup, "asyncio.Future[bool]"]


class SignupBatcher:
    """Per app (and so per event loop): gathers signups, runs them in batches.

    No task runs while idle — a lane (a task running batches one after another)
    starts with the first waiting signup, up to ``in_flight`` of them, and ends
    when it finds nothing it may take — so an app that is never started or
    stopped (tests) leaves nothing behind; :meth:`close` answers anything still
    waiting.
    """

    def __init__(self, db: Database, in_flight: int = IN_FLIGHT) -> None:
        self._db = db
        self._in_flight = in_flight
        self._waiting: list[_Waiting] = []
        self._lanes: set[asyncio.Task[None]] = set()
        # The IP buckets and address buckets of the statements running now.
        self._busy: set[str] = set()
        self._closed = False
        self.statements = 0  # how many batches ran (tests, diagnostics)

    async def submit(self, signup: Signup) -> bool:
        """Queue a signup; True once committed, False when over the per-IP limit."""
        if self._closed:
            raise Unavailable(STOPPED)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((signup, future))
        if len(self._lanes) < self._in_flight:
            lane = asyncio.create_task(self._lane(), name="signup-batcher")
            self._lanes.add(lane)
        return await future

    async def close(self) -> None:
        """Stop taking signups; let the running statements finish, then answer
        everyone still waiting with :class:`Unavailable` (never leave one hanging)."""
        self._closed = True
        lanes = set(self._lanes)
        if lanes:
            _, hung = await asyncio.wait(lanes, timeout=10)
            for lane in hung:  # a hung database must not hang shutdown
                lane.cancel()
            if hung:
                await asyncio.wait(hung)
        self._fail(self._waiting)
        self._waiting = []

    async def _lane(self) -> None:
        batch: list[_Waiting] = []
        try:
            while not self._closed:
                batch = self._take()
                if not batch:
                    return  # the rest waits for buckets another lane holds
                buckets = {
                    b for signup, _ in batch for b in (signup.ip_bucket, signup.email_bucket)
                }
                self._busy |= buckets
                try:
                    await self._run(batch)
                finally:
                    self._busy -= buckets
                batch = []
        finally:
            # Gone from the count at once (not in a done callback, which runs
            # later), so a signup queued next starts a lane of its own.
            self._lanes.discard(asyncio.current_task())
            self._fail(batch)  # only if cancelled mid-statement
            if self._closed:
                self._fail(self._waiting)
                self._waiting = []

    def _take(self) -> list[_Waiting]:
        """The waiting signups this lane may run now, in arrival order: none
        whose IP bucket or address is in another lane's running statement, and
        each address once; the others stay queued for a later statement."""
        batch: list[_Waiting] = []
        later: list[_Waiting] = []
        addresses: set[str] = set()
        busy = self._busy
        for item in self._waiting:
            signup = item[0]
            if (
                len(batch) >= MAX_BATCH
                or signup.email_bucket in addresses
                or signup.email_bucket in busy
                or signup.ip_bucket in busy
            ):
                later.append(item)
            else:
                addresses.add(signup.email_bucket)
                batch.append(item)
        self._waiting = later
        return batch

    async def _run(self, batch: list[_Waiting]) -> None:
        self.statements += 1
        try:
            results = await run(self._db, [signup for signup, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            # One bad row fails the whole statement: retry each on its own so
            # only that one gets the error.
            log.warning("signup batch of %d failed (%s); retrying one by one", len(batch), exc)
            for item in batch:
                await self._run([item])
            return
        for (_, future), ok in zip(batch, results, strict=True):
            _settle(future, result=ok)

    @staticmethod
    def _fail(items: list[_Waiting]) -> None:
        for _, future in items:
            _settle(future, exc=Unavailable(STOPPED))


def _settle(
    future: asyncio.Future[bool], *, result: bool = False, exc: BaseException | None = None
) -> None:
    if future.done():  # the caller went away (client disconnected)
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def batcher_for(state: MutableMapping[str, Any], db: Database) -> SignupBatcher:
    """The app's batcher, made on first use (tests build many apps)."""
    return kept(state, STATE_KEY, lambda: SignupBatcher(db))


async def close(state: MutableMapping[str, Any]) -> None:
    await close_kept(state, STATE_KEY)
