"""PostgreSQL access: connection pool, named queries, migrations.

Every SQL statement lives in ``sql/queries/*.sql`` under a ``-- name: xyz``
marker. :func:`load_queries` reads them once, and :meth:`Database.connect`
prepares each one against the live schema, so a typo or a stale column name
stops start-up instead of failing at 3 a.m.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from newsletter.core import paths

SQL_DIR = paths.SQL_DIR
MIGRATIONS_DIR = SQL_DIR / "migrations"
QUERIES_DIR = SQL_DIR / "queries"

# Arbitrary constant shared by every process: pg_advisory_lock(MIGRATION_LOCK)
# serialises concurrent `newsletter migrate` runs.
MIGRATION_LOCK = 0x6E6C_6D67  # "nlmg"

_NAME_RE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)

Record = asyncpg.Record
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # What domain code receives: a plain connection or one borrowed from the pool.
    Connection: TypeAlias = asyncpg.Connection[Record] | PoolConnectionProxy[Record]
else:
    Connection = asyncpg.Connection


class QueryError(RuntimeError):
    """A named query is missing, duplicated or does not prepare."""


class Queries(Mapping[str, str]):
    """Named SQL statements, available as attributes: ``queries.get_subscriber``."""

    def __init__(self, statements: dict[str, str]) -> None:
        self._statements = statements

    def __getattr__(self, name: str) -> str:
        try:
            return self._statements[name]
        except KeyError:
            raise QueryError(f"no query named {name!r} in {QUERIES_DIR}") from None

    def __getitem__(self, name: str) -> str:
        return self._statements[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._statements)

    def __len__(self) -> int:
        return len(self._statements)


def parse_queries(text: str, origin: str) -> dict[str, str]:
    """Split one ``.sql`` file into its named statements."""
    markers = list(_NAME_RE.finditer(text))
    if not markers and text.strip():
        raise QueryError(f"{origin}: no '-- name: ...' marker")
    statements: dict[str, str] = {}
    for index, marker in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        body = text[marker.end() : end].strip().rstrip(";").strip()
        name = marker.group(1)
        if not body:
            raise QueryError(f"{origin}: query {name!r} is empty")
        if name in statements:
            raise QueryError(f"{origin}: query {name!r} defined twice")
        statements[name] = body
    return statements


def load_queries(directory: Path = QUERIES_DIR) -> Queries:
    statements: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        for name, body in parse_queries(path.read_text(encoding="utf-8"), path.name).items():
            if name in statements:
                raise QueryError(f"{path.name}: query {name!r} already defined in another file")
            statements[name] = body
    return Queries(statements)


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
    queries: Queries
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

    async def check_queries(self) -> None:
        """Prepare every named query once; a broken one names itself."""
        async with self.pool.acquire() as conn:
            for name, sql in self.queries.items():
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

    async def fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.pool.fetch(self.queries[name], *args)
        return rows

    async def fetchrow(self, name: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self.pool.fetchrow(self.queries[name], *args)
        return row

    async def fetchval(self, name: str, *args: Any) -> Any:
        return await self.pool.fetchval(self.queries[name], *args)

    async def execute(self, name: str, *args: Any) -> str:
        status: str = await self.pool.execute(self.queries[name], *args)
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


async def migrate(url: str) -> list[str]:
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
            for migration in list_migrations():
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
