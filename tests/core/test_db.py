"""Migrations and named queries against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from newsletter.core import queries as generated
from newsletter.core.db import Database, list_migrations, migrate, pending_migrations
from newsletter.core.sqlfiles import QueryError, parse_queries, query_names_module, read_statements
from tests.conftest import ROOT, with_database


@pytest.fixture
async def empty_database(pg_admin_url: str) -> AsyncIterator[str]:
    name = f"nl_empty_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield with_database(pg_admin_url, name)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_migrate_is_idempotent_and_recorded(empty_database: str) -> None:
    applied = await migrate(empty_database)
    assert applied == [f"{m.version}_{m.name}" for m in list_migrations()]
    assert await migrate(empty_database) == []
    conn = await asyncpg.connect(empty_database)
    try:
        versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in versions] == [m.version for m in list_migrations()]
        assert await pending_migrations(conn) == []
    finally:
        await conn.close()


async def test_concurrent_migrations_apply_each_file_once(empty_database: str) -> None:
    results = await asyncio.gather(*(migrate(empty_database) for _ in range(4)))
    flattened = [name for result in results for name in result]
    assert sorted(flattened) == sorted(f"{m.version}_{m.name}" for m in list_migrations())


async def test_every_named_query_prepares(db: Database) -> None:
    assert len(dataclasses.fields(db.queries)) > 100
    await db.check_queries()


async def test_broken_query_fails_start_up(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "broken.sql").write_text(
        "-- name: broken\nSELECT no_such_column FROM subscribers;\n"
    )
    database = await Database.connect(database_url, check_queries=False)
    try:
        with pytest.raises(QueryError, match="broken"):
            await database.check_queries(read_statements(tmp_path))
    finally:
        await database.close()


def test_query_files_reject_duplicates_and_missing_markers() -> None:
    with pytest.raises(QueryError, match="defined twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n", "x.sql")
    with pytest.raises(QueryError, match="marker"):
        parse_queries("SELECT 1;", "x.sql")
    assert parse_queries("-- name: one\nSELECT 1;\n", "x.sql") == {"one": "SELECT 1"}


def test_query_names_module_is_current() -> None:
    """newsletter/core/queries.py (what mypy checks names against) matches the SQL."""
    written = Path(generated.__file__).read_text(encoding="utf-8")
    assert written == query_names_module(read_statements()), "run `make queries`"


def test_every_named_query_is_used() -> None:
    """A query nobody calls is dead weight prepared at every start-up."""
    sources = [
        path.read_text(encoding="utf-8")
        for folder in ("newsletter", "bench", "tests")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "queries.py"
    ]
    text = "\n".join(sources)
    unused = [name for name in read_statements() if not re.search(rf"\b{name}\b", text)]
    assert unused == []
