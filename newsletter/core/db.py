"""PostgreSQL access: connection pool, named queries, migrations.

Every SQL statement lives in ``sql/queries/<package>/*.sql`` under a ``-- name: xyz``
marker. :func:`load_queries` reads them once, and :meth:`Database.connect`
prepares each one against the live schema, so a typo or a stale column name
stops start-up instead of failing at 3 a.m.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from newsletter.core import paths
from newsletter.core.queries import NamedQueries, QueryName
from newsletter.core.sqlfiles import QUERIES_DIR, QueryError, read_statements

SQL_DIR = paths.SQL_DIR
MIGRATIONS_DIR = SQL_DIR / "migrations"

# Arbitrary constant shared by every process: pg_advisory_lock(MIGRATION_LOCK)
# serialises concurrent `newsletter migrate` runs.
MIGRATION_LOCK = 0x6E6C_6D67  # "nlmg"

Record = asyncpg.Record
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # What domain code receives: a plain connection or one borrowed from the pool.
    Connection: TypeAlias = asyncpg.Connection[Record] | PoolConnectionProxy[Record]
else:
    Connection = asyncpg.Connection


def load_queries(directory: Path = QUERIES_DIR) -> NamedQueries:
    """The statements as :class:`NamedQueries`, whose names mypy checks in the code."""
    statements = read_statements(directory)
    declared = {f.name for f in dataclasses.fields(NamedQueries)}
    if statements.keys() != declared:
        new = ", ".join(sorted(statements.keys() - declared))
        gone = ", ".join(sorted(declared - statements.keys()))
        raise QueryError(
            f"sql/queries and newsletter/core/queries.py disagree (new: {new or '-'}; "
            f"gone: {gone or '-'}); run `make queries`"
        )
    return NamedQueries(**statements)


QUERIES = load_queries()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool release without the default reset query.

    asyncpg normally runs ``RESET ALL; UNLISTEN *; pg_advisory_unlock_all()...``
    on every release: one more round trip per request, about a third of a
    signup's database time. Our pooled connections never change session state
    (no SET, no LISTEN, only transaction-scoped advisory locks), so there is
    nothing to reset; an open transaction is still rolled back by asyncpg.
    """


async def connect(url: str) -> asyncpg.Connection:
    """One plain connection with the project's type codecs (CLI, tests, migrations)."""
    conn: asyncpg.Connection = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn


@dataclass
class Database:
    """The pool plus the prepared-and-checked named queries."""

    pool: asyncpg.Pool
    queries: NamedQueries
    # Key for the keyed hashes of addresses (see migration 0007), read once.
    address_key: str = ""

    @classmethod
    async def connect(
        cls, url: str, *, min_size: int = 2, max_size: int = 10, check_queries: bool = True
    ) -> Database:
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, init=_init_connection, reset=_keep_session
        )
        database = cls(pool=pool, queries=QUERIES)
        try:
            if check_queries:
                await database.check_queries()
            database.address_key = await pool.fetchval(QUERIES.address_hash_key) or ""
        except BaseException:
            await pool.close()
            raise
        return database

    async def check_queries(self, statements: Mapping[str, str] | None = None) -> None:
        """Prepare every named query once; a broken one names itself."""
        if statements is None:
            statements = dataclasses.asdict(self.queries)
        async with self.pool.acquire() as conn:
            for name, sql in statements.items():
                try:
                    await conn.prepare(sql)
                except asyncpg.PostgresError as exc:
                    raise QueryError(f"query {name!r} does not prepare: {exc}") from exc

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    def _sql(self, name: QueryName) -> str:
        sql: str = getattr(self.queries, name)
        return sql

    async def fetch(self, name: QueryName, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.pool.fetch(self._sql(name), *args)
        return rows

    async def fetchrow(self, name: QueryName, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self.pool.fetchrow(self._sql(name), *args)
        return row

    async def fetchval(self, name: QueryName, *args: Any) -> Any:
        return await self.pool.fetchval(self._sql(name), *args)

    async def execute(self, name: QueryName, *args: Any) -> str:
        status: str = await self.pool.execute(self._sql(name), *args)
        return status


# --- migrations -------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str


def list_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        if not version.isdigit():
            raise QueryError(f"migration file {path.name} must start with a number")
        migrations.append(Migration(version=version, name=name, sql=path.read_text("utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise QueryError("two migration files share a number")
    return migrations


async def migrate(url: str, *, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction; return what ran.

    Safe when several processes start at once: the advisory lock makes the
    second wait, and it then finds nothing left to do.
    """
    conn = await connect(url)
    applied_now: list[str] = []
    try:
        await conn.execute(QUERIES.migration_lock, MIGRATION_LOCK)
        try:
            await conn.execute(QUERIES.create_schema_migrations)
            done = {r["version"] for r in await conn.fetch(QUERIES.applied_migrations)}
            for migration in list_migrations(directory):
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(QUERIES.record_migration, migration.version, migration.name)
                applied_now.append(f"{migration.version}_{migration.name}")
        finally:
            await conn.execute(QUERIES.migration_unlock, MIGRATION_LOCK)
    finally:
        await conn.close()
    return applied_now


async def pending_migrations(conn: Connection) -> list[str]:
    """Migrations on disk that the database has not applied (for /readyz)."""
    done: set[str] = set()
    if await conn.fetchval(QUERIES.schema_migrations_exists):
        done = {r["version"] for r in await conn.fetch(QUERIES.applied_migrations)}
    return [f"{m.version}_{m.name}" for m in list_migrations() if m.version not in done]
