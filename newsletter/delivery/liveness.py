"""A worker's proof of life: a session advisory lock on a connection of its own.

The lease on claimed rows (60 s) has to outlast a slow rate limit and a
database hiccup, so waiting for it to run out made a killed worker's mail
wait a minute. PostgreSQL knows sooner: when a process dies its connection
closes (the kernel resets it, even on SIGKILL) and the server drops the
session and every session lock it held. So each worker holds one lock,
``pg_advisory_lock(<worker class>, key)``, on a connection it keeps open for
its life and writes the key into its ``workers`` row; the periodic
``requeue_expired_*`` statements treat rows of a worker whose lock is free as
abandoned at once. While the lock is held (the worker alive, or its TCP
session not dead yet: a network partition) its rows wait for the lease.

If the lock's connection dies while the worker lives (the database
restarted, the connection was terminated), the lock is gone and other
workers may take the rows back: :meth:`Liveness.keep` notices, takes the
lock again and says so. Nothing is sent twice beyond what was already handed
to SMTP: each chunk's send-time check (``delivery_gate``) only passes rows
still marked as this worker's.
"""

from __future__ import annotations

import contextlib
import logging
import secrets

import asyncpg

from newsletter.core.db import QUERIES

log = logging.getLogger("newsletter.liveness")

KEY_TRIES = 5  # a key taken already (a 1 in 2 billion chance) is drawn again
PING_TIMEOUT = 5.0


class Liveness:
    def __init__(self, url: str | None) -> None:
        self.url = url
        self.key: int | None = None
        self._conn: asyncpg.Connection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend holding the lock (ops and tests look for it)."""
        return self._conn.get_server_pid() if self.held and self._conn is not None else None

    async def take(self) -> int | None:
        """Open the connection and take a lock; its key, None without a database URL.

        A fresh key per process: a restarted worker with the same id (same
        host and pid, as in a container) never waits for its predecessor's
        session to be dropped.
        """
        if self.url is None:
            return None
        await self._close_connection()
        conn = await asyncpg.connect(self.url)
        try:
            for _ in range(KEY_TRIES):
                key = secrets.randbelow(2**31)
                if await conn.fetchval(QUERIES.take_worker_lock, key):
                    self._conn, self.key = conn, key
                    return key
            raise RuntimeError("no free worker lock key")
        except BaseException:
            await conn.close()
            raise

    async def keep(self) -> int | None:
        """Check the lock still stands; if its connection died, take one again.

        Returns the new key when the lock had to be taken again (the caller
        records it in the ``workers`` row), else None.
        """
        if self.url is None:
            return None
        if self.held and self._conn is not None:
            try:  # a connection can die silently (no reset seen): ask it
                await self._conn.fetchval("SELECT 1", timeout=PING_TIMEOUT)
                return None
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._close_connection()
        log.warning(
            "lost the liveness lock with its database connection: other workers may "
            "have taken back claimed rows (the send-time check skips those); taking it again"
        )
        return await self.take()

    async def release(self) -> None:
        conn = self._conn
        if conn is not None and not conn.is_closed() and self.key is not None:
            with contextlib.suppress(Exception):
                await conn.fetchval(QUERIES.release_worker_lock, self.key)
        await self._close_connection()

    async def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2.0)
