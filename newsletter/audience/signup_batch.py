"""Signups arriving together share one statement and one commit.

Under load the public form's cost is mostly per statement (round trip, planning,
the synchronous commit), not per row. So concurrent signups queue here and one
task at a time runs the ``sign_up`` query for everything waiting, then answers
each caller — only after that commit, so nothing is acknowledged early. With
no concurrency a batch is one signup: no waiting is added.

Batches run one after another, so each sees the previous one's limit hits: the
per-IP and per-address limits stay exact within a process. The same address
twice never shares a statement (ON CONFLICT cannot touch a row twice); the
later one waits for the next batch and gets the same answer a lone signup would.
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

    No task runs while idle — one starts with the first waiting signup and ends
    when none are left — so an app that is never started or stopped (tests)
    leaves nothing behind; :meth:`close` answers anything still waiting.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: list[_Waiting] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.statements = 0  # how many batches ran (tests, diagnostics)

    async def submit(self, signup: Signup) -> bool:
        """Queue a signup; True once committed, False when over the per-IP limit."""
        if self._closed:
            raise Unavailable(STOPPED)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((signup, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="signup-batcher")
        return await future

    async def close(self) -> None:
        """Stop taking signups; let the running statement finish, then answer
        everyone still waiting with :class:`Unavailable` (never leave one hanging)."""
        self._closed = True
        task = self._task
        if task is not None:
            await asyncio.wait({task}, timeout=10)
            if not task.done():  # a hung database must not hang shutdown
                task.cancel()
                await asyncio.wait({task})
        self._fail(self._waiting)
        self._waiting = []

    async def _drain(self) -> None:
        batch: list[_Waiting] = []
        try:
            while self._waiting and not self._closed:
                batch = self._take()
                await self._run(batch)
                batch = []
        finally:
            self._fail(batch)  # only if cancelled mid-statement
            self._task = None
            if self._closed:
                self._fail(self._waiting)
                self._waiting = []

    def _take(self) -> list[_Waiting]:
        """The waiting signups with distinct addresses, in arrival order; a
        repeated address stays queued for the next statement."""
        batch: list[_Waiting] = []
        later: list[_Waiting] = []
        seen: set[str] = set()
        for item in self._waiting:
            key = item[0].email.lower()
            if key in seen or len(batch) >= MAX_BATCH:
                later.append(item)
            else:
                seen.add(key)
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
